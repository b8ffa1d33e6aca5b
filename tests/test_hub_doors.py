"""The hub's doors and the nodes' capacity, through a real KQI Hub (issue 12).

- Every server start goes through the kqi service's plan: a user's own hub token starting a
  named server or the default server with plain options (over the tenant quota, as the issue
  found) is refused with the message, and nothing runs; options the service signed are taken
  once (a replay, with the hub's stored options or sent again, is refused) and only as signed.
- Signing in at the hub starts no server; the hub's root, home and spawn pages send users to the
  KQI UI at /services/kqi/.
- A notebook or a job that no node of its partition (of the tenant's nodes) could ever hold is
  refused with 400 and the node's numbers; a job that fits a node but not now waits Queued.
- Halting a notebook while its server is still being made is a clean answer: the halt waits for
  the start and stops it, or answers 409 with a message when the start takes longer.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass

import pytest
import requests

from kqi_services.domain import notebooks as notebooks_domain

from .platform import (ModelRepo, Platform, containers, create_data, hub_servers, new_platform, remove_tree,
                       tenant_user, user_hub_token, wait_job, wait_notebook)


def notebook_body(**fields) -> dict:
    body = {"name": "door-nb", "cpu": 1, "memory": 1, "gpu": 0, "expiresIn": 3600}
    body.update(fields)
    return body


def hub_post(platform, token: str, path: str, body=None) -> requests.Response:
    return requests.post(f"{platform.hub_api_url}{path}", headers={"Authorization": f"token {token}"},
                         json=body, timeout=60)


def hub_user(platform, name: str) -> dict:
    r = platform.hub("GET", f"/users/{name}")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def quota_user(platform):
    """A member of a tenant whose quota is 1 cpu, 2 GiB, no GPU, with the user's own hub token."""
    tenant = platform.create_tenant()
    r = platform.api("POST", "/admin/quotas", platform.admin_token(),
                     json=[{"tenantId": tenant["id"], "cpu": 1, "memory": 2, "gpu": 0}])
    assert r.status_code == 200, r.text
    user = tenant_user(platform, tenant=tenant)
    return user, user_hub_token(platform, user.name, user.password)


# ------------------------------------------------------------------------------ starts
@pytest.mark.parametrize("path", ["servers/x", "server"], ids=["named", "default"])
def test_a_hub_api_start_over_the_quota_is_refused(platform, quota_user, path):
    """What the issue did: POST /hub/api/users/<me>/servers/x {"cpu":4,...} with the user's own token."""
    user, token = quota_user
    over_quota = {"cpu": 4, "memory": 8, "lifetimeHours": 8760}
    for body in (over_quota, {"user_options": over_quota}, None):
        r = hub_post(platform, token, f"/users/{user.name}/{path}", body)
        assert r.status_code == 400, (r.status_code, r.text)
        message = r.json()["message"]
        assert "only the kqi service makes plans" in message and "POST /notebook/run" in message, message
        where = f"{user.name}/x" if path == "servers/x" else f"the default server of {user.name}"
        assert f"The server {where} cannot start" in message, message
    model = hub_user(platform, user.name)
    assert model["server"] is None and not any(s.get("ready") or s.get("pending") for s in model["servers"].values())
    assert containers(platform, "x" if path == "servers/x" else "default", running_only=False) == []
    # the kqi service refuses the same request with the quota's message
    r = user.api("POST", "/notebook/run", json=notebook_body(cpu=4, memory=8))
    assert r.status_code == 400 and "over the tenant quota of 1" in r.text, r.text


@pytest.fixture(scope="module")
def running_notebook(platform, quota_user):
    user, token = quota_user
    r = user.api("POST", "/notebook/run", json=notebook_body(name="planned"))
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    wait_notebook(platform, user.token, nb_id, "Running", timeout=180)
    return nb_id


def test_a_plan_is_taken_once_and_only_as_signed(platform, quota_user, running_notebook):
    user, token = quota_user
    nb_id = running_notebook
    server = f"kqi-{nb_id}"
    signed = hub_servers(platform, user.name)[server]["user_options"]
    assert signed["planSignature"] and signed["planNonce"] and signed["planIssuedAt"]
    r = user.api("POST", f"/notebook/{nb_id}/halt")
    assert r.status_code == 200 and r.json()["status"] == "Killed", r.text
    assert server not in hub_servers(platform, user.name) or not hub_servers(platform, user.name)[server]["ready"]

    # the stopped server again through the hub: its stored options (no body), the same options sent
    # again, or changed options (more cpu, no lifetime, another server) are all refused
    attempts = [
        (f"/users/{user.name}/servers/{server}", None, "plan was already used"),
        (f"/users/{user.name}/servers/{server}", {"user_options": signed}, "plan was already used"),
        (f"/users/{user.name}/servers/{server}", {"user_options": {**signed, "cpu": 4}}, "only the kqi service"),
        (f"/users/{user.name}/servers/{server}", {"user_options": {**signed, "lifetimeEnabled": False}},
         "only the kqi service"),
        (f"/users/{user.name}/servers/{server}x", {"user_options": signed}, "only the kqi service"),
        (f"/users/{user.name}/server", {"user_options": signed}, "only the kqi service"),
    ]
    for path, body, message in attempts:
        r = hub_post(platform, token, path, body)
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert message in r.json()["message"], (path, r.text)
    assert containers(platform, server) == []
    servers = hub_servers(platform, user.name)
    assert not any(s.get("ready") or s.get("pending") for s in servers.values()), servers

    # the kqi service plans a re-run afresh: that one starts
    r = user.api("POST", f"/notebook/{nb_id}/rerun")
    assert r.status_code == 200, r.text
    wait_notebook(platform, user.token, nb_id, "Running", timeout=180)
    assert hub_servers(platform, user.name)[server]["user_options"]["planNonce"] != signed["planNonce"]
    r = user.api("POST", f"/notebook/{nb_id}/halt")
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------ the hub's pages
def hub_sign_in(platform, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    page = session.get(f"{platform.url}/hub/login", timeout=30)
    assert page.status_code == 200, page.text[:300]
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    data = {"username": name, "password": password}
    if xsrf:
        data["_xsrf"] = xsrf.group(1)
    r = session.post(f"{platform.url}/hub/login", data=data, timeout=60)
    return session, r


def test_the_hubs_pages_send_users_to_the_kqi_ui(platform):
    tenant = platform.create_tenant()
    name, password = platform.create_user(tenants=[tenant["name"]])
    session, r = hub_sign_in(platform, name, password)
    # after sign-in: the KQI UI (through the service's own sign-in with the hub), no server
    assert r.status_code == 200, (r.status_code, r.url, r.text[:300])
    assert r.url.startswith(f"{platform.url}/services/kqi/"), [h.headers.get("location") for h in r.history]
    assert any(h.headers.get("location", "").endswith("/services/kqi/") for h in r.history), r.history
    # the hub's root, home and spawn pages, signed in or not
    for client in (session, requests.Session()):
        for path in ("/hub/", "/hub/home", "/hub/spawn", f"/hub/spawn/{name}", f"/hub/spawn/{name}/x"):
            page = client.get(f"{platform.url}{path}", allow_redirects=False, timeout=30)
            assert page.status_code == 302, (path, page.status_code)
            assert page.headers["location"] == "/services/kqi/", (path, page.headers["location"])
    # nothing was started for the user, now or a little later (no implicit spawn)
    time.sleep(2)
    model = hub_user(platform, name)
    assert model["server"] is None and model["servers"] == {}, model
    # a user's own server page does not start one either
    page = session.get(f"{platform.url}/user/{name}/", allow_redirects=True, timeout=30)
    assert hub_user(platform, name)["servers"] == {}, page.url


def test_the_start_up_line_prints_the_kqi_ui(platform):
    with open(platform.log_path, errors="replace") as f:
        log = f.read()
    assert f"KQI Hub on http://127.0.0.1:{platform.port}/services/kqi/ (data in" in log, log[:2000]


BASE = "/ai/"


@dataclass
class BasePlatform(Platform):
    """The platform's helpers with every address under BASE."""

    @property
    def service_url(self) -> str:
        return f"{self.url}{BASE}services/kqi"

    @property
    def hub_api_url(self) -> str:
        return f"{self.url}{BASE}hub/api"


@pytest.fixture(scope="module")
def base_platform(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("doors-base-url"))
    made = new_platform(base, {"KQI_BASE_URL": BASE})
    plat = BasePlatform(**{k: getattr(made, k) for k in ("data_dir", "port", "admin_password", "env")})
    plat.start()
    yield plat
    plat.stop()
    remove_tree(base)


def test_the_doors_honour_the_hubs_base_url(base_platform):
    plat = base_platform
    with open(plat.log_path, errors="replace") as f:
        assert f"KQI Hub on http://127.0.0.1:{plat.port}{BASE}services/kqi/ (data in" in f.read()
    tenant = plat.create_tenant()
    name, password = plat.create_user(tenants=[tenant["name"]])
    for path in ("hub/", "hub/home", "hub/spawn", f"hub/spawn/{name}/x"):
        page = requests.get(f"{plat.url}{BASE}{path}", allow_redirects=False, timeout=30)
        assert page.status_code == 302 and page.headers["location"] == f"{BASE}services/kqi/", (path, page.headers)
    session = requests.Session()
    login = session.get(f"{plat.url}{BASE}hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text)
    r = session.post(f"{plat.url}{BASE}hub/login", timeout=60,
                     data={"username": name, "password": password, **({"_xsrf": xsrf.group(1)} if xsrf else {})})
    assert r.status_code == 200 and r.url.startswith(f"{plat.url}{BASE}services/kqi/"), (r.status_code, r.url)
    token = user_hub_token(plat, name, password)
    r = hub_post(plat, token, f"/users/{name}/servers/x", {"cpu": 4, "memory": 8, "lifetimeHours": 8760})
    assert r.status_code == 400 and "only the kqi service makes plans" in r.json()["message"], r.text


# ------------------------------------------------------------------------------ capacity
@pytest.fixture(scope="module")
def small_partition(platform):
    """A tenant with a private node of its own in a partition of its own: 2 cpu, 4 GiB, no GPU."""
    tenant = platform.create_tenant()
    partition, node = f"small-{uuid.uuid4().hex[:6]}", f"node-{uuid.uuid4().hex[:6]}"
    r = platform.api("POST", "/admin/nodes", platform.admin_token(), json={
        "name": node, "partition": partition, "accessLevel": 1, "assignedTenantIds": [tenant["id"]],
        "notebookEnabled": True, "cpu": 2, "memory": 4, "gpu": 0})
    assert r.status_code in (200, 201), r.text
    user = tenant_user(platform, tenant=tenant)
    return user, partition, node


def test_a_notebook_no_node_could_hold_is_refused_with_the_nodes_numbers(platform, small_partition):
    user, partition, node = small_partition
    servers = set(hub_servers(platform, user.name))
    r = user.api("POST", "/notebook/run", json=notebook_body(name="huge", cpu=64, memory=512, gpu=8,
                                                             partition=partition))
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    where = f"on the largest node of partition {partition} ({node}: cpu 2, memory 4 GiB, gpu 0)"
    assert errors["cpu"] == [f"cpu 64 > 2 {where}: no node can ever hold it"], errors
    assert errors["memory"] == [f"memory 512 GiB > 4 GiB {where}: no node can ever hold it"], errors
    assert errors["gpu"] == [f"gpu 8 > 0 {where}: no node can ever hold it"], errors
    assert user.api("GET", "/notebook").json() == []
    assert set(hub_servers(platform, user.name)) == servers
    # one resource over is enough
    r = user.api("POST", "/notebook/run", json=notebook_body(name="wide", cpu=3, memory=1, partition=partition))
    assert r.status_code == 400 and set(r.json()["errors"]) == {"cpu"}, r.text
    assert "cpu 3 > 2" in r.json()["errors"]["cpu"][0]


def test_the_seeded_node_and_no_partition(platform):
    """The local profile's node is this machine: a 64-cpu notebook in partition local is refused with
    its numbers; with no partition, the largest node the tenant may use is named."""
    user = tenant_user(platform)
    nodes = platform.api("GET", "/admin/nodes", platform.admin_token()).json()
    local = [n for n in nodes if n["partition"] == "local"]
    biggest = max(local, key=lambda n: (n["cpu"] or 0))
    r = user.api("POST", "/notebook/run", json=notebook_body(name="huge", cpu=64, partition="local"))
    assert r.status_code == 400, r.text
    (message,) = r.json()["errors"]["cpu"]
    assert message.startswith(f"cpu 64 > {biggest['cpu']:g} on the largest node of partition local"
                              f" ({biggest['name']}: cpu {biggest['cpu']:g}, memory "), message
    usable = [n for n in nodes if n["accessLevel"] == 2 or (n["accessLevel"] == 1
                                                           and user.tenant["id"] in n["assignedTenantIds"])]
    most = max(n["cpu"] or 0 for n in usable)
    r = user.api("POST", "/notebook/run", json=notebook_body(name="huge", cpu=most + 1000))
    assert r.status_code == 400, r.text
    (message,) = r.json()["errors"]["cpu"]
    assert f"> {most:g} on the largest node this tenant may use (" in message, message
    assert user.api("GET", "/notebook").json() == []


@pytest.fixture(scope="module")
def job_env(platform, small_partition, tmp_path_factory):
    user, partition, node = small_partition
    repo = ModelRepo(platform, str(tmp_path_factory.mktemp("doors-model")), "team", f"doors-{uuid.uuid4().hex[:6]}",
                     tenant=user.tenant)
    repo.commit({"train.py": "print('hi')\n"}, "a model")
    data = create_data(user, "doors-data", {"a.txt": b"a"})["id"]
    r = user.api("POST", "/datasets", json={"name": "doors-set", "entries": {"training": [{"id": data}]}})
    assert r.status_code == 201, r.text
    return user, partition, node, repo, r.json()["id"], data


def training_body(repo, dataset_id, **fields) -> dict:
    body = {"name": "doors-job", "entryPoint": "sleep 1", "containerImage": {"image": "python", "tag": "3.11"},
            "dataSetId": dataset_id, "gitModel": {"owner": repo.owner, "repository": repo.name},
            "cpu": 1, "memory": 1, "gpu": 0}
    body.update(fields)
    return body


def test_a_job_no_node_could_hold_is_refused(job_env):
    user, partition, node, repo, dataset_id, data_id = job_env
    before = user.api("GET", "/training").json()
    r = user.api("POST", "/training/run", json=training_body(repo, dataset_id, cpu=8, gpu=1, partition=partition))
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    where = f"on the largest node of partition {partition} ({node}: cpu 2, memory 4 GiB, gpu 0)"
    assert errors["cpu"] == [f"cpu 8 > 2 {where}: no node can ever hold it"], errors
    assert errors["gpu"] == [f"gpu 1 > 0 {where}: no node can ever hold it"], errors
    assert "memory" not in errors
    assert user.api("GET", "/training").json() == before
    # inference and preprocessing too
    r = user.api("POST", "/inferences/run", json=training_body(repo, dataset_id, memory=64, partition=partition))
    assert r.status_code == 400 and "memory 64 GiB > 4 GiB" in r.json()["errors"]["memory"][0], r.text
    r = user.api("POST", "/preprocessings", json={
        "name": "doors-pre", "entryPoint": "true", "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": repo.owner, "repository": repo.name}, "cpu": 1, "memory": 1, "gpu": 0})
    assert r.status_code == 201, r.text
    preprocess_id = r.json()["id"]
    r = user.api("POST", f"/preprocessings/{preprocess_id}/run",
                 json={"dataId": data_id, "cpu": 3, "memory": 1, "gpu": 0, "partition": partition})
    assert r.status_code == 400, r.text
    assert r.json()["errors"]["cpu"] == [f"cpu 3 > 2 {where}: no node can ever hold it"], r.text
    assert user.api("GET", f"/preprocessings/{preprocess_id}/histories").json() == []


def test_a_job_that_fits_a_node_but_not_now_stays_queued(platform, job_env):
    """The machine's capacity (the seeded node, the local backend's cores) is taken by a first job:
    a second one that fits the node waits Queued, with the reason, and runs once there is room."""
    user, partition, node, repo, dataset_id, _ = job_env
    cores = float(os.cpu_count() or 1)  # the seeded node's and the local backend's capacity
    first = user.api("POST", "/training/run", json=training_body(repo, dataset_id, name="holder", cpu=cores,
                                                                 entryPoint="sleep 600"))
    assert first.status_code in (200, 201), first.text
    first_id = first.json()["id"]
    try:
        wait_job(user, first_id, "Running", timeout=120)
        second = user.api("POST", "/training/run", json=training_body(repo, dataset_id, name="waiter", cpu=1,
                                                                      partition=partition))  # fits its node
        assert second.status_code in (200, 201), second.text
        second_id = second.json()["id"]
        time.sleep(3)  # a few ticks of the scheduler
        job = wait_job(user, second_id, "Queued", timeout=1)
        assert job["queuePosition"] == 1 and "capacity" in job["waitReason"], job
        r = user.api("POST", f"/training/{first_id}/halt")
        assert r.status_code == 200, r.text
        job = wait_job(user, second_id, ("Completed", "Failed", "Error", "Killed"), timeout=180)
        assert job["status"] == "Completed", job
    finally:
        user.api("POST", f"/training/{first_id}/halt")


# ------------------------------------------------------------------------------ halting a start
def test_halt_while_the_server_is_being_made(platform, quota_user):
    """A start-up command keeps the spawn pending (the runtime runs it before the server starts):
    a halt meanwhile waits for the start and stops the server, never a 500."""
    user, token = quota_user
    r = user.api("POST", "/notebook/run", json=notebook_body(name="slow-start", entryPoint="sleep 4"))
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    server = f"kqi-{nb_id}"
    assert hub_servers(platform, user.name)[server]["pending"] == "spawn"
    began = time.monotonic()
    r = user.api("POST", f"/notebook/{nb_id}/halt")
    assert r.status_code == 200 and r.json()["status"] == "Killed", r.text
    assert time.monotonic() - began < notebooks_domain.HALT_WAIT_SECONDS + 5
    servers = hub_servers(platform, user.name)
    assert server not in servers or not (servers[server]["ready"] or servers[server]["pending"]), servers
    deadline = time.monotonic() + 20
    while containers(platform, server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers(platform, server) == []


def test_halt_of_a_start_that_takes_longer_answers_409(platform, quota_user):
    user, token = quota_user
    wait = notebooks_domain.HALT_WAIT_SECONDS
    r = user.api("POST", "/notebook/run", json=notebook_body(name="slower-start", entryPoint=f"sleep {int(wait) + 40}"))
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    server = f"kqi-{nb_id}"
    try:
        r = requests.post(f"{platform.api_url}/notebook/{nb_id}/halt", timeout=wait + 30,
                          headers={"Authorization": f"Bearer {user.token}"})
        assert r.status_code == 409, r.text
        assert "is still starting" in r.json()["detail"] and "halt it again in a moment" in r.json()["detail"]
        assert hub_servers(platform, user.name)[server]["pending"] == "spawn"  # the start went on, untouched
        nb = user.api("GET", f"/notebook/{nb_id}").json()
        assert nb["status"] == "Pending", nb
        # once it runs, the halt stops it
        wait_notebook(platform, user.token, nb_id, "Running", timeout=180)
        r = user.api("POST", f"/notebook/{nb_id}/halt")
        assert r.status_code == 200 and r.json()["status"] == "Killed", r.text
    finally:
        requests.post(f"{platform.api_url}/notebook/{nb_id}/halt", timeout=wait + 30,
                      headers={"Authorization": f"Bearer {user.token}"})
