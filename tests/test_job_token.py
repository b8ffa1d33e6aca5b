"""Job tokens (KQI_TOKEN) on a real KQI Hub: a running job acts as its owner in the job's tenant,
with the rights the owner has there now, for the job's life only (KAMONOHASHI's semantics, so
the official `kqi` CLI works inside a job).

The token is read the way a user could: the job writes `$KQI_TOKEN` into /kqi/output and sleeps,
the test reads the file through the container-files API and then uses the token from outside
(it does not depend on how the job is sandboxed).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid

import pytest
import requests

from kqi_services.hub_client import HubClient, HubError
from kqi_services.permissions import Access, job_identity, job_token_refusal

from .platform import ModelRepo, TenantUser, job_row_id, wait_job

SLEEPER = "echo $KQI_TOKEN > /kqi/output/token.txt && sleep 600"
FINISHED = ("Completed", "Failed", "Killed", "Error")


# ------------------------------------------------------------------------------ pure rules
def test_job_identity_is_the_owner_in_the_job_tenant_only():
    owner = {"name": "ann", "groups": ["a", "b"], "roles": ["user", "kqi-system-admin", "kqi-tenant-admin.b"]}
    identity = job_identity(owner, "a")
    assert (identity.name, identity.kind, identity.tenants, identity.system_admin) == ("ann", "job", {"a": False},
                                                                                     False)
    assert job_identity(owner, "b").tenants == {"b": True}  # an admin of the job's tenant stays one
    assert job_identity(owner, "c") is None  # not (or no longer) a member
    assert job_identity(None, "a") is None  # the owner is gone


def test_job_token_refusals():
    assert "system administration" in job_token_refusal(Access.SYSTEM_ADMIN, "GET")
    for method in ("POST", "PUT", "DELETE"):
        assert "its job's tenant only" in job_token_refusal(Access.AUTHENTICATED, method)
    assert job_token_refusal(Access.AUTHENTICATED, "GET") is None
    for access in (Access.TENANT_USER, Access.TENANT_ADMIN):
        for method in ("GET", "POST", "PUT", "DELETE"):
            assert job_token_refusal(access, method) is None


async def test_user_lookup_cache():
    hub = HubClient("http://127.0.0.1:1/hub/api", "unused")
    calls = []
    answers = {"ann": {"name": "ann", "groups": ["a"]}}

    async def get_user(name):
        calls.append(name)
        await asyncio.sleep(0.05)
        if name == "broken":
            raise HubError(502, "hub down")
        return answers.get(name)

    hub.get_user = get_user
    # concurrent callers share one hub call; later ones within max_age are answered from the cache
    results = await asyncio.gather(*(hub.get_user_cached("ann", 0.5) for _ in range(5)))
    assert all(r == answers["ann"] for r in results) and calls == ["ann"]
    assert await hub.get_user_cached("ann", 0.5) == answers["ann"] and calls == ["ann"]
    assert await hub.get_user_cached("nobody", 0.5) is None and calls == ["ann", "nobody"]
    # ... until it is older than max_age
    await asyncio.sleep(0.5)
    answers["ann"] = {"name": "ann", "groups": []}
    assert await hub.get_user_cached("ann", 0.5) == {"name": "ann", "groups": []} and calls.count("ann") == 2
    assert "nobody" not in hub._user_cache  # stale entries are dropped
    # max_age 0: the hub every time
    await hub.get_user_cached("ann", 0)
    await hub.get_user_cached("ann", 0)
    assert calls.count("ann") == 4
    # a failure is not cached
    for _ in range(2):
        with pytest.raises(HubError):
            await hub.get_user_cached("broken", 5)
    assert calls.count("broken") == 2


# ------------------------------------------------------------------------------ helpers
class Env:
    """Tenant A and B, an owner in both, a colleague in A, a model repository and a dataset of A."""

    def __init__(self, platform, tmp):
        self.platform, self.tmp = platform, tmp
        self.a, self.b = platform.create_tenant(), platform.create_tenant()
        name, password = platform.create_user(tenants=[self.a["name"], self.b["name"]])
        self.owner = TenantUser(platform, self.a, name, password, platform.login(name, password, self.a["id"]))
        self.owner_in_b = TenantUser(platform, self.b, name, password, platform.login(name, password, self.b["id"]))
        self.repo = ModelRepo(platform, os.path.join(tmp, "work"), "jobtoken", f"model-{uuid.uuid4().hex[:8]}",
                              tenant=self.a)
        self.commit = self.repo.commit({"README.md": "a model\n"}, "first")
        self.data_a = self.json(self.owner, "POST", "/data", 201, json={"name": "a-data"})["id"]
        self.dataset = self.json(self.owner, "POST", "/datasets", 201, json={
            "name": "a-set", "entries": {"training": [{"id": self.data_a}]}})["id"]
        self.data_b = self.json(self.owner_in_b, "POST", "/data", 201, json={"name": "b-data"})["id"]
        self.started: list[tuple[TenantUser, int]] = []

    @staticmethod
    def json(user: TenantUser, method: str, path: str, status: int, **kwargs):
        r = user.api(method, path, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def member(self, admin_of_a: bool = False) -> TenantUser:
        name, password = self.platform.create_user(tenants=[self.a["name"]],
                                                   admin_of=[self.a["name"]] if admin_of_a else [])
        return TenantUser(self.platform, self.a, name, password, self.platform.login(name, password, self.a["id"]))

    def submit(self, user: TenantUser, name: str, entry: str) -> int:
        body = {"name": name, "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": self.dataset,
                "gitModel": {"owner": self.repo.owner, "repository": self.repo.name, "commitId": self.commit},
                "entryPoint": entry, "cpu": 0.1, "memory": 0.1, "gpu": 0}
        job_id = self.json(user, "POST", "/training/run", 201, json=body)["id"]
        self.started.append((user, job_id))
        return job_id

    def live_token(self, user: TenantUser, name: str) -> tuple[int, str]:
        """Start a SLEEPER training of `user` in tenant A; its id and its KQI_TOKEN, read from its output."""
        job_id = self.submit(user, name, SLEEPER)
        wait_job(user, job_id, "Running", timeout=120)
        deadline = time.monotonic() + 60
        while True:
            listing = self.json(user, "GET", f"/training/{job_id}/container-files", 200, params={"withUrl": "true"})
            found = [f for f in listing["files"] if f["fileName"] == "token.txt" and f["size"]]
            if found:
                token = requests.get(found[0]["url"], timeout=10).text
                if token.endswith("\n"):
                    return job_id, token.strip()
            assert time.monotonic() < deadline, f"training {job_id} wrote no token: {wait_job(user, job_id, ())}"
            time.sleep(0.2)

    def with_token(self, token: str, method: str, path: str, **kwargs) -> requests.Response:
        return self.platform.api(method, path, token, **kwargs)

    def cli_home(self, token: str) -> str:
        """A HOME whose ~/.kqi/config.json holds the job token, as a `kqi` inside the job would use."""
        home = os.path.join(self.tmp, f"home-{uuid.uuid4().hex[:6]}")
        os.makedirs(os.path.join(home, ".kqi"))
        with open(os.path.join(home, ".kqi", "config.json"), "w") as f:
            json.dump({"server": self.platform.service_url, "token": token}, f)
        return home

    def halt(self, user: TenantUser, job_id: int) -> None:
        r = user.api("POST", f"/training/{job_id}/halt")
        assert r.status_code in (200, 409), r.text
        wait_job(user, job_id, FINISHED, timeout=60)


def refused(r: requests.Response, status: int, words: str) -> None:
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert words in r.json()["detail"], r.text


@pytest.fixture(scope="module")
def env(platform, tmp_path_factory):
    e = Env(platform, str(tmp_path_factory.mktemp("job-token")))
    yield e
    for user, job_id in e.started:
        user.api("POST", f"/training/{job_id}/halt")


@pytest.fixture(scope="module")
def running(env):
    """The owner's sleeping training in tenant A and its token."""
    return env.live_token(env.owner, "token-main")


# ------------------------------------------------------------------------------ tests
def test_kqi_cli_with_a_job_token_acts_as_the_owner_in_the_tenant(env, running, tmp_path):
    job_id, token = running
    assert token.startswith(f"kqi-job.{job_row_id(env.owner, job_id)}.")  # (the job's table id)
    colleague = env.member()
    other = env.submit(colleague, "colleague-run", "true")  # another user's training in the same tenant
    wait_job(colleague, other, FINISHED, timeout=120)
    home = env.cli_home(token)
    cli = lambda *args: env.platform.cli(home, *args)  # noqa: E731

    # data: list (tenant A only), create with a file
    listed = cli("data", "list").stdout
    assert "a-data" in listed and "b-data" not in listed
    (tmp_path / "made.txt").write_text("made in a job\n")
    made = int(re.search(r"created (\d+)", cli("data", "create", "-n", "job-data", "-f",
                                                 str(tmp_path / "made.txt")).stdout).group(1))
    data = env.json(env.owner, "GET", f"/data/{made}", 200)
    assert data["name"] == "job-data" and data["createdBy"] == env.owner.name
    files = env.json(env.owner, "GET", f"/data/{made}/files", 200)
    assert [f["fileName"] for f in files] == ["made.txt"]

    # trainings: read another one, attach files to its own and to another one
    assert "colleague-run" in cli("training", "get", str(other)).stdout
    assert "colleague-run" in cli("training", "list").stdout
    (tmp_path / "own.txt").write_text("own\n")
    (tmp_path / "theirs.txt").write_text("theirs\n")
    cli("training", "upload-file", str(job_id), "-f", str(tmp_path / "own.txt"))
    cli("training", "upload-file", str(other), "-f", str(tmp_path / "theirs.txt"))
    assert "own.txt" in {f["fileName"] for f in env.json(env.owner, "GET", f"/training/{job_id}/files", 200)}
    assert "theirs.txt" in {f["fileName"] for f in env.json(colleague, "GET", f"/training/{other}/files", 200)}

    # ... and submit a training, as its owner, in its tenant
    created = int(re.search(r"created (\d+)", cli(
        "training", "create", "-n", "from-a-job", "-rim", "python", "-rt", "3.11", "-d", str(env.dataset),
        "-e", "true", "-go", env.repo.owner, "-gr", env.repo.name, "-c", "1", "-mem", "1", "-g", "0").stdout).group(1))
    env.started.append((env.owner, created))
    child = wait_job(env.owner, created, FINISHED, timeout=120)
    assert child["createdBy"] == env.owner.name and child["status"] == "Completed", child


def test_job_token_stays_in_the_job_tenant(env, running):
    job_id, token = running
    b = str(env.owner_in_b.tenant["id"])
    # the owner reaches B's data with a token of B ...
    assert env.owner_in_b.api("GET", f"/data/{env.data_b}").status_code == 200
    # ... the job token never does, whatever the request names
    for extra in ({}, {"headers": {"X-KQI-Tenant": b}}, {"cookies": {"kqi-tenant": b}}):
        assert env.with_token(token, "GET", f"/data/{env.data_b}", **extra).status_code == 404, extra
        names = {d["name"] for d in env.with_token(token, "GET", "/data", **extra).json()}
        assert "a-data" in names and "b-data" not in names, extra
        assert env.with_token(token, "GET", "/tenant", **extra).status_code == 403  # tenant-admin route
    r = env.with_token(token, "POST", "/data", headers={"X-KQI-Tenant": b}, json={"name": "where"})
    assert r.status_code == 201
    assert env.json(env.owner, "GET", f"/data/{r.json()['id']}", 200)["name"] == "where"  # made in A
    # the account it sees lists the job's tenant only (the owner's own token lists both)
    account = env.with_token(token, "GET", "/account", headers={"X-KQI-Tenant": b}).json()
    assert account["selectedTenant"]["id"] == env.owner.tenant["id"], account
    assert [t["id"] for t in account["tenants"]] == [env.owner.tenant["id"]], account
    assert len(env.owner_in_b.api("GET", "/account").json()["tenants"]) == 2
    # no other tokens, no changes to the owner's account
    refused(env.with_token(token, "POST", f"/account/tenants/{b}/token", json={}), 403, "its job's tenant only")
    refused(env.with_token(token, "PUT", "/account/password", json={"currentPassword": env.owner.password,
                                                                       "newPassword": "x" + env.owner.password}),
            403, "its job's tenant only")


def test_tenant_admin_rights_follow_the_owner(env, running):
    job_id, token = running
    a = env.a["name"]
    refused(env.with_token(token, "GET", "/tenant/users"), 403, "tenant-admin")
    admins = env.platform.hub("GET", f"/kqi/tenants/{a}").json()["admins"]
    r = env.platform.hub("PUT", f"/kqi/tenants/{a}", json={"admins": admins + [env.owner.name]})
    assert r.status_code == 200, r.text
    try:
        r = env.with_token(token, "GET", "/tenant/users")
        assert r.status_code == 200, r.text
        assert env.owner.name in {u["name"] for u in r.json()}
    finally:
        r = env.platform.hub("PUT", f"/kqi/tenants/{a}", json={"admins": admins})
        assert r.status_code == 200, r.text
    refused(env.with_token(token, "GET", "/tenant/users"), 403, "tenant-admin")


def test_job_token_of_a_system_admin_cannot_reach_admin_routes(env):
    platform, a = env.platform, env.a["name"]
    # the system administrator joins tenant A for this test only
    r = platform.hub("POST", f"/groups/{a}/users", json={"users": ["admin"]})
    assert r.status_code == 200, r.text
    try:
        admin = TenantUser(platform, env.a, "admin", platform.admin_password,
                           platform.login("admin", platform.admin_password, env.a["id"]))
        assert admin.api("GET", "/admin/tenants").status_code == 200
        job_id, token = env.live_token(admin, "admin-run")
        for method, path in (("GET", "/admin/tenants"), ("GET", "/admin/users"),
                             ("POST", "/admin/tenants"), ("DELETE", f"/admin/tenants/{env.b['id']}")):
            refused(env.with_token(token, method, path, json={} if method == "POST" else None), 403,
                    "cannot use system administration routes")
        assert env.with_token(token, "GET", "/data").status_code == 200
        r = env.with_token(token, "GET", "/account")
        assert r.status_code == 200 and r.json()["isSystemAdmin"] is False, r.text
        env.halt(admin, job_id)
    finally:
        r = platform.hub("DELETE", f"/groups/{a}/users", json={"users": ["admin"]})
        assert r.status_code == 200, r.text


def test_job_token_stops_when_the_owner_leaves_the_tenant(env):
    leaver = env.member()
    job_id, token = env.live_token(leaver, "leaver-run")
    assert env.with_token(token, "GET", "/data").status_code == 200
    r = env.platform.hub("DELETE", f"/groups/{env.a['name']}/users", json={"users": [leaver.name]})
    assert r.status_code == 200, r.text
    for method, path in (("GET", "/data"), ("GET", f"/training/{job_id}"), ("POST", f"/training/{job_id}/files")):
        refused(env.with_token(token, method, path, json={} if method == "POST" else None), 403,
                "no longer a member of the tenant")
    # back in the tenant, the job (still running) may use it again
    r = env.platform.hub("POST", f"/groups/{env.a['name']}/users", json={"users": [leaver.name]})
    assert r.status_code == 200, r.text
    assert env.with_token(token, "GET", "/data").status_code == 200
    env.halt(leaver, job_id)


def test_job_token_dies_with_the_job(env, running):
    job_id, token = running
    assert env.with_token(token, "GET", f"/training/{job_id}").status_code == 200
    env.halt(env.owner, job_id)
    for method, path in (("GET", "/data"), ("GET", f"/training/{job_id}"), ("POST", "/data")):
        refused(env.with_token(token, method, path, json={"name": "late"} if method == "POST" else None), 401,
                "its job has ended")
    result = env.platform.cli(env.cli_home(token), "data", "list", check=False)
    assert result.returncode != 0 and "401" in result.stdout + result.stderr
