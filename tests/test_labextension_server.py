"""The lab extension's server extension (labextension/kqi_labextension) against a real KQI Hub.

A user belongs to tenants A and B. A real notebook of tenant A is started by the platform (local
spawner, podman): its own hub token (JUPYTERHUB_API_TOKEN, with the spawner's server_token_scopes)
is read from the notebook, and the extension installed in the notebook answers through the hub's
proxy. The server extension's routes are then driven in a jupyter_server started by
pytest-jupyter's fixtures with that same token, and configured as a browser might wish: tenant B's
id as its tenant. Whatever it is told, the token acts in tenant A only.

The tests are plain functions that run coroutines on pytest-jupyter's loop (the server's loop),
not pytest-asyncio's.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import requests
from pytest_jupyter.jupyter_core import *  # noqa: F401,F403 - the fixtures jp_serverapp builds on
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403 - jp_fetch, jp_serverapp, ...
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from kqi_labextension.context import (RequestError, inside_root, notebook_repositories, owner_and_repository,
                                      split_image, training_from_here, without_credentials)
from kqi_services.permissions import (Access, identity_from_model, notebook_identity, notebook_servers,
                                      notebook_token_refusal)

from .platform import (JupyterServer, ModelRepo, TenantUser, create_data, git, user_hub_token, wait_job,
                       wait_notebook)

TOKEN_FILE = "kqi-test-hub-token.txt"
ENV_FILE = "kqi-test-tenant-env.txt"
# the notebook's start-up command keeps the server's own token and its tenant variables where the
# test can read them
STARTUP = (f'printf %s "$JUPYTERHUB_API_TOKEN" > /kqi/output/{TOKEN_FILE}; printf "%s\\n"'
           f' "KQI_TENANT_ID=$KQI_TENANT_ID" "KQI_TENANT_NAME=$KQI_TENANT_NAME"'
           f' "KQI_TENANT_DISPLAY_NAME=$KQI_TENANT_DISPLAY_NAME" > /kqi/output/{ENV_FILE}')


class World:
    pass


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    w = World()
    w.platform = platform
    tmp = str(tmp_path_factory.mktemp("labext"))
    w.marker = uuid.uuid4().hex[:8]
    w.a = platform.create_tenant()
    w.b = platform.create_tenant()
    # an administrator of tenant B (not of A): the notebook's token must not carry that into its pages
    name, password = platform.create_user(tenants=[w.a["name"], w.b["name"]], admin_of=[w.b["name"]])
    w.name, w.password = name, password
    w.token_a = platform.login(name, password, w.a["id"])
    w.token_b = platform.login(name, password, w.b["id"])
    w.user_a = TenantUser(platform, w.a, name, password, w.token_a)
    user_b = TenantUser(platform, w.b, name, password, w.token_b)
    w.data_a = create_data(w.user_a, f"lab-a-{w.marker}", {"a.txt": b"alpha of A"}, tags=["lab"])
    w.data_b = create_data(user_b, f"lab-b-{w.marker}", {"b.txt": b"beta of B"}, tags=["lab"])
    r = w.user_a.api("POST", "/datasets", json={"name": f"lab-set-{w.marker}",
                                                "entries": {"training": [{"id": w.data_a["id"]}]}})
    assert r.status_code == 201, r.text
    w.dataset_a = r.json()["id"]
    r = user_b.api("POST", "/datasets", json={"name": f"lab-set-b-{w.marker}",
                                              "entries": {"training": [{"id": w.data_b["id"]}]}})
    assert r.status_code == 201, r.text
    w.dataset_b = r.json()["id"]
    w.repo = ModelRepo(platform, os.path.join(tmp, "model"), "team", f"lab-model-{w.marker}", tenant=w.a)
    w.commit = w.repo.commit({"train.py": "print('trained from the lab')\n"}, "a model")
    w.repo_b = ModelRepo(platform, os.path.join(tmp, "model-b"), "team", f"lab-model-b-{w.marker}", tenant=w.b)
    w.repo_b.commit({"secret.py": "B = 1\n"}, "tenant B's model")
    # a real notebook of tenant A, started by the platform
    r = w.user_a.api("POST", "/notebook/run", json={
        "name": f"lab-{w.marker}", "cpu": 1, "memory": 1, "gpu": 0, "expiresIn": 3600, "entryPoint": STARTUP,
        "dataSetId": w.dataset_a, "gitModel": {"owner": w.repo.owner, "repository": w.repo.name}})
    assert r.status_code == 201, r.text
    w.notebook_id = r.json()["id"]
    wait_notebook(platform, w.token_a, w.notebook_id, "Running", timeout=180)
    w.jupyter = JupyterServer(platform, name, f"kqi-{w.notebook_id}", user_hub_token(platform, name, password))
    w.server_token = w.jupyter.read_text(TOKEN_FILE)
    assert w.server_token and w.server_token not in (w.token_a, w.token_b)
    w.env = dict(line.split("=", 1) for line in w.jupyter.read_text(ENV_FILE).splitlines() if "=" in line)
    yield w
    w.user_a.api("POST", f"/notebook/{w.notebook_id}/halt")


# ------------------------------------------------------------------ the rules (no platform)
def test_notebook_server_tokens_are_told_by_their_scopes():
    server = {"name": "ann", "scopes": ["access:servers!server=ann/kqi-7", "users:activity!user=ann",
                                        "access:services!service=kqi", "custom:kqi:user!group=a",
                                        "custom:kqi:user!group=b", "custom:kqi:tenant-admin!group=b"]}
    assert notebook_servers(server) == ["kqi-7"]
    # the owner's own full token, another user's shared server, the browser's sign-in: not a server's
    assert notebook_servers({**server, "scopes": server["scopes"] + ["access:servers!user=ann"]}) == []
    assert notebook_servers({**server, "scopes": server["scopes"] + ["access:servers"]}) == []
    assert notebook_servers({"name": "ann", "scopes": ["access:servers!server=bob/kqi-8"]}) == []
    assert notebook_servers({"name": "ann", "scopes": ["custom:kqi:user!group=a"]}) == []
    identity = notebook_identity(identity_from_model(server), {"b"})
    assert identity.tenants == {"b": True} and identity.kind == "notebook" and not identity.system_admin
    assert notebook_identity(identity_from_model(server), set()).tenants == {}
    assert notebook_token_refusal(Access.SYSTEM_ADMIN, "GET")
    assert notebook_token_refusal(Access.AUTHENTICATED, "POST")
    assert notebook_token_refusal(Access.AUTHENTICATED, "GET") is None
    assert notebook_token_refusal(Access.TENANT_ADMIN, "DELETE") is None


def test_paths_stay_under_the_root(tmp_path):
    root = str(tmp_path)
    assert inside_root(root, "") == root and inside_root(root, "a/b/../c") == os.path.join(root, "a", "c")
    for bad in ("/etc", "..", "../x", "a/../../x", "C:/x", "\\server\\x", "a\0b"):
        with pytest.raises(RequestError) as e:
            inside_root(root, bad)
        assert e.value.status == 400, bad
    os.symlink("/tmp", tmp_path / "out")
    assert inside_root(root, "out/x") == os.path.join(root, "out", "x")  # reading follows links
    with pytest.raises(RequestError):
        inside_root(root, "out/x", writing=True)  # writing stays inside
    assert without_credentials("https://user:secret@git.example.com:8443/a/b.git") == (
        "https://git.example.com:8443/a/b.git")


def test_training_from_here_fills_what_is_missing():
    class Cfg:
        dataset_id, image = "7", "registry.example.com:5000/team/torch:2.3"

        def git_model_dict(self):
            return {"gitId": 2, "owner": "team", "repository": "model", "branch": "main", "commitId": None}

    clean = {"path": "/kqi/git", "url": "http://h/git/t/team/model.git", "branch": None, "commit": "c0ffee",
             "dirty": []}
    body = training_from_here({"name": "t", "entryPoint": "python train.py"}, Cfg(), [clean])
    assert body["gitModel"] == {"gitId": 2, "owner": "team", "repository": "model", "branch": "main",
                                "commitId": "c0ffee"}
    assert body["dataSetId"] == 7
    assert body["containerImage"] == {"image": "registry.example.com:5000/team/torch", "tag": "2.3"}
    mine = {"gitModel": {"owner": "o", "repository": "r"}, "dataSetId": 9, "containerImage": {"image": "x", "tag": "1"}}
    assert training_from_here({"name": "t", **mine}, Cfg(), [clean]) == {"name": "t", **mine}
    dirty = {**clean, "dirty": ["a.py"]}
    with pytest.raises(RequestError) as e:
        training_from_here({"name": "t"}, Cfg(), [dirty])
    assert e.value.status == 409 and e.value.extra["dirty"] == ["a.py"]
    assert "allowDirty" not in training_from_here({"name": "t", "allowDirty": True}, Cfg(), [dirty])
    assert owner_and_repository("git@host:team/model.git") == ("team", "model")
    assert split_image("python") == {"image": "python", "tag": "latest"}


def test_a_detached_checkout_shows_the_notebook_branch(tmp_path):
    """/kqi/git is checked out at the notebook's commit (detached HEAD): the context names the branch
    of the notebook's gitModel there, and git's own answer once the user moves to another commit."""
    repo = tmp_path / "git"
    repo.mkdir()
    git(str(repo), "init", "-q", "-b", "master")
    for n in (1, 2):
        (repo / "f.txt").write_text(str(n))
        git(str(repo), "add", "f.txt")
        git(str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", str(n))
    first = git(str(repo), "rev-list", "--max-parents=0", "HEAD").strip()
    git(str(repo), "checkout", "-q", "--detach", first)

    class Cfg:
        git_roots = [str(repo)]

        def __init__(self, model):
            self.model = model

        def git_model_dict(self):
            return self.model

    [shown] = notebook_repositories(Cfg({"repository": "m", "branch": "master", "commitId": first}), str(tmp_path))
    assert shown["branch"] == "master" and shown["commit"] == first
    [shown] = notebook_repositories(Cfg({"repository": "m", "branch": "master", "commitId": first[:10]}), str(tmp_path))
    assert shown["branch"] == "master"
    [shown] = notebook_repositories(Cfg({"repository": "m", "commitId": first}), str(tmp_path))
    assert shown["branch"] is None  # a notebook started without a branch names none
    git(str(repo), "checkout", "-q", "--detach", "master")
    [shown] = notebook_repositories(Cfg({"repository": "m", "branch": "master", "commitId": first}), str(tmp_path))
    assert shown["branch"] is None and shown["commit"] != first


# ------------------------------------------------------------------ the notebook's own token
def test_the_server_token_acts_in_the_notebook_tenant_only(world):
    """The token the hub gave the notebook server reaches the kqi service, as its owner in tenant A
    only: a header naming tenant B changes nothing, and it cannot leave the tenant."""
    platform, token = world.platform, world.server_token
    # the hub granted the owner's KQI scopes of both tenants (it makes the token before it knows the
    # notebook's): the service is what keeps the token in tenant A
    r = requests.get(f"{platform.hub_api_url}/user", headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    scopes = set(r.json()["scopes"])
    assert {f"custom:kqi:user!group={world.a['name']}", f"custom:kqi:user!group={world.b['name']}",
            "access:services!service=kqi", f"access:servers!server={world.name}/kqi-{world.notebook_id}"} <= scopes
    assert not [s for s in scopes if "system-admin" in s or s.startswith("admin:")]
    for header in ({}, {"X-KQI-Tenant": str(world.b["id"])}, {"X-KQI-Tenant": str(world.a["id"])}):
        r = platform.api("GET", "/data", token, params={"name": world.marker, "perPage": 100}, headers=header)
        assert r.status_code == 200, r.text
        assert [d["name"] for d in r.json()] == [world.data_a["name"]], (header, r.text)
    r = platform.api("GET", "/account", token, headers={"X-KQI-Tenant": str(world.b["id"])})
    assert r.status_code == 200 and r.json()["selectedTenant"]["id"] == world.a["id"], r.text
    # the account it sees lists the notebook's tenant only (the owner's own token lists both)
    assert [t["id"] for t in r.json()["tenants"]] == [world.a["id"]], r.text
    assert r.json()["isSystemAdmin"] is False
    r = platform.api("GET", "/account", world.token_b)
    assert {t["id"] for t in r.json()["tenants"]} == {world.a["id"], world.b["id"]}, r.text
    for path in (f"/data/{world.data_b['id']}", f"/datasets/{world.dataset_b}"):
        r = platform.api("GET", path, token, headers={"X-KQI-Tenant": str(world.b["id"])})
        assert r.status_code == 404, (path, r.status_code, r.text)
    # no way out of the tenant: another tenant's token, the account, system administration
    r = platform.api("POST", f"/account/tenants/{world.b['id']}/token", token)
    assert r.status_code == 403 and "notebook" in r.json()["detail"], r.text
    r = platform.api("GET", "/admin/tenants", token)
    assert r.status_code == 403, r.text
    # the same user's own token sees tenant B when it asks for it
    r = platform.api("GET", "/data", world.token_b, params={"name": world.marker})
    assert [d["name"] for d in r.json()] == [world.data_b["name"]]


def test_the_notebook_is_told_its_tenant(world):
    """The spawner gives the notebook its tenant from the kqi service's plan (KQI_TENANT_*)."""
    assert world.env == {"KQI_TENANT_ID": str(world.a["id"]), "KQI_TENANT_NAME": world.a["name"],
                         "KQI_TENANT_DISPLAY_NAME": world.a["displayName"]}, world.env


def test_the_server_token_opens_pages_as_in_its_notebook_tenant(world):
    """The web UI's pages apply the API's rule: with the notebook server's token the owner is no
    administrator of tenant B (which the owner administers), so B's administration pages are refused
    and not offered."""
    url = f"{world.platform.service_url}/tenant/members"
    r = requests.get(f"{world.platform.hub_api_url}/user", headers={"Authorization": f"token {world.server_token}"},
                     timeout=10)
    assert f"custom:kqi:tenant-admin!group={world.b['name']}" in r.json()["scopes"], r.text  # the hub granted it

    def page(token):
        return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30, allow_redirects=False)

    r = page(world.token_b)
    assert r.status_code == 200 and 'id="kqi-tenant-admin-start"' in r.text, r.status_code
    r = page(world.server_token)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    r = requests.get(f"{world.platform.service_url}/data", headers={"Authorization": f"token {world.server_token}"},
                     timeout=30, allow_redirects=False)
    assert r.status_code == 200 and 'id="kqi-tenant-admin-start"' not in r.text, r.status_code


def test_the_server_token_clones_from_the_notebook_tenant_only(world):
    """The embedded git server (HTTP Basic: user name + hub token) applies the same rule."""
    def refs(tenant, repo):
        url = f"{world.platform.service_url}/git/{tenant['name']}/{repo.owner}/{repo.name}.git/info/refs"
        return requests.get(url, params={"service": "git-upload-pack"}, auth=(world.name, world.server_token),
                            timeout=30)

    r = refs(world.a, world.repo)
    assert r.status_code == 200 and world.commit.encode() in r.content, r.status_code
    r = refs(world.b, world.repo_b)
    assert r.status_code in (403, 404), (r.status_code, r.text[:200])
    r = requests.get(f"{world.platform.service_url}/git/{world.b['name']}/{world.repo_b.owner}/{world.repo_b.name}"
                     ".git/info/refs", params={"service": "git-upload-pack"}, auth=(world.name, world.token_b),
                     timeout=30)
    assert r.status_code == 200  # the same user, with a token of tenant B


def test_the_notebook_runs_the_server_extension(world):
    """Installed into the notebook by the local spawner: its routes answer through the hub's proxy."""
    r = world.jupyter.request("GET", "/kqi/context")
    assert r.status_code == 200, r.text
    context = r.json()
    assert context["tenantId"] == world.a["id"] and context["notebookId"] == world.notebook_id
    assert context["datasetId"] == world.dataset_a and context["user"] == world.name
    assert context["expiresAt"] and 0 < context["secondsLeft"] <= 3600
    assert context["image"] and context["kqiServer"]
    assert world.server_token not in r.text
    repos = {g["path"]: g for g in context["git"]}
    assert repos["/kqi/git"]["commit"] == world.commit and repos["/kqi/git"]["dirty"] == [], context["git"]
    r = requests.get(world.jupyter.base + "/kqi/api/v2/data", params={"name": world.marker}, timeout=30,
                     headers={**world.jupyter.headers, "X-KQI-Tenant": str(world.b["id"])})
    assert r.status_code == 200 and [d["name"] for d in r.json()] == [world.data_a["name"]], r.text
    built = os.path.isfile(os.path.join(os.path.dirname(__import__("kqi_labextension").__file__),
                                        "labextension", "package.json"))
    if built:  # the front-end (setup.sh builds it): JupyterLab lists it
        r = world.jupyter.request("GET", "/lab")
        assert r.status_code == 200 and "kqi-labextension" in r.text, r.text[:500]


# ------------------------------------------------------------------ the server extension's routes
@pytest.fixture
def lab_root(world, jp_root_dir):
    """The server's root: files to register and a clone of the model repository."""
    (jp_root_dir / "results").mkdir()
    (jp_root_dir / "results" / "one.txt").write_bytes(b"first result\n")
    (jp_root_dir / "results" / "two.bin").write_bytes(os.urandom(300_000))
    return jp_root_dir


@pytest.fixture
def lab_tenant(world, request):
    """The tenant id the extension is configured with: the notebook's own (KQI_TENANT_ID as the spawner
    set it), or tenant B's when a test is parametrized with "b" (a wrong or tampered configuration)."""
    return str(world.b["id"]) if getattr(request, "param", None) == "b" else world.env["KQI_TENANT_ID"]


@pytest.fixture
def jp_server_config(world, tmp_path, lab_tenant):
    repos = tmp_path / "git"
    repos.mkdir()
    git(str(repos), "clone", "--quiet", world.repo.bare, "model")
    return Config({
        "ServerApp": {"jpserver_extensions": {"kqi_labextension": True}},
        "KqiLab": {
            "kqi_server": world.platform.service_url,
            "api_token": world.server_token,
            "tenant_id": lab_tenant,
            "tenant_name": world.env["KQI_TENANT_NAME"] if lab_tenant == world.env["KQI_TENANT_ID"] else "",
            "tenant_display_name": (world.env["KQI_TENANT_DISPLAY_NAME"]
                                    if lab_tenant == world.env["KQI_TENANT_ID"] else ""),
            "user": world.name,
            "notebook_id": str(world.notebook_id),
            "dataset_id": str(world.dataset_a),
            "image": "docker.io/library/python:3.11",
            "expires_at": time.time() + 600,
            "git_model": json.dumps({"owner": world.repo.owner, "repository": world.repo.name}),
            "git_roots": [str(repos)],
            "part_size": 128 * 1024,  # several parts for the 300 kB file
        },
    })


@pytest.fixture
def call(jp_fetch, jp_asyncio_loop, jp_serverapp, lab_root):
    """call(method, path, body=None, headers=None) -> (status, headers, JSON or bytes)."""
    def do(method, path, body=None, headers=None, params=None):
        kwargs = {"method": method, "headers": headers or {}, "params": params}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT"):
            kwargs["body"] = b""
        try:
            response = jp_asyncio_loop.run_until_complete(jp_fetch(*path.split("/"), **kwargs))
        except HTTPClientError as e:
            response = e.response
        content = response.body
        if "json" in response.headers.get("Content-Type", ""):
            content = json.loads(content) if content else None
        return response.code, response.headers, content

    do.run = jp_asyncio_loop.run_until_complete
    return do


def test_forwarded_calls_see_the_tenant_a_data(world, call):
    status, headers, body = call("GET", "kqi/api/v2/data", params={"name": world.marker, "withTotal": "true"},
                                 headers={"X-KQI-Tenant": str(world.b["id"])})
    assert status == 200 and [d["name"] for d in body] == [world.data_a["name"]], body
    assert headers["X-Total-Count"] == "1"
    status, _, body = call("GET", f"kqi/api/v2/data/{world.data_a['id']}/files")
    assert status == 200 and [f["fileName"] for f in body] == ["a.txt"], body
    status, _, body = call("GET", "kqi/api/v2/datasets", params={"name": f"lab-set-{world.marker}"})
    assert status == 200 and [d["id"] for d in body] == [world.dataset_a], body
    # the service's errors come back as they are
    status, _, body = call("GET", "kqi/api/v2/data/not-a-number")
    assert status == 400 and body["detail"], body
    status, _, body = call("POST", "kqi/api/v2/data", body={"name": ""})
    assert status == 400, body


def test_context(world, call):
    status, _, body = call("GET", "kqi/context")
    assert status == 200, body
    assert body["tenantId"] == world.a["id"] and body["tenantName"] == world.a["displayName"], body
    assert body["notebookId"] == world.notebook_id and body["datasetId"] == world.dataset_a
    assert body["user"] == world.name and body["image"] == "docker.io/library/python:3.11"
    assert 500 < body["secondsLeft"] <= 600 and body["expiresAt"].endswith("+00:00")
    [repo] = body["git"]
    assert repo["path"].endswith("/git/model") and repo["commit"] == world.commit and repo["dirty"] == []
    assert repo["branch"] == "master" and repo["url"] == world.repo.bare
    assert world.server_token not in json.dumps(body)


def test_data_download(world, call, lab_root):
    status, _, body = call("POST", "kqi/data-download", body={"dataId": world.data_a["id"], "path": "inputs/a"})
    assert status == 200 and body == {"files": ["inputs/a/a.txt"]}, body
    assert (lab_root / "inputs" / "a" / "a.txt").read_bytes() == b"alpha of A"
    assert not [p for p in (lab_root / "inputs" / "a").iterdir() if p.name.endswith("partial")]
    for path in ("../outside", "/etc", "inputs/../../x"):
        status, _, body = call("POST", "kqi/data-download", body={"dataId": world.data_a["id"], "path": path})
        assert status == 400 and "root" in body["message"], (path, body)
    os.symlink("/tmp", lab_root / "escape")
    status, _, body = call("POST", "kqi/data-download", body={"dataId": world.data_a["id"], "path": "escape"})
    assert status == 400 and "root" in body["message"], body
    status, _, body = call("POST", "kqi/data-download", body={"dataId": "x", "path": ""})
    assert status == 400, body


def test_data_register_uploads_with_progress(world, call, lab_root):
    name = f"lab-registered-{world.marker}"
    status, _, body = call("POST", "kqi/data-register", body={
        "name": name, "memo": "from the lab", "tags": ["lab", "results"],
        "paths": ["results/one.txt", "results/two.bin"]})
    assert status == 202 and body["transferId"], body
    transfer_id = body["transferId"]
    seen, deadline = [], time.monotonic() + 60
    while True:
        status, _, state = call("GET", f"kqi/transfers/{transfer_id}")
        assert status == 200, state
        seen.append(state["bytesDone"])
        if state["state"] != "running" or time.monotonic() > deadline:
            break
        call.run(__import__("asyncio").sleep(0.02))
    assert state["state"] == "done" and state["error"] is None, state
    total = 13 + 300_000
    assert state["bytesTotal"] == total and state["bytesDone"] == total and state["dataId"]
    assert seen == sorted(seen)
    # the data is in tenant A, with both files, through the service directly
    r = world.platform.api("GET", f"/data/{state['dataId']}", world.token_a)
    assert r.status_code == 200 and r.json()["name"] == name and r.json()["memo"] == "from the lab", r.text
    assert sorted(r.json()["tags"]) == ["lab", "results"]
    r = world.platform.api("GET", f"/data/{state['dataId']}/files", world.token_a, params={"withUrl": "true"})
    files = {f["fileName"]: f for f in r.json()}
    assert sorted(files) == ["one.txt", "two.bin"], r.text
    assert requests.get(files["two.bin"]["url"], timeout=30).content == (lab_root / "results" / "two.bin").read_bytes()
    r = world.platform.api("GET", f"/data/{state['dataId']}", world.token_b)
    assert r.status_code == 404
    # bad requests are refused before anything is sent
    for bad, words in (({"name": "x", "paths": ["../etc/passwd"]}, "root"),
                       ({"name": "x", "paths": ["results"]}, "not a file"),
                       ({"name": "", "paths": ["results/one.txt"]}, "name"),
                       ({"name": "x", "paths": []}, "paths")):
        status, _, body = call("POST", "kqi/data-register", body=bad)
        assert status == 400 and words in body["message"], (bad, body)
    status, _, body = call("GET", "kqi/transfers/nope")
    assert status == 404 and body["message"]


def test_train_from_here_names_uncommitted_files_then_submits(world, call, tmp_path):
    model = tmp_path / "git" / "model"
    (model / "train.py").write_text("print('changed')\n")
    (model / "notes.txt").write_text("new\n")
    request = {"name": f"lab-train-{world.marker}", "entryPoint": "python3 train.py", "cpu": 1, "memory": 1,
               "gpu": 0}
    status, _, body = call("POST", "kqi/train-from-here", body=request)
    assert status == 409 and body["dirty"] == ["notes.txt", "train.py"] and "uncommitted" in body["message"], body
    status, _, body = call("POST", "kqi/train-from-here", body={**request, "allowDirty": True})
    assert status == 201, body
    job_id = body["id"]
    try:
        r = world.platform.api("GET", f"/training/{job_id}", world.token_a)
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["gitModel"]["commitId"] == world.commit and job["gitModel"]["repository"] == world.repo.name
        assert job["gitModel"]["branch"] == "master"
        assert job["dataSet"]["id"] == world.dataset_a if "dataSet" in job else job["dataSetId"] == world.dataset_a
        assert world.platform.api("GET", f"/training/{job_id}", world.token_b).status_code == 404
    finally:
        world.platform.api("POST", f"/training/{job_id}/halt", world.token_a)
    # a repository that is not the notebook's is refused
    status, _, body = call("POST", "kqi/train-from-here", body={**request, "repositoryPath": "/etc"})
    assert status == 400, body


def test_a_followed_log_streams_through_the_extension(world, call, jp_fetch):
    """GET .../training/{id}/log?follow=true: the lines reach the panel as the job prints them."""
    r = world.platform.api("POST", "/training/run", world.token_a, json={
        "name": f"lab-log-{world.marker}", "entryPoint": "for i in 1 2 3 4 5 6; do echo line-$i; sleep 1; done",
        "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": world.dataset_a,
        "gitModel": {"owner": world.repo.owner, "repository": world.repo.name}, "cpu": 1, "memory": 1, "gpu": 0})
    assert r.status_code in (200, 201), r.text
    job_id = r.json()["id"]
    wait_job(TenantUser(world.platform, world.a, world.name, world.password, world.token_a), job_id,
             ("Running", "Completed", "Failed", "Killed", "Error"), timeout=120)
    chunks = []

    def on_chunk(data):
        chunks.append((time.monotonic(), data))

    response = call.run(jp_fetch("kqi", "api", "v2", "training", str(job_id), "log",
                                 params={"follow": "true"}, streaming_callback=on_chunk, request_timeout=120))
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = b"".join(c for _, c in chunks).decode()
    assert [f"line-{i}" in text for i in range(1, 7)] == [True] * 6, text
    first = next(t for t, c in chunks if b"line-" in c)
    last = next(t for t, c in reversed(chunks) if b"line-6" in c)
    assert last - first >= 2, [(round(t - first, 2), c[:40]) for t, c in chunks]  # not all at the end
    job = world.platform.api("GET", f"/training/{job_id}", world.token_a).json()
    assert job["status"] == "Completed", job


@pytest.mark.parametrize("lab_tenant", ["b"], indirect=True)
def test_tenant_b_is_out_of_reach_through_the_extension(world, call, lab_tenant):
    """The extension is configured with tenant B's id and the browser sends it too: nothing of B (the
    service, not the configuration, decides the token's tenant)."""
    spoof = {"X-KQI-Tenant": str(world.b["id"]), "Cookie": f"kqi-tenant={world.b['id']}"}
    for path, params in (("kqi/api/v2/data", {"name": world.marker}), ("kqi/api/v2/datasets", {}),
                         ("kqi/api/v2/data/datatags", {}), ("kqi/api/v2/training", {})):
        status, _, body = call("GET", path, params=params, headers=spoof)
        assert status == 200, (path, body)
        text = json.dumps(body)
        assert world.data_b["name"] not in text and f"lab-set-b-{world.marker}" not in text, (path, text[:300])
    for path in (f"kqi/api/v2/data/{world.data_b['id']}", f"kqi/api/v2/data/{world.data_b['id']}/files",
                 f"kqi/api/v2/datasets/{world.dataset_b}"):
        status, _, body = call("GET", path, headers=spoof)
        assert status == 404, (path, status, body)
    status, _, body = call("POST", "kqi/data-download", body={"dataId": world.data_b["id"], "path": "b"},
                           headers=spoof)
    assert status == 404 and "kqi service" in body["message"], body
    status, _, body = call("DELETE", f"kqi/api/v2/data/{world.data_b['id']}", headers=spoof)
    assert status == 404, body
    status, _, body = call("POST", f"kqi/api/v2/account/tenants/{world.b['id']}/token", headers=spoof)
    assert status == 403, body
    assert world.platform.api("GET", f"/data/{world.data_b['id']}", world.token_b).status_code == 200
