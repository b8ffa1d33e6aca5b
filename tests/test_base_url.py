"""The hub's base URL (`kqi-hub --base-url /kqi/`, KQI_BASE_URL) honoured in every address the
platform hands out: the API and UI under /kqi/services/kqi/, the hub under /kqi/hub/, a
notebook's "open" address under /kqi/user/..., upload part URLs, the UI's hub links; each
address is then used and works."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
import requests

from .platform import (ModelRepo, Platform, create_data, new_platform, remove_tree, tenant_user, upload_parts,
                       user_hub_token, wait_job, wait_notebook)

BASE = "/kqi/"


@dataclass
class BasePlatform(Platform):
    """The test platform's helpers with every address under BASE."""

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE.rstrip('/')}"

    @property
    def service_url(self) -> str:
        return f"{self.root}/services/kqi"

    @property
    def hub_api_url(self) -> str:
        return f"{self.root}/hub/api"


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("base-url"))
    made = new_platform(base, {"KQI_BASE_URL": BASE})
    p = BasePlatform(**{k: getattr(made, k) for k in ("data_dir", "port", "admin_password", "env")})
    p.db_backend = "sqlite"
    p.start()
    yield p
    p.stop()
    remove_tree(base)


def origin(p) -> str:
    return f"http://127.0.0.1:{p.port}"


def test_everything_is_under_the_base_url(plat):
    assert requests.get(f"{plat.hub_api_url}/", timeout=10).status_code == 200
    assert requests.get(f"{origin(plat)}/hub/api/", timeout=10).status_code == 404  # nothing at the old root
    user = tenant_user(plat)

    # upload part URLs: under the base, and they take the parts
    upload = upload_parts(user, "a.txt", [b"hello "], complete=True)
    # (on the service's direct listener, kqi-hub's default: the same path, another port)
    assert all(u.split("://", 1)[1].split("/", 1)[1].startswith(f"{BASE[1:]}services/kqi/storage/part?")
               for u in upload["uris"]), upload["uris"]

    # the hub links the API gives the UI
    r = user.api("GET", "/account")
    assert r.status_code == 200, r.text
    change = r.json().get("passwordChangeUrl")
    if change:
        assert change.startswith(f"{BASE}hub/"), change

    # the UI page: every hub and service link under the base
    session = requests.Session()
    page = session.get(f"{plat.root}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    r = session.post(f"{plat.root}/hub/login", timeout=60,
                     data={"username": user.name, "password": user.password,
                           **({"_xsrf": xsrf.group(1)} if xsrf else {})})
    r = session.get(f"{plat.service_url}/", timeout=30)
    assert r.status_code == 200 and r.url.startswith(plat.service_url), r.url
    links = re.findall(r'(?:href|src|action)="(/[^"]*)"', r.text)
    assert links, r.text[:500]
    bad = [link for link in links if not link.startswith(BASE)]
    assert not bad, bad
    assert f'"{BASE}hub/' in r.text or f"{BASE}hub/" in r.text


def test_the_notebook_open_address_works_under_the_base_url(plat):
    user = tenant_user(plat)
    r = user.api("POST", "/notebook/run", json={"name": "nb", "cpu": 1, "memory": 1, "gpu": 0, "expiresIn": 3600})
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    try:
        nb = wait_notebook(plat, user.token, nb_id, "Running", timeout=180)
        assert nb["url"].startswith(f"{BASE}user/{user.name}/"), nb["url"]
        r = user.api("GET", f"/notebook/{nb_id}/endpoint")
        assert r.status_code == 200, r.text
        url = r.json()["url"]
        assert url == nb["url"] and url.startswith(f"{BASE}user/{user.name}/") and url.endswith("/lab"), url
        # the address reaches the Jupyter server through the hub's proxy
        token = user_hub_token(plat, user.name, user.password)
        server = url[:-len("lab")]
        got = requests.get(f"{origin(plat)}{server}api/contents/", headers={"Authorization": f"token {token}"},
                           timeout=30)
        assert got.status_code == 200 and got.json()["type"] == "directory", (got.status_code, got.text[:300])
        lab = requests.get(f"{origin(plat)}{url}", headers={"Authorization": f"token {token}"}, timeout=30)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, (lab.status_code, lab.text[:300])
    finally:
        user.api("POST", f"/notebook/{nb_id}/halt")


def test_job_port_and_tensorboard_addresses_under_the_base_url(plat, tmp_path):
    user = tenant_user(plat)
    repo = ModelRepo(plat, str(tmp_path / "work"), "team", "base-url-model", tenant=user.tenant)
    commit = repo.commit({"README.md": "a model\n"}, "a model")
    data = create_data(user, "d", {"a.txt": b"alpha"})["id"]
    r = user.api("POST", "/datasets", json={"name": "s", "entries": {"training": [{"id": data}]}})
    assert r.status_code == 201, r.text
    port = 8765
    entry = (f"cd /kqi/output && printf '%s' \"$KQI_SERVER\" > server.txt"
             f" && exec python3 -m http.server {port} --bind 127.0.0.1")
    r = user.api("POST", "/training/run", json={
        "name": "serve", "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": r.json()["id"],
        "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit}, "entryPoint": entry,
        "cpu": 0.2, "memory": 0.2, "gpu": 0, "ports": [port]})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    try:
        wait_job(user, job_id, "Running", timeout=120)
        ports = user.api("GET", f"/training/{job_id}").json()["nodePorts"]
        assert [p["url"] for p in ports] == [f"{BASE}services/kqi/proxy/training/{job_id}/{port}/"], ports
        # through that address: the job's page, and the platform address the job was given
        deadline = time.monotonic() + 60
        while True:
            got = requests.get(f"{origin(plat)}{ports[0]['url']}server.txt",
                               headers={"Authorization": f"Bearer {user.token}"}, timeout=30)
            if got.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert got.status_code == 200, got.text
        assert got.text == f"{origin(plat)}{BASE}services/kqi"

        r = user.api("PUT", f"/training/{job_id}/tensorboard", json={"expiresIn": 600})
        assert r.status_code == 200, r.text
        board = r.json()["url"]
        assert board == f"{BASE}services/kqi/proxy/tensorboard/{job_id}/", board
        deadline = time.monotonic() + 120
        while True:
            page = requests.get(f"{origin(plat)}{board}", headers={"Authorization": f"Bearer {user.token}"},
                                timeout=30)
            if page.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert page.status_code == 200 and "<tb-webapp>" in page.text, (page.status_code, page.text[:300])
    finally:
        user.api("DELETE", f"/training/{job_id}/tensorboard")
        user.api("POST", f"/training/{job_id}/halt")
