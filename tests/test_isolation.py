"""Every REST route keeps callers apart: who may call it, and which tenant's objects they see.

The cases are generated from `api_routes()` × the HTTP methods each handler implements, so a
new route is checked without anyone writing a test for it, and a new route whose path takes
parameters fails `test_every_parameterised_route_has_an_isolation_case` until SAMPLES below
says how to name an object of tenant A for it.

Against a real hub + proxy + kqi service. Mutating calls (POST/PUT/PATCH/DELETE) are sent
with `{}` as the body, by callers that must be refused: the permission check comes before
the body is read. `test_zz_nothing_changed` re-reads everything at the end.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

import pytest
import requests

from kqi_services.app import api_routes
from kqi_services.openapi import _split_pattern, implemented_methods
from kqi_services.permissions import Access

SERVICE = "kqi"
MUTATING = ("POST", "PUT", "PATCH", "DELETE")
TENANT_SCOPED = (Access.AUTHENTICATED, Access.TENANT_USER, Access.TENANT_ADMIN)


# ------------------------------------------------------------------ the world
@dataclass
class Caller:
    name: str
    token: str


@dataclass
class World:
    """Two tenants A and B with a user and an administrator each, and odd credentials."""

    platform: object
    a: dict
    b: dict
    a_user: Caller
    a_admin: Caller
    b_user: Caller
    b_admin: Caller
    a_spare: Caller  # a member of A whose odd tokens below are made for (not in the snapshot)
    admin: Caller
    stranger: Caller  # a hub user in no tenant, with a plain hub token (no kqi scopes)
    restricted: str  # a token of a tenant member limited to an unrelated scope
    no_tenant: str  # a token of a tenant member with access to the service but no tenant scope
    expired: str
    revoked: str
    session: requests.Session = field(default_factory=requests.Session)
    _cache: dict = field(default_factory=dict)

    def call(self, method: str, path: str, token: str | None = None, *, auth_scheme: str = "Bearer",
             **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"{auth_scheme} {token}"
        if method in MUTATING and "json" not in kwargs and "data" not in kwargs:
            kwargs["json"] = {}
        return self.session.request(method, self.platform.api_url + path, headers=headers, timeout=30,
                                    **kwargs)

    def once(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def a_markers(self) -> list[str]:
        """Strings that only tenant A's data contains."""
        return [self.a["name"], self.a["displayName"], self.a_user.name, self.a_admin.name, self.a_spare.name]


def hub_token(platform, user: str, scopes: list[str] | None, expires_in: int | None = None) -> dict:
    body = {"note": "isolation test"}
    if scopes is not None:
        body["scopes"] = scopes
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = platform.hub("POST", f"/users/{user}/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def hub_accepts(platform, token: str) -> bool:
    return requests.get(platform.hub_api_url + "/user", headers={"Authorization": f"token {token}"},
                        timeout=10).status_code == 200


def tenant_scopes(tenant: str) -> list[str]:
    return [f"custom:kqi:user!group={tenant}", f"access:services!service={SERVICE}"]


@pytest.fixture(scope="module")
def world(platform):
    tag = uuid.uuid4().hex[:6]
    a = platform.create_tenant(f"iso-a-{tag}")
    b = platform.create_tenant(f"iso-b-{tag}")

    def member(prefix, tenant, admin=False):
        name, password = platform.create_user(
            f"{prefix}-{tag}", tenants=[tenant["name"]], admin_of=[tenant["name"]] if admin else []
        )
        return Caller(name, platform.login(name, password))

    a_user, a_admin = member("iso-au", a), member("iso-aa", a, admin=True)
    b_user, b_admin = member("iso-bu", b), member("iso-ba", b, admin=True)
    a_spare = member("iso-as", a)
    admin = Caller("admin", platform.admin_token())
    stranger_name, _ = platform.create_user(f"iso-nobody-{tag}")
    stranger = Caller(stranger_name, hub_token(platform, stranger_name, None)["token"])

    restricted = hub_token(platform, a_spare.name, ["read:users:name!user"])["token"]
    no_tenant = hub_token(platform, a_spare.name, [f"access:services!service={SERVICE}"])["token"]

    # an expired token: the same scopes with a longer life work (checked below), this one
    # is refused only because it expired. It is never shown to the service while valid.
    expired = hub_token(platform, a_spare.name, tenant_scopes(a["name"]), expires_in=1)["token"]
    # a revoked token: the hub accepted it until it was revoked
    revoked_model = hub_token(platform, a_spare.name, tenant_scopes(a["name"]))
    assert hub_accepts(platform, revoked_model["token"])
    r = platform.hub("DELETE", f"/users/{a_spare.name}/tokens/{revoked_model['id']}")
    assert r.status_code == 204, r.text

    w = World(platform, a, b, a_user, a_admin, b_user, b_admin, a_spare, admin, stranger, restricted,
              no_tenant, expired, revoked_model["token"])
    control = hub_token(platform, a_spare.name, tenant_scopes(a["name"]), expires_in=3600)["token"]
    r = w.call("GET", "/account", control)
    assert r.status_code == 200 and r.json()["selectedTenant"]["name"] == a["name"], r.text
    w.a_details = _admin_json(w, "GET", f"/admin/tenants/{a['id']}")
    # make every object the cases name now, so that nothing is made after the snapshot
    patterns = {p for p, *_ in api_routes()}
    for pattern in sorted(patterns):
        if pattern in SAMPLES:
            SAMPLES[pattern].values(w)
        if pattern in LIST_SEEDS:
            LIST_SEEDS[pattern](w)
    w.a_details = _admin_json(w, "GET", f"/admin/tenants/{a['id']}")
    deadline = time.monotonic() + 10
    while hub_accepts(platform, expired):
        assert time.monotonic() < deadline, "the hub still accepts a token made with expires_in=1"
        time.sleep(0.5)
    w.snapshot_before = snapshot(w)
    yield w
    # the running training of tenant A ends with the module (it would hold its cpu for an hour)
    if getattr(w, "running_job_id", None) is not None:
        w.call("POST", f"/training/{w.running_job_id}/halt", w.a_user.token)


# -------------------------------------------------------------- path samples
@dataclass(frozen=True)
class Sample:
    """How to fill a route's path parameters with an object of tenant A.

    values: the path parameters, in order, naming an object that belongs to tenant A (or,
        with of_tenant_a=False, a value that belongs to no tenant).
    of_tenant_a: callers of tenant B must get 404 on tenant-scoped routes.
    control: whom to ask for GET with these values, expecting 200 (proves the sample
        names a real object, so a 404 for tenant B means something); one of "a_user",
        "a_admin", "admin", or None when the route has no GET.
    not_404: methods whose call by tenant B is not a cross-tenant access, with the reason.
    """

    values: Callable[[World], tuple]
    of_tenant_a: bool = True
    control: str | None = None
    not_404: dict = field(default_factory=dict)  # method -> why tenant B's call is not checked for 404


# ------------------------------------------------- objects of tenant A, made once
def _admin_json(w: World, method: str, path: str, **kwargs):
    r = w.call(method, path, w.admin.token, **kwargs)
    assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r.json()


def _git(*args, cwd=None):
    subprocess.run(["git", "-c", "user.name=Isolation", "-c", "user.email=iso@example.com",
                    "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True)


def git_of_a(w: World) -> dict:
    """A git server (service type Local: bare repositories on this machine) that only tenant A
    may use, with one repository iso-owner/iso-repo holding one commit."""

    def make():
        root = os.path.join(os.path.dirname(w.platform.data_dir), f"iso-git-{uuid.uuid4().hex[:6]}")
        work = os.path.join(root, "work")
        os.makedirs(work)
        _git("init", "-q", work)
        with open(os.path.join(work, "README.md"), "w") as f:
            f.write(f"tenant {w.a['name']}\n")
        _git("add", "README.md", cwd=work)
        _git("commit", "-q", "-m", "first", cwd=work)
        bare = os.path.join(root, "repos", w.a["name"], "iso-owner", "iso-repo.git")  # the tenant's folder
        _git("clone", "-q", "--bare", work, bare)
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True,
                             text=True).stdout.strip()
        server = _admin_json(w, "POST", "/admin/git/endpoints", json={
            "name": f"iso-git-{w.a['name']}", "serviceType": 6,
            "repositoryUrl": "file://" + os.path.join(root, "repos")})
        tenant = _admin_json(w, "GET", f"/admin/tenants/{w.a['id']}")
        body = {k: tenant[k] for k in ("displayName", "gitIds", "registryIds", "storageId", "defaultGitId",
                                       "defaultRegistryId")}
        body["gitIds"] = tenant["gitIds"] + [server["id"]]
        _admin_json(w, "PUT", f"/admin/tenants/{w.a['id']}", json=body)
        return {"id": server["id"], "owner": "iso-owner", "repo": "iso-repo", "commit": sha}

    return w.once("git", make)


def data_of_a(w: World) -> dict:
    """A data of tenant A with one uploaded file, and a dataset of it."""

    def make():
        token = w.a_user.token
        r = w.call("POST", "/data", token, json={"name": f"{w.a['name']}-data", "memo": w.a["name"],
                                                 "tags": [f"{w.a['name']}-tag"]})
        assert r.status_code == 201, r.text
        data_id = r.json()["id"]
        upload = upload_file(w, token, "iso.txt", b"tenant A only\n")
        r = w.call("POST", f"/data/{data_id}/files", token,
                   json={"files": [{"fileName": "iso.txt", "storedPath": upload["storedPath"]}]})
        assert r.status_code == 201, r.text
        file_id = r.json()["files"][0]["fileId"]
        r = w.call("POST", "/datasets", token, json={"name": f"{w.a['name']}-dataset",
                                                     "entries": {"training": [{"id": data_id}]}})
        assert r.status_code == 201, r.text
        return {"data": data_id, "file": file_id, "tag": f"{w.a['name']}-tag", "dataset": r.json()["id"]}

    return w.once("data", make)


def upload_file(w: World, token: str, name: str, content: bytes, kind: str = "Data") -> dict:
    """The SDK's upload protocol: parameter, PUT the one part, complete. Returns the upload."""
    r = w.call("GET", "/upload/parameter", token, params={"fileName": name, "partSum": 1, "type": kind})
    assert r.status_code == 200, r.text
    upload = r.json()
    part = w.session.put(upload["uris"][0], data=content, timeout=30)
    assert part.status_code == 200, part.text
    r = w.call("POST", "/upload/complete", token, json={
        "key": upload["key"], "uploadId": upload["uploadId"], "partETags": [f"1+{part.headers['ETag'].strip(chr(34))}"]})
    assert r.status_code == 200, r.text
    return upload


def data_of_b(w: World) -> int:
    """A data of tenant B (to try to register tenant A's uploads on)."""

    def make():
        r = w.call("POST", "/data", w.b_user.token, json={"name": "b-data"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    return w.once("data_b", make)


JOB_UPLOAD_TYPES = {"training": "TrainingHistoryAttachedFiles", "inference": "InferenceHistoryAttachedFiles"}
JOB_BASES = {"training": "/training", "inference": "/inferences"}
FINISHED = ("Completed", "Failed", "Killed", "Error")


def job_of_a(w: World, kind: str) -> dict:
    """A finished job of tenant A (run, then halted) with a file attached by its owner."""

    def make():
        token = w.a_user.token
        git, data = git_of_a(w), data_of_a(w)
        body = {"name": f"iso-{kind}", "memo": w.a["name"], "tags": [f"{w.a['name']}-tag"],
                "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": data["dataset"],
                "gitModel": {"gitId": git["id"], "owner": git["owner"], "repository": git["repo"],
                             "commitId": git["commit"]},
                "entryPoint": "true", "cpu": 0.5, "memory": 0.5, "gpu": 0}
        base = JOB_BASES[kind]
        r = w.call("POST", f"{base}/run", token, json=body)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        w.call("POST", f"{base}/{job_id}/halt", token)  # 409 when it has finished already
        deadline = time.monotonic() + 120
        while True:
            r = w.call("GET", f"{base}/{job_id}", token)
            assert r.status_code == 200, r.text
            if r.json()["status"] in FINISHED:
                break
            assert time.monotonic() < deadline, f"{kind} {job_id} did not finish: {r.text[:300]}"
            time.sleep(0.5)
        upload = upload_file(w, token, "attached.txt", b"tenant A only\n", JOB_UPLOAD_TYPES[kind])
        r = w.call("POST", f"{base}/{job_id}/files", token,
                   json={"fileName": "attached.txt", "storedPath": upload["storedPath"]})
        assert r.status_code == 201, r.text
        return {"id": job_id, "file": r.json()["fileId"]}

    return w.once(f"job-{kind}", make)


def preprocessing_of_a(w: World) -> dict:
    """A preprocessing of tenant A with an open (offline) history over tenant A's data."""

    def make():
        token = w.a_user.token
        git, data = git_of_a(w), data_of_a(w)
        r = w.call("POST", "/preprocessings", token, json={
            "name": f"{w.a['name']}-prep", "memo": w.a["name"], "entryPoint": "true",
            "containerImage": {"image": "python", "tag": "3.11"}, "cpu": 0.5, "memory": 0.5, "gpu": 0,
            "gitModel": {"gitId": git["id"], "owner": git["owner"], "repository": git["repo"],
                         "commitId": git["commit"]}})
        assert r.status_code == 201, r.text
        prep_id = r.json()["id"]
        r = w.call("POST", f"/preprocessings/{prep_id}/histories/{data['data']}", token)
        assert r.status_code == 201, r.text
        return {"id": prep_id, "data": data["data"]}

    return w.once("preprocessing", make)


def notebook_of_a(w: World) -> int:
    """A notebook of tenant A (its owner's hub named server), started and then halted."""

    def make():
        token = w.a_user.token
        r = w.call("POST", "/notebook/run", token, json={"name": "iso-nb", "memo": w.a["name"], "cpu": 1,
                                                          "memory": 1, "gpu": 0, "expiresIn": 3600})
        assert r.status_code == 201, r.text
        nb_id = r.json()["id"]
        deadline = time.monotonic() + 120
        halted = False
        while True:
            r = w.call("GET", f"/notebook/{nb_id}", token)
            assert r.status_code == 200, r.text
            status = r.json()["status"]
            if status == "Running" and not halted:
                r = w.call("POST", f"/notebook/{nb_id}/halt", token)
                assert r.status_code == 200, r.text
                halted = True
            elif status not in ("Running", "Pending"):
                return nb_id
            assert time.monotonic() < deadline, f"notebook {nb_id} is still {status}"
            time.sleep(0.5)

    return w.once("notebook", make)


def running_of_a(w: World) -> str:
    """The container name of a training of tenant A that runs (for the resource monitor's routes);
    small (0.1 cpu); it runs for the whole module (the snapshots before and after must see it
    running) and the world's teardown halts it."""

    def make():
        token = w.a_user.token
        git, data = git_of_a(w), data_of_a(w)
        r = w.call("POST", "/training/run", token, json={
            "name": "iso-running", "containerImage": {"image": "python", "tag": "3.11"},
            "dataSetId": data["dataset"], "entryPoint": "sleep 3600", "cpu": 0.1, "memory": 0.1, "gpu": 0,
            "gitModel": {"gitId": git["id"], "owner": git["owner"], "repository": git["repo"],
                         "commitId": git["commit"]}})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        w.running_job_id = job_id
        deadline = time.monotonic() + 120
        while True:
            found = [c["name"] for c in _admin_json(w, "GET", "/admin/resource/containers")
                     if c["tenantId"] == w.a["id"] and c["kind"] == "training" and c["id"] == job_id]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"training {job_id} of tenant A did not start"
            time.sleep(0.5)

    return w.once("running", make)


def _pat_of_a_user(w: World) -> str:
    r = w.call("POST", "/account/tokens", w.a_user.token,
               json={"tenantId": w.a["id"], "note": "isolation", "expiresInDays": 1})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def route_patterns() -> set[str]:
    return {p for p, *_ in api_routes()}


def first_id(w: World, path: str) -> int:
    rows = _admin_json(w, "GET", path)
    assert rows, f"GET {path} is empty: the isolation case needs one row"
    return rows[0]["id"]


#: route pattern (exactly as in `default_handlers`) -> its isolation case
GIT_REPO = r"/git/([^/]+)/repos/(.+)/([^/]+)"
SAMPLES: dict[str, Sample] = {
    # account and tenants
    r"/account/tenants/([^/]+)/token": Sample(lambda w: (w.a["id"],)),
    # a personal access token of tenant A's user: revocable by its owner only
    r"/account/tokens/([^/]+)": Sample(lambda w: (w.once("pat", lambda: _pat_of_a_user(w)),)),
    r"/admin/tenants/([^/]+)": Sample(lambda w: (w.a["id"],), control="admin"),
    r"/admin/tenants/([^/]+)/job-environment": Sample(lambda w: (w.a["id"],), control="admin"),
    # infrastructure (system administrators; shared by tenants)
    r"/admin/git/endpoints/([^/]+)": Sample(lambda w: (git_of_a(w)["id"],), control="admin"),
    r"/admin/registry/endpoints/([^/]+)": Sample(lambda w: (w.a_details["registryIds"][0],), of_tenant_a=False,
                                                 control="admin"),
    r"/admin/storage/endpoints/([^/]+)": Sample(lambda w: (w.a_details["storageId"],), of_tenant_a=False,
                                                control="admin"),
    r"/admin/nodes/([^/]+)": Sample(lambda w: (w.once("node", lambda: first_id(w, "/admin/nodes")),),
                                    of_tenant_a=False, control="admin"),
    # git browsing: a git server that only tenant A may use
    r"/git/([^/]+)/repos": Sample(lambda w: (git_of_a(w)["id"],), control="a_user"),
    GIT_REPO + r"/branches": Sample(lambda w: (git_of_a(w)["id"], "iso-owner", "iso-repo"), control="a_user"),
    GIT_REPO + r"/commits": Sample(lambda w: (git_of_a(w)["id"], "iso-owner", "iso-repo"), control="a_user"),
    GIT_REPO + r"/commits/([^/]+)": Sample(
        lambda w: (git_of_a(w)["id"], "iso-owner", "iso-repo", git_of_a(w)["commit"]), control="a_user"),
    # users
    r"/admin/users/([^/]+)": Sample(lambda w: (w.a_user.name,), control="admin"),
    r"/admin/users/([^/]+)/displayName": Sample(lambda w: (w.a_user.name,)),
    r"/admin/users/([^/]+)/password": Sample(lambda w: (w.a_user.name,)),
    r"/admin/users/([^/]+)/tenants": Sample(lambda w: (w.a_user.name,)),
    r"/tenant/users/([^/]+)": Sample(
        lambda w: (w.a_user.name,), control="a_admin",
        not_404={"PUT": "PUT /tenant/users/{name} adds an existing hub user to the caller's tenant by design"}),
    # data and datasets
    r"/data/([^/]+)": Sample(lambda w: (data_of_a(w)["data"],), control="a_user"),
    r"/data/([^/]+)/files": Sample(lambda w: (data_of_a(w)["data"],), control="a_user"),
    r"/data/([^/]+)/files/([^/]+)": Sample(lambda w: (data_of_a(w)["data"], data_of_a(w)["file"])),
    r"/data/([^/]+)/tags/([^/]+)": Sample(lambda w: (data_of_a(w)["data"], data_of_a(w)["tag"])),
    r"/datasets/([^/]+)": Sample(lambda w: (data_of_a(w)["dataset"],), control="a_user"),
    r"/datasets/([^/]+)/copy": Sample(lambda w: (data_of_a(w)["dataset"],)),
    r"/datasets/([^/]+)/files": Sample(lambda w: (data_of_a(w)["dataset"],), control="a_user"),
    r"/datasets/([^/]+)/pathpairs": Sample(lambda w: (data_of_a(w)["dataset"],), control="a_user"),
}

# every job kind has the same routes (kqi_services/api/jobs_common.py: job_routes)
for _kind, _base in JOB_BASES.items():
    _job = (lambda kind: lambda w: (job_of_a(w, kind)["id"],))(_kind)
    _job_file = (lambda kind: lambda w: (job_of_a(w, kind)["id"], job_of_a(w, kind)["file"]))(_kind)
    SAMPLES.update({
        rf"{_base}/([0-9]+)": Sample(_job, control="a_user"),
        rf"{_base}/([0-9]+)/halt": Sample(_job),
        rf"{_base}/([0-9]+)/user-cancel": Sample(_job),
        rf"{_base}/([0-9]+)/complete": Sample(_job),
        rf"{_base}/([0-9]+)/files": Sample(_job, control="a_user"),
        rf"{_base}/([0-9]+)/files/([^/]+)": Sample(_job_file),
        rf"{_base}/([0-9]+)/container-files": Sample(_job, control="a_user"),
        rf"{_base}/([0-9]+)/log": Sample(_job, control="a_user"),
    })
SAMPLES[r"/training/([0-9]+)/tensorboard"] = Sample(lambda w: (job_of_a(w, "training")["id"],), control="a_user")
SAMPLES[r"/admin/tensorboards/([0-9]+)"] = Sample(lambda w: (job_of_a(w, "training")["id"],))

_notebook = lambda w: (notebook_of_a(w),)  # noqa: E731
SAMPLES.update({
    r"/notebook/([0-9]+)": Sample(_notebook, control="a_user"),
    r"/notebook/([0-9]+)/halt": Sample(_notebook),
    r"/notebook/([0-9]+)/rerun": Sample(_notebook),
    r"/notebook/([0-9]+)/endpoint": Sample(_notebook),  # 404 for its owner too while it is not running
    r"/notebook/([0-9]+)/container-files": Sample(_notebook, control="a_user"),
})

_prep = lambda w: (preprocessing_of_a(w)["id"],)  # noqa: E731
_prep_history = lambda w: (preprocessing_of_a(w)["id"], preprocessing_of_a(w)["data"])  # noqa: E731
SAMPLES.update({
    r"/preprocessings/([0-9]+)": Sample(_prep, control="a_user"),
    r"/preprocessings/([0-9]+)/run": Sample(_prep),
    r"/preprocessings/([0-9]+)/histories": Sample(_prep, control="a_user"),
    r"/preprocessings/([0-9]+)/histories/([0-9]+)": Sample(_prep_history, control="a_user"),
    r"/preprocessings/([0-9]+)/histories/([0-9]+)/data": Sample(_prep_history),
    r"/preprocessings/([0-9]+)/histories/([0-9]+)/halt": Sample(_prep_history),
    r"/preprocessings/([0-9]+)/histories/([0-9]+)/complete": Sample(_prep_history),
    r"/preprocessings/([0-9]+)/histories/([0-9]+)/log": Sample(_prep_history),
})

# the web shell (WebSocket upgrades; kqi_services/api/shell.py): tenant B gets 404 before any upgrade
SAMPLES.update({
    r"/training/([0-9]+)/shell": Sample(lambda w: (job_of_a(w, "training")["id"],)),
    r"/inferences/([0-9]+)/shell": Sample(lambda w: (job_of_a(w, "inference")["id"],)),
    r"/preprocessings/([0-9]+)/histories/([0-9]+)/shell": Sample(_prep_history),
})

# lineage (kqi_services/api/lineage.py): an inference of tenant A, whose graph reaches its dataset and data
SAMPLES[r"/lineage/([a-z]+)/([0-9]+)"] = Sample(lambda w: ("inference", job_of_a(w, "inference")["id"]),
                                                control="a_user")

# the resource monitor (kqi_services/api/resources.py): a running container of tenant A
_running = lambda w: (running_of_a(w),)  # noqa: E731
_running_admin = lambda w: (w.a["id"], running_of_a(w))  # noqa: E731
SAMPLES.update({
    r"/tenant/resource/containers/([^/]+)": Sample(_running, control="a_admin"),
    r"/tenant/resource/containers/([^/]+)/log": Sample(_running, control="a_admin"),
    r"/admin/resource/containers/([^/]+)/([^/]+)": Sample(_running_admin, control="admin"),
    r"/admin/resource/containers/([^/]+)/([^/]+)/log": Sample(_running_admin, control="admin"),
    r"/admin/resource/containers/([^/]+)/([^/]+)/events": Sample(_running_admin, control="admin"),
})

#: objects of tenant A that the list checks look for, made when the routes that show them exist
LIST_SEEDS: dict[str, Callable[[World], object]] = {
    r"/data": lambda w: (data_of_a(w), data_of_b(w)),
    r"/datasets": data_of_a,
    r"/data/datatags": data_of_a,
    r"/tenant/git/endpoints": git_of_a,
    r"/training": lambda w: job_of_a(w, "training"),
    r"/training/simple": lambda w: job_of_a(w, "training"),
    r"/training/tags": lambda w: job_of_a(w, "training"),
    r"/preprocessings": preprocessing_of_a,
    r"/notebook": notebook_of_a,
    r"/inferences": lambda w: job_of_a(w, "inference"),
    r"/inferences/simple": lambda w: job_of_a(w, "inference"),
    r"/tenant/resource/containers": running_of_a,
    r"/tenant/resource/nodes": running_of_a,
    r"/tenant/resource/available": running_of_a,
    r"/tenant/resource/usage": running_of_a,
    r"/tenant/resource/usage/csv": running_of_a,
}


def route_path(pattern: str, values) -> str:
    values = iter(values)
    out = ""
    for kind, text in _split_pattern(pattern):
        out += text if kind == "literal" else quote(str(next(values)), safe="")
    return out


def sample_path(world: World, pattern: str) -> str:
    sample = SAMPLES.get(pattern)
    groups = [p for p in _split_pattern(pattern) if p[0] == "group"]
    if not groups:
        return route_path(pattern, ())
    if sample is None:
        # the permission check comes first: any value serves for callers who must be refused
        return route_path(pattern, ["0"] * len(groups))
    return route_path(pattern, sample.values(world))


# -------------------------------------------------------------- the operations
OPERATIONS = [
    (pattern, handler, method)
    for pattern, handler, *_ in api_routes()
    for method in implemented_methods(handler)
]


def op_id(op) -> str:
    pattern, _, method = op
    return f"{method} {pattern}"


def ops(*accesses: Access, params: bool | None = None, methods=None) -> list:
    chosen = []
    for op in OPERATIONS:
        pattern, handler, method = op
        access = handler.access_for(method)
        if access not in accesses:
            continue
        has_params = any(p[0] == "group" for p in _split_pattern(pattern))
        if params is not None and has_params != params:
            continue
        if methods is not None and method not in methods:
            continue
        chosen.append(pytest.param(op, id=op_id(op)))
    return chosen


NOT_ANONYMOUS = (Access.AUTHENTICATED, Access.TENANT_USER, Access.TENANT_ADMIN, Access.SYSTEM_ADMIN)

#: cases that reveal a known bug in code these tests do not own: op id -> reason
KNOWN_BUGS: dict[str, str] = {}


def with_known_bugs(params: list) -> list:
    out = []
    for p in params:
        reason = KNOWN_BUGS.get(p.id)
        out.append(pytest.param(*p.values, id=p.id, marks=pytest.mark.xfail(strict=True, reason=reason))
                   if reason else p)
    return out


def error_shape(r: requests.Response, status: int) -> None:
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "errors"}, body
    assert body["status"] == status and body["detail"], body


# ------------------------------------------------------------------- static
@pytest.mark.parametrize("op", [pytest.param(op, id=op_id(op)) for op in OPERATIONS])
def test_every_method_declares_access(op):
    pattern, handler, method = op
    access = handler.access_for(method)
    assert isinstance(access, Access), (
        f"{handler.__module__}.{handler.__name__} implements {method} {pattern} but its `access`"
        f" names no permission for {method}: declare one (kqi_services.permissions.Access)"
    )


@pytest.mark.parametrize("pattern", sorted(p for p, *_ in api_routes()
                                            if any(kind == "group" for kind, _ in _split_pattern(p))))
def test_every_parameterised_route_has_an_isolation_case(pattern):
    assert pattern in SAMPLES, (
        f"the route {pattern!r} takes path parameters but tests/test_isolation.py has no isolation"
        f" case for it: add an entry to SAMPLES that names an object of tenant A (and whom to ask"
        f" for it), so the test can check that tenant B gets 404 for it"
    )


def test_operations_were_found():
    # the enumeration itself must see the routes (an empty list would check nothing)
    seen = {(p, m) for p, _, m in OPERATIONS}
    assert (r"/admin/tenants/([^/]+)", "DELETE") in seen and (r"/account", "GET") in seen


# ------------------------------------------------------ callers with no rights
@pytest.mark.parametrize("op", ops(*NOT_ANONYMOUS))
def test_unauthenticated_callers_get_401(world, op):
    pattern, handler, method = op
    path = sample_path(world, pattern)
    for who, token, scheme in [
        ("no credentials", None, "Bearer"),
        ("an invalid token", "not-a-token-" + uuid.uuid4().hex, "Bearer"),
        ("an invalid token (token scheme)", "not-a-token-" + uuid.uuid4().hex, "token"),
        ("an invalid job token", "kqi-job." + uuid.uuid4().hex, "Bearer"),
        ("an expired token", world.expired, "Bearer"),
        ("a revoked token", world.revoked, "Bearer"),
    ]:
        r = world.call(method, path, token, auth_scheme=scheme)
        assert r.status_code == 401, f"{method} {path} with {who}: {r.status_code} {r.text[:300]}"
        error_shape(r, 401)


@pytest.mark.parametrize("op", ops(*NOT_ANONYMOUS))
def test_callers_without_kqi_scopes_are_refused(world, op):
    pattern, handler, method = op
    path = sample_path(world, pattern)
    for who, token in [
        ("a hub user in no tenant", world.stranger.token),
        ("a tenant member's token limited to read:users:name!user", world.restricted),
    ]:
        r = world.call(method, path, token)
        assert r.status_code in (401, 403), f"{method} {path} by {who}: {r.status_code} {r.text[:300]}"
        error_shape(r, r.status_code)


@pytest.mark.parametrize("op", ops(Access.TENANT_USER, Access.TENANT_ADMIN, Access.SYSTEM_ADMIN))
def test_a_token_without_tenant_scope_gets_403(world, op):
    pattern, handler, method = op
    path = sample_path(world, pattern)
    r = world.call(method, path, world.no_tenant)
    assert r.status_code == 403, f"{method} {path} with no tenant in the token: {r.status_code} {r.text[:300]}"
    error_shape(r, 403)


@pytest.mark.parametrize("op", ops(Access.TENANT_ADMIN, Access.SYSTEM_ADMIN))
def test_tenant_user_gets_403_on_admin_routes(world, op):
    pattern, handler, method = op
    path = sample_path(world, pattern)
    r = world.call(method, path, world.a_user.token)
    assert r.status_code == 403, f"{method} {path} by a tenant user: {r.status_code} {r.text[:300]}"
    error_shape(r, 403)


@pytest.mark.parametrize("op", ops(Access.SYSTEM_ADMIN))
def test_tenant_admin_gets_403_on_system_admin_routes(world, op):
    pattern, handler, method = op
    path = sample_path(world, pattern)
    r = world.call(method, path, world.a_admin.token)
    assert r.status_code == 403, f"{method} {path} by a tenant administrator: {r.status_code} {r.text[:300]}"
    error_shape(r, 403)


def test_directory_orphans_are_for_the_system_administrator_only(world):
    """GET /admin/directory/orphans names other tenants' users and what they run: plain users and
    tenant administrators of either tenant get 403; the system administrator sees no object of A or
    B there, whose owners are all still members of their tenants."""
    for caller in (world.a_user, world.a_admin, world.b_user, world.b_admin):
        r = world.call("GET", "/admin/directory/orphans", caller.token)
        assert r.status_code == 403, f"{caller.name}: {r.status_code} {r.text[:300]}"
        error_shape(r, 403)
    running_of_a(world)  # a training of tenant A runs (its owner a member)
    r = world.call("GET", "/admin/directory/orphans", world.admin.token)
    assert r.status_code == 200, r.text
    ours = [o for o in r.json()["items"] if o["tenantId"] in (world.a["id"], world.b["id"])]
    assert ours == [], ours


# ----------------------------------------------------------- tenant B vs tenant A
def _cross_tenant_ops() -> list:
    chosen = []
    for p in ops(*TENANT_SCOPED, params=True):
        pattern = p.values[0][0]
        sample = SAMPLES.get(pattern)
        if sample is not None and (not sample.of_tenant_a or p.values[0][2] in sample.not_404):
            continue
        chosen.append(p)
    return with_known_bugs(chosen)


@pytest.mark.parametrize("op", _cross_tenant_ops())
def test_tenant_b_gets_404_for_objects_of_tenant_a(world, op):
    pattern, handler, method = op
    sample = SAMPLES.get(pattern)
    if sample is None:
        pytest.fail(f"no isolation case for {pattern!r}: add one to SAMPLES in tests/test_isolation.py")
    access = handler.access_for(method)
    path = route_path(pattern, sample.values(world))
    if method == "GET" and sample.control is not None:
        r = world.call("GET", path, getattr(world, sample.control).token)
        assert r.status_code == 200, f"control: GET {path} by {sample.control}: {r.status_code} {r.text[:300]}"
    caller = world.b_admin if access is Access.TENANT_ADMIN else world.b_user
    r = world.call(method, path, caller.token)
    assert r.status_code == 404, (
        f"{method} {path} (tenant A's object) by {caller.name} of tenant B:"
        f" {r.status_code} {r.text[:300]}"
    )
    error_shape(r, 404)
    for marker in world.a_markers:
        if marker in path:
            continue  # the caller's own input, echoed back
        assert marker not in r.text, f"{method} {path} tells tenant B about {marker!r}: {r.text[:300]}"


@pytest.mark.parametrize("op", with_known_bugs(ops(*TENANT_SCOPED, params=False, methods=("GET",))))
def test_tenant_b_lists_show_nothing_of_tenant_a(world, op):
    pattern, handler, method = op
    access = handler.access_for(method)
    caller = world.b_admin if access is Access.TENANT_ADMIN else world.b_user
    r = world.call("GET", route_path(pattern, ()), caller.token)
    assert r.status_code < 500, r.text[:300]
    for marker in world.a_markers:
        assert marker not in r.text, f"GET {pattern} by tenant B shows {marker!r} of tenant A: {r.text[:500]}"


def test_tenant_header_and_cookie_cannot_reach_another_tenant(world):
    # the token names the tenant; a header or cookie naming another one is ignored
    for extra in ({"headers": {"X-KQI-Tenant": str(world.a["id"])}},
                  {"cookies": {"kqi-tenant": str(world.a["id"])}}):
        r = world.call("GET", "/tenant", world.b_admin.token, **extra)
        assert r.status_code == 200 and r.json()["name"] == world.b["name"], r.text
        r = world.call("GET", "/account", world.b_user.token, **extra)
        assert r.status_code == 200, r.text
        assert r.json()["selectedTenant"]["name"] == world.b["name"], r.text
        assert world.a["name"] not in r.text


def test_tenant_b_cannot_switch_into_tenant_a(world):
    r = world.call("POST", f"/account/tenants/{world.a['id']}/token", world.b_user.token,
                   json={"expiresIn": 600})
    assert r.status_code == 404, r.text
    assert "token" not in r.json()


def test_uploads_of_tenant_a_are_out_of_reach_of_tenant_b(world):
    if r"/upload/complete" not in {p for p, *_ in api_routes()}:
        pytest.skip("no upload routes")
    a_token, b_token = world.a_user.token, world.b_user.token
    # an upload of tenant A in progress: tenant B cannot complete it
    r = world.call("GET", "/upload/parameter", a_token, params={"fileName": "a.txt", "partSum": 1, "type": "Data"})
    assert r.status_code == 200, r.text
    pending = r.json()
    r = world.call("POST", "/upload/complete", b_token, json={"key": pending["key"], "uploadId": pending["uploadId"],
                                                             "partETags": ["1+0123456789abcdef"]})
    assert r.status_code in (400, 404), r.text
    assert world.a["name"] not in r.text
    # a completed upload of tenant A: tenant B cannot register it on its own data
    done = upload_file(world, a_token, "a2.txt", b"tenant A only\n")
    b_data = data_of_b(world)
    r = world.call("POST", f"/data/{b_data}/files", b_token,
                   json={"files": [{"fileName": "stolen.txt", "storedPath": done["storedPath"]}]})
    assert r.status_code in (400, 404), r.text
    r = world.call("GET", f"/data/{b_data}/files", b_token)
    assert r.status_code == 200 and r.json() == [], r.text


def test_anonymous_routes_serve_callers_with_unrelated_tokens(world):
    for pattern, handler, method in OPERATIONS:
        if method == "GET" and handler.access_for("GET") is Access.ANONYMOUS:
            r = world.call("GET", route_path(pattern, ()), world.stranger.token)
            assert r.status_code == 200, f"GET {pattern} with a non-kqi hub token: {r.status_code} {r.text[:200]}"


# ------------------------------------------- credentials the service has already seen
def test_token_in_use_stops_working_when_revoked_or_expired(world):
    platform = world.platform
    scopes = tenant_scopes(world.a["name"])
    revoked = hub_token(platform, world.a_spare.name, scopes)
    expiring = hub_token(platform, world.a_spare.name, scopes, expires_in=2)
    assert world.call("GET", "/account", revoked["token"]).status_code == 200
    assert world.call("GET", "/account", expiring["token"]).status_code == 200
    r = platform.hub("DELETE", f"/users/{world.a_spare.name}/tokens/{revoked['id']}")
    assert r.status_code == 204
    time.sleep(0.2)
    assert world.call("GET", "/account", revoked["token"]).status_code == 401
    deadline = time.monotonic() + 10
    while hub_accepts(platform, expiring["token"]):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert world.call("GET", "/account", expiring["token"]).status_code == 401


# ------------------------------------------------------------- nothing changed
VOLATILE_KEYS = {"lastActivity", "last_activity", "lastUsedAt"}  # the hub records use every activity_resolution (30 s)
# reads that grow with time by design while anything runs on the shared platform (a running
# container's log, the usage ledger and its reports, the hourly samples and ended-job history,
# stored bytes, what is free on the nodes as other tests' work ends — every resource-monitor
# read is a live measurement of the machine): their
# status is compared (a refused DELETE that stopped a container turns its log into a 404), their
# body is not
GROWING_READS = re.compile(r" GET \S*/(resource|tenant/resource)/\S*$")


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def snapshot(world: World) -> dict:
    """Everything the isolation calls could have changed, read back."""
    platform = world.platform
    state: dict = {}

    markers = world.a_markers + [world.b["name"], world.b_user.name, world.b_admin.name]

    def read(label, r, only_ours=False):
        try:
            body = _stable(r.json())
        except ValueError:
            body = r.text
        if only_ours and isinstance(body, list):
            # system-wide lists: only the rows of this test's tenants and users (other tests'
            # leftovers, e.g. jobs still running in the sandbox tenant, may change meanwhile)
            body = [row for row in body if any(m in json.dumps(row) for m in markers)]
        if GROWING_READS.search(label):
            body = None
        state[label] = (r.status_code, body)

    for pattern, handler, *_ in api_routes():
        if "GET" not in implemented_methods(handler) or handler.access_for("GET") is Access.ANONYMOUS:
            continue
        groups = [p for p in _split_pattern(pattern) if p[0] == "group"]
        if not groups:
            # the tenant administrators see their own tenant; the system administrator's token
            # acts in the sandbox tenant, so only its system-wide views are read
            for caller in ("a_admin", "b_admin"):
                read(f"{caller} GET {pattern}", world.call("GET", pattern, getattr(world, caller).token))
            if handler.access_for("GET") is Access.SYSTEM_ADMIN:
                read(f"admin GET {pattern}", world.call("GET", pattern, world.admin.token), only_ours=True)
        elif pattern in SAMPLES and SAMPLES[pattern].control:
            sample = SAMPLES[pattern]
            path = route_path(pattern, sample.values(world))
            read(f"{sample.control} GET {path}", world.call("GET", path, getattr(world, sample.control).token))
    for tenant in (world.a, world.b):
        read(f"hub group {tenant['name']}", platform.hub("GET", f"/groups/{tenant['name']}"))
        read(f"hub tenant roles {tenant['name']}", platform.hub("GET", f"/kqi/tenants/{tenant['name']}"))
    for caller in (world.a_user, world.a_admin, world.b_user, world.b_admin, world.stranger):
        r = platform.hub("GET", f"/users/{caller.name}/tokens")
        state[f"hub tokens of {caller.name}"] = sorted(t["id"] for t in r.json()["api_tokens"])
        r = platform.hub("GET", f"/users/{caller.name}")
        state[f"hub user {caller.name}"] = (sorted(r.json()["groups"]), sorted(r.json()["roles"]))
    return state


def test_zz_nothing_changed(world):
    after = snapshot(world)
    before = world.snapshot_before
    changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, ("the refused calls changed state: " + ", ".join(sorted(changed)) + "\n"
                         + json.dumps(changed, indent=1, default=str)[:4000])
