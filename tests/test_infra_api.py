"""The admin infrastructure API (git servers, registries, storage endpoints, nodes, partitions,
quotas), the tenant's view of it, and git browsing, against a real KQI Hub.

The platform is shared by the whole session: every test makes its own rows with unique
names and removes what could change other tests (public nodes, quotas of shared tenants).
"""
from __future__ import annotations

import http.server
import json
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from functools import partial

import git
import pytest

from kqi_services.datadir import free_port
from kqi_services.secrets import SecretBox


def uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


@pytest.fixture(scope="module")
def sandbox_user(platform):
    name, password = platform.create_user(tenants=["sandbox"])
    return platform.login(name, password)


def by_name(rows: list[dict], name: str) -> dict:
    found = [r for r in rows if r["name"] == name]
    assert found, f"{name} not in {[r['name'] for r in rows]}"
    return found[0]


def error_fields(response) -> dict:
    body = response.json()
    assert body["status"] == response.status_code and body["detail"], body
    return body["errors"]


def local_git_id(platform, token) -> int:
    return by_name(platform.api("GET", "/admin/git/endpoints", token).json(), "local")["id"]


def user_in_new_tenant(platform, admin, **tenant_fields) -> tuple[dict, str]:
    tenant = platform.create_tenant(token=admin, **tenant_fields)
    name, password = platform.create_user(tenants=[tenant["name"]])
    return tenant, platform.login(name, password)


# ------------------------------------------------------------------- seeded defaults
def test_fresh_platform_has_the_local_defaults(platform, admin):
    gits = platform.api("GET", "/admin/git/endpoints", admin).json()
    local = by_name(gits, "local")
    assert local["serviceType"] == 6 and local["serviceTypeName"] == "Local"
    assert local["repositoryUrl"] == "file://" + os.path.join(platform.data_dir, "git")
    assert local["isNotEditable"] is False

    registry = by_name(platform.api("GET", "/admin/registry/endpoints", admin).json(), "docker-hub")
    assert registry["serviceType"] == 1 and registry["host"] == "registry-1.docker.io"

    storage = by_name(platform.api("GET", "/admin/storage/endpoints", admin).json(), "local")
    assert storage["kind"] == "local" and storage["secretKeySet"] is False
    assert storage["serverUrl"] == "file://" + os.path.join(platform.data_dir, "store")

    nodes = platform.api("GET", "/admin/nodes", admin).json()
    seeded = [n for n in nodes if n["memo"] == "this machine"]
    assert len(seeded) == 1
    assert seeded[0]["partition"] == "local" and seeded[0]["accessLevel"] == 2
    assert seeded[0]["accessLevelStr"] == "Public" and seeded[0]["cpu"] >= 1
    assert "local" in platform.api("GET", "/admin/partitions", admin).json()

    assert platform.api("GET", "/admin/git/types", admin).json() == [
        {"id": 1, "name": "GitHub"}, {"id": 2, "name": "GitLab"}, {"id": 3, "name": "GitLabCom"},
        {"id": 4, "name": "GitBucket"}, {"id": 5, "name": "GitHttp"}, {"id": 6, "name": "Local"}]
    assert platform.api("GET", "/admin/registry/types", admin).json() == [
        {"id": 1, "name": "DockerHub"}, {"id": 2, "name": "GitLab"}, {"id": 3, "name": "PrivateDockerRegistry"},
        {"id": 4, "name": "NvidiaGPUCloud"}]
    assert platform.api("GET", "/admin/node-access-levels", admin).json() == [
        {"id": 0, "name": "Disabled"}, {"id": 1, "name": "Private"}, {"id": 2, "name": "Public"}]


# ---------------------------------------------------------------------- git servers
def test_git_server_round_trip(platform, admin):
    name = f"gh-{uid()}"
    body = {"name": name, "serviceType": 1, "apiUrl": "https://api.github.com/",
            "repositoryUrl": "https://github.com/"}
    r = platform.api("POST", "/admin/git/endpoints", admin, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == name and created["serviceType"] == 1 and created["serviceTypeName"] == "GitHub"
    assert created["createdBy"] == "admin" and created["modifiedBy"] == "admin"
    git_id = created["id"]

    assert platform.api("GET", f"/admin/git/endpoints/{git_id}", admin).json()["apiUrl"] == "https://api.github.com/"
    assert git_id in [g["id"] for g in platform.api("GET", "/admin/git/endpoints", admin).json()]

    # a PUT may send only what changes
    r = platform.api("PUT", f"/admin/git/endpoints/{git_id}", admin, json={"name": name + "-x"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name + "-x" and r.json()["repositoryUrl"] == "https://github.com/"
    # and may turn it into a local one (the api URL then has to go, or be a file URL too)
    r = platform.api("PUT", f"/admin/git/endpoints/{git_id}", admin,
                     json={"serviceType": 6, "repositoryUrl": "file:///srv/git", "apiUrl": None})
    assert r.status_code == 200, r.text
    assert r.json()["serviceType"] == 6 and r.json()["apiUrl"] is None

    # names are unique
    r = platform.api("POST", "/admin/git/endpoints", admin, json={**body, "name": name + "-x"})
    assert r.status_code == 409 and name + "-x" in r.json()["detail"]
    other = platform.api("POST", "/admin/git/endpoints", admin, json={**body, "name": name + "-y"}).json()
    r = platform.api("PUT", f"/admin/git/endpoints/{other['id']}", admin, json={"name": name + "-x"})
    assert r.status_code == 409
    assert platform.api("GET", f"/admin/git/endpoints/{other['id']}", admin).json()["name"] == name + "-y"

    for row_id in (git_id, other["id"]):
        r = platform.api("DELETE", f"/admin/git/endpoints/{row_id}", admin)
        assert r.status_code == 204, r.text
        assert platform.api("GET", f"/admin/git/endpoints/{row_id}", admin).status_code == 404
    assert platform.api("DELETE", f"/admin/git/endpoints/{git_id}", admin).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"serviceType": 1, "apiUrl": "https://api.github.com", "repositoryUrl": "ftp://github.com/"}, "repositoryUrl"),
    ({"serviceType": 1, "apiUrl": "https://api.github.com", "repositoryUrl": "file:///srv/git"}, "repositoryUrl"),
    ({"serviceType": 1, "apiUrl": "https://user:pw@api.github.com", "repositoryUrl": "https://github.com"}, "apiUrl"),
    ({"serviceType": 1, "repositoryUrl": "https://github.com"}, "apiUrl"),
    ({"serviceType": 2, "apiUrl": "https://gitlab.example.com", "repositoryUrl": "https:///nohost"}, "repositoryUrl"),
    ({"serviceType": 6, "repositoryUrl": "https://example.com/git"}, "repositoryUrl"),
    ({"serviceType": 6, "repositoryUrl": "file://srv/git"}, "repositoryUrl"),
    ({"serviceType": 6, "repositoryUrl": "file:///srv/../etc"}, "repositoryUrl"),
    ({"serviceType": 7, "repositoryUrl": "https://example.com/"}, "serviceType"),
    ({"serviceType": "1", "apiUrl": "https://x.example", "repositoryUrl": "https://x.example/"}, "serviceType"),
    ({"serviceType": 5}, "repositoryUrl"),
])
def test_git_server_bad_input_changes_nothing(platform, admin, body, field):
    before = platform.api("GET", "/admin/git/endpoints", admin).json()
    r = platform.api("POST", "/admin/git/endpoints", admin, json={"name": f"bad-{uid()}", **body})
    assert r.status_code == 400, r.text
    assert field in error_fields(r)
    # an edit with the same mistake is refused as a whole, too
    local = by_name(before, "local")
    r = platform.api("PUT", f"/admin/git/endpoints/{local['id']}", admin, json={"name": "renamed", **body})
    assert r.status_code == 400, r.text
    assert platform.api("GET", "/admin/git/endpoints", admin).json() == before


def test_bad_requests_are_clear_400_and_404(platform, admin):
    r = platform.api("POST", "/admin/git/endpoints", admin, data="{not json",
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = platform.api("POST", "/admin/registry/endpoints", admin, json=[1, 2])
    assert r.status_code == 400
    r = platform.api("POST", "/admin/nodes", admin, json={"name": "n", "accessLevel": 2, "cpu": -1})
    assert r.status_code == 400 and "cpu" in error_fields(r)
    for path in ("/admin/git/endpoints", "/admin/registry/endpoints", "/admin/storage/endpoints", "/admin/nodes"):
        assert platform.api("GET", f"{path}/987654", admin).status_code == 404
        assert platform.api("PUT", f"{path}/987654", admin, json={"name": "x"}).status_code == 404
        assert platform.api("DELETE", f"{path}/987654", admin).status_code == 404
        assert platform.api("GET", f"{path}/abc", admin).status_code == 400
        assert platform.api("GET", f"{path}/99999999999", admin).status_code == 404  # beyond any id
    r = platform.api("POST", "/admin/git/endpoints", admin, json={"name": "", "serviceType": 6,
                                                                   "repositoryUrl": "file:///x"})
    assert r.status_code == 400 and "name" in error_fields(r)


def test_git_server_in_use_cannot_be_deleted(platform, admin):
    created = platform.api("POST", "/admin/git/endpoints", admin, json={
        "name": f"used-{uid()}", "serviceType": 5, "repositoryUrl": "https://git.example.com/"}).json()
    tenant = platform.create_tenant(token=admin, gitIds=[created["id"]], defaultGitId=created["id"])
    r = platform.api("DELETE", f"/admin/git/endpoints/{created['id']}", admin)
    assert r.status_code == 409, r.text
    assert tenant["name"] in r.json()["detail"]
    assert platform.api("GET", f"/admin/git/endpoints/{created['id']}", admin).status_code == 200

    # once the tenant no longer uses it, it can go
    r = platform.api("PUT", f"/admin/tenants/{tenant['id']}", admin, json={
        "displayName": "T", "gitIds": [local_git_id(platform, admin)], "registryIds": [1], "storageId": 1})
    assert r.status_code == 200, r.text
    assert platform.api("DELETE", f"/admin/git/endpoints/{created['id']}", admin).status_code == 204
    assert platform.api("DELETE", f"/admin/tenants/{tenant['id']}", admin).status_code == 200


# ------------------------------------------------------------------------ registries
def test_registry_round_trip_and_in_use(platform, admin):
    name = f"reg-{uid()}"
    body = {"name": name, "host": "registry.example.com", "portNo": 5000, "serviceType": 3,
            "projectName": "team", "apiUrl": "https://registry.example.com:5000/",
            "registryUrl": "https://registry.example.com:5000/"}
    r = platform.api("POST", "/admin/registry/endpoints", admin, json=body)
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["registryPath"] == "registry.example.com:5000"
    assert reg["serviceTypeName"] == "PrivateDockerRegistry" and reg["createdBy"] == "admin"

    r = platform.api("PUT", f"/admin/registry/endpoints/{reg['id']}", admin, json={"portNo": 443})
    assert r.status_code == 200 and r.json()["portNo"] == 443 and r.json()["projectName"] == "team"
    for bad in ({"portNo": 0}, {"portNo": 70000}, {"host": "https://registry.example.com"},
                {"registryUrl": "registry.example.com"}, {"serviceType": 9}):
        r = platform.api("PUT", f"/admin/registry/endpoints/{reg['id']}", admin, json=bad)
        assert r.status_code == 400, (bad, r.text)
    assert platform.api("GET", f"/admin/registry/endpoints/{reg['id']}", admin).json()["portNo"] == 443
    assert platform.api("POST", "/admin/registry/endpoints", admin, json=body).status_code == 409

    # docker-hub is the sandbox tenant's registry
    hub = by_name(platform.api("GET", "/admin/registry/endpoints", admin).json(), "docker-hub")
    r = platform.api("DELETE", f"/admin/registry/endpoints/{hub['id']}", admin)
    assert r.status_code == 409 and "sandbox" in r.json()["detail"]
    assert platform.api("DELETE", f"/admin/registry/endpoints/{reg['id']}", admin).status_code == 204


# --------------------------------------------------------------------------- storage
def stored_secret(platform, storage_id: int):
    """The secret_key_encrypted column, read straight from the service's database."""
    if platform.db_backend == "sqlite":
        with sqlite3.connect(os.path.join(platform.data_dir, "kqi", "kqi.sqlite")) as db:
            row = db.execute("SELECT secret_key_encrypted FROM storages WHERE id = ?", (storage_id,)).fetchone()
        return row[0]
    import psycopg

    url = platform.env["KQI_DB_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as db:
        return db.execute("SELECT secret_key_encrypted FROM storages WHERE id = %s", (storage_id,)).fetchone()[0]


def test_storage_secret_key_is_write_only_and_encrypted(platform, admin):
    secret = "s3cr3t-" + uuid.uuid4().hex
    name = f"minio-{uid()}"
    body = {"name": name, "kind": "s3", "serverUrl": "http://minio.example.com:9000", "bucket": "kqi-data",
            "region": "us-east-1", "pathStyle": True, "accessKey": "AKIAEXAMPLE", "secretKey": secret,
            "nfsServer": "nfs.example.com", "nfsRoot": "/export/kqi"}
    responses = [platform.api("POST", "/admin/storage/endpoints", admin, json=body)]
    assert responses[0].status_code == 201, responses[0].text
    storage = responses[0].json()
    assert storage["secretKeySet"] is True and "secretKey" not in storage
    assert storage["accessKey"] == "AKIAEXAMPLE" and storage["bucket"] == "kqi-data"
    responses.append(platform.api("GET", f"/admin/storage/endpoints/{storage['id']}", admin))
    responses.append(platform.api("GET", "/admin/storage/endpoints", admin))
    # an edit without secretKey keeps the stored one
    responses.append(platform.api("PUT", f"/admin/storage/endpoints/{storage['id']}", admin,
                                  json={"bucket": "kqi-other"}))
    assert responses[-1].status_code == 200 and responses[-1].json()["secretKeySet"] is True
    assert responses[-1].json()["bucket"] == "kqi-other"
    for r in responses:
        assert secret not in r.text and "secretKey\"" not in r.text

    encrypted = stored_secret(platform, storage["id"])
    assert encrypted and secret not in encrypted
    key = open(os.path.join(platform.data_dir, "kqi", "secret_key")).read().strip()
    assert SecretBox(key).decrypt(encrypted) == secret
    assert secret not in open(platform.log_path, errors="replace").read()

    # a new key replaces it; "" removes it
    r = platform.api("PUT", f"/admin/storage/endpoints/{storage['id']}", admin, json={"secretKey": "other-secret"})
    assert r.status_code == 200 and r.json()["secretKeySet"] is True
    assert SecretBox(key).decrypt(stored_secret(platform, storage["id"])) == "other-secret"
    r = platform.api("PUT", f"/admin/storage/endpoints/{storage['id']}", admin, json={"secretKey": ""})
    assert r.status_code == 200 and r.json()["secretKeySet"] is False
    assert stored_secret(platform, storage["id"]) is None
    assert platform.api("DELETE", f"/admin/storage/endpoints/{storage['id']}", admin).status_code == 204


@pytest.mark.parametrize("body, field", [
    ({"kind": "s3", "serverUrl": "file:///srv/store"}, "serverUrl"),
    ({"kind": "s3", "serverUrl": "minio.example.com:9000"}, "serverUrl"),
    ({"kind": "local", "serverUrl": "http://minio.example.com"}, "serverUrl"),
    ({"kind": "nfs", "serverUrl": "http://minio.example.com"}, "kind"),
    ({"kind": "s3", "serverUrl": "http://minio.example.com", "bucket": "Bad_Bucket"}, "bucket"),
    ({"kind": "s3", "serverUrl": "http://minio.example.com", "secretKey": 12}, "secretKey"),
    ({"kind": "s3", "serverUrl": "http://minio.example.com", "pathStyle": "yes"}, "pathStyle"),
])
def test_storage_bad_input(platform, admin, body, field):
    before = platform.api("GET", "/admin/storage/endpoints", admin).json()
    r = platform.api("POST", "/admin/storage/endpoints", admin, json={"name": f"st-{uid()}", **body})
    assert r.status_code == 400, r.text
    assert field in error_fields(r)
    assert platform.api("GET", "/admin/storage/endpoints", admin).json() == before


def test_storage_kind_follows_the_url_and_in_use_storage_stays(platform, admin):
    r = platform.api("POST", "/admin/storage/endpoints", admin,
                     json={"name": f"dir-{uid()}", "serverUrl": "file:///srv/kqi-store"})
    assert r.status_code == 201 and r.json()["kind"] == "local"
    assert platform.api("DELETE", f"/admin/storage/endpoints/{r.json()['id']}", admin).status_code == 204
    local = by_name(platform.api("GET", "/admin/storage/endpoints", admin).json(), "local")
    r = platform.api("DELETE", f"/admin/storage/endpoints/{local['id']}", admin)
    assert r.status_code == 409 and "sandbox" in r.json()["detail"]


# ------------------------------------------------------------------ nodes, partitions
def test_nodes_and_the_partitions_a_tenant_may_use(platform, admin):
    team_a, token_a = user_in_new_tenant(platform, admin)
    team_b, token_b = user_in_new_tenant(platform, admin)
    tag = uid()
    made = []
    try:
        def node(**fields):
            r = platform.api("POST", "/admin/nodes", admin, json={"name": f"node-{uid()}.example", **fields})
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
            return r.json()

        public = node(partition=f"pub-{tag}", accessLevel=2, cpu=8, memory=31.5, gpu=2,
                      notebookEnabled=True, tensorBoardEnabled=True)
        private = node(partition=f"priv-{tag}", accessLevel=1, assignedTenantIds=[team_a["id"]], memo="A's")
        node(partition=f"off-{tag}", accessLevel=0)
        assert public["cpu"] == 8 and public["memory"] == 31.5 and public["gpu"] == 2
        assert public["notebookEnabled"] is True and public["createdBy"] == "admin"
        details = platform.api("GET", f"/admin/nodes/{private['id']}", admin).json()
        assert details["assignedTenantIds"] == [team_a["id"]] and details["accessLevelStr"] == "Private"
        assert details["assignedTenants"][0]["name"] == team_a["name"]

        partitions = platform.api("GET", "/admin/partitions", admin).json()
        assert {f"pub-{tag}", f"priv-{tag}", f"off-{tag}"} <= set(partitions)
        assert partitions == sorted(partitions)
        mine = lambda token: {p for p in platform.api("GET", "/tenant/partitions", token).json() if tag in p}  # noqa
        assert mine(token_a) == {f"pub-{tag}", f"priv-{tag}"}
        assert mine(token_b) == {f"pub-{tag}"}
        assert "local" in platform.api("GET", "/tenant/partitions", token_b).json()

        # disabling the private node takes its partition away from A
        r = platform.api("PUT", f"/admin/nodes/{private['id']}", admin, json={"accessLevel": 0})
        assert r.status_code == 200 and r.json()["assignedTenantIds"] == []
        assert mine(token_a) == {f"pub-{tag}"}
        # ... and making it private for B gives it to B
        r = platform.api("PUT", f"/admin/nodes/{private['id']}", admin,
                         json={"accessLevel": 1, "assignedTenantIds": [team_b["id"]]})
        assert r.status_code == 200, r.text
        assert mine(token_b) == {f"pub-{tag}", f"priv-{tag}"}

        # bad input: nothing changes
        for bad, field in (({"cpu": -1}, "cpu"), ({"memory": -0.5}, "memory"), ({"gpu": 1.5}, "gpu"),
                           ({"accessLevel": 3}, "accessLevel"), ({"accessLevel": None}, "accessLevel"),
                           ({"accessLevel": 1, "assignedTenantIds": [987654]}, "assignedTenantIds"),
                           ({"partition": "a b"}, "partition"), ({"name": "bad name"}, "name")):
            r = platform.api("PUT", f"/admin/nodes/{public['id']}", admin, json=bad)
            assert r.status_code == 400, (bad, r.text)
            assert field in error_fields(r)
        assert platform.api("GET", f"/admin/nodes/{public['id']}", admin).json()["cpu"] == 8
        r = platform.api("POST", "/admin/nodes", admin, json={"name": public["name"], "accessLevel": 2})
        assert r.status_code == 409
        r = platform.api("POST", "/admin/nodes", admin, json={"name": f"n-{uid()}"})
        assert r.status_code == 400 and "accessLevel" in error_fields(r)

        listed = platform.api("GET", "/admin/nodes?withTotal=true&perPage=1&page=1", admin)
        assert len(listed.json()) == 1 and int(listed.headers["X-Total-Count"]) >= 4
        assert [n["id"] for n in platform.api("GET", f"/admin/nodes?name={public['name']}", admin).json()] == [
            public["id"]]
    finally:
        for node_id in made:
            assert platform.api("DELETE", f"/admin/nodes/{node_id}", admin).status_code == 204
    assert platform.api("GET", f"/admin/nodes/{made[0]}", admin).status_code == 404
    assert not [p for p in platform.api("GET", "/admin/partitions", admin).json() if tag in p]


# --------------------------------------------------------------------------- quotas
def test_quotas(platform, admin):
    team, token = user_in_new_tenant(platform, admin)
    other = platform.create_tenant(token=admin)
    r = platform.api("POST", "/admin/quotas", admin, json=[
        {"tenantId": team["id"], "cpu": 4, "memory": 8.5, "gpu": 1},
        {"tenantId": other["id"], "cpu": 2, "memory": 0, "gpu": None}])
    assert r.status_code == 200, r.text
    assert r.json()[0] == {"tenantId": team["id"], "tenantName": team["displayName"], "name": team["name"],
                           "cpu": 4, "memory": 8.5, "gpu": 1}
    assert r.json()[1]["memory"] == 0 and r.json()[1]["gpu"] == 0
    quotas = {q["tenantId"]: q for q in platform.api("GET", "/admin/quotas", admin).json()}
    assert quotas[team["id"]]["cpu"] == 4 and quotas[other["id"]]["cpu"] == 2
    assert platform.api("GET", "/tenant/quota", token).json()["memory"] == 8.5
    # stored as the tenant's limits; 0 is kept as "no limit" (null)
    details = platform.api("GET", f"/admin/tenants/{other['id']}", admin).json()
    assert details["limitCpu"] == 2 and details["limitMemory"] is None and details["limitGpu"] is None

    # all or nothing: one bad item, or one unknown tenant, changes no tenant
    for bad, status in (([{"tenantId": team["id"], "cpu": 1}, {"tenantId": other["id"], "cpu": -1}], 400),
                        ([{"tenantId": team["id"], "cpu": 1}, {"tenantId": 987654, "cpu": 1}], 404),
                        ([{"tenantId": team["id"], "gpu": "2"}], 400),
                        ([{"cpu": 1}], 400),
                        ([{"tenantId": 99999999999, "cpu": 1}], 400),
                        ([{"tenantId": team["id"]}, {"tenantId": team["id"]}], 400),
                        ({"tenantId": team["id"], "cpu": 1}, 400),
                        (["x"], 400)):
        r = platform.api("POST", "/admin/quotas", admin, json=bad)
        assert r.status_code == status, (bad, r.text)
    r = platform.api("POST", "/admin/quotas", admin, data="[{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert platform.api("GET", "/tenant/quota", token).json() == quotas[team["id"]]

    r = platform.api("POST", "/admin/quotas", admin, json=[{"tenantId": team["id"], "cpu": 0}])
    assert r.status_code == 200
    assert platform.api("GET", "/tenant/quota", token).json()["cpu"] == 0
    assert platform.api("GET", f"/admin/tenants/{team['id']}", admin).json()["limitMemory"] is None


# -------------------------------------------------------------------------- access
ADMIN_GETS = ["/admin/git/endpoints", "/admin/git/endpoints/1", "/admin/git/types", "/admin/registry/endpoints",
              "/admin/registry/endpoints/1", "/admin/registry/types", "/admin/storage/endpoints",
              "/admin/storage/endpoints/1", "/admin/nodes", "/admin/node-access-levels", "/admin/partitions",
              "/admin/quotas"]


def test_tenant_users_cannot_use_admin_routes(platform, admin, sandbox_user):
    for path in ADMIN_GETS:
        assert platform.api("GET", path, sandbox_user).status_code == 403, path
        assert platform.api("GET", path).status_code == 401, path
    before = platform.api("GET", "/admin/git/endpoints", admin).json()
    r = platform.api("POST", "/admin/git/endpoints", sandbox_user,
                     json={"name": f"x-{uid()}", "serviceType": 6, "repositoryUrl": "file:///tmp"})
    assert r.status_code == 403
    assert platform.api("DELETE", "/admin/git/endpoints/1", sandbox_user).status_code == 403
    assert platform.api("POST", "/admin/quotas", sandbox_user, json=[]).status_code == 403
    assert platform.api("GET", "/admin/git/endpoints", admin).json() == before
    for path in ("/tenant/git/endpoints", "/tenant/partitions", "/tenant/quota", "/git/1/repos"):
        assert platform.api("GET", path).status_code == 401, path


def test_tenant_sees_its_git_servers_and_registries(platform, admin, sandbox_user):
    gits = platform.api("GET", "/tenant/git/endpoints", sandbox_user).json()
    local = by_name(gits, "local")
    assert local["isDefault"] is True and local["serviceType"] == 6
    registries = platform.api("GET", "/tenant/registry/endpoints", sandbox_user).json()
    assert by_name(registries, "docker-hub")["isDefault"] is True
    assert platform.api("GET", "/tenant/quota", sandbox_user).json()["tenantName"] == "Sandbox"


# ------------------------------------------------------------------- git browsing
@pytest.fixture
def bare_repo(platform, tmp_path):
    """<data dir>/git/sandbox/<owner>/<repo>.git (a repository of the tenant sandbox) with main
    (2 commits) and feature (3 commits)."""
    owner, name = f"team-{uid()}", f"model-{uid()}"
    bare_path = os.path.join(platform.data_dir, "git", "sandbox", owner, name + ".git")
    bare = git.Repo.init(bare_path, bare=True, initial_branch="main")
    work = git.Repo.init(tmp_path / "work", initial_branch="main")
    with work.config_writer() as cw:
        cw.set_value("user", "name", "Ada Lovelace")
        cw.set_value("user", "email", "ada@example.com")
    commits = {}
    for i, (branch, message) in enumerate([("main", "first"), ("main", "second"), ("feature", "third")]):
        if branch == "feature" and "feature" not in work.heads:
            work.create_head("feature").checkout()
        (tmp_path / "work" / "train.py").write_text(f"print({i})\n")
        work.index.add(["train.py"])
        commits[message] = work.index.commit(f"{message}\n\nbody of {message}").hexsha
    work.create_remote("origin", bare_path).push(["main:main", "feature:feature"])
    yield {"owner": owner, "name": name, "path": bare_path, "commits": commits, "work": work, "bare": bare}
    bare.close()
    work.close()


def test_git_browsing_of_local_bare_repositories(platform, admin, sandbox_user, bare_repo):
    gid = local_git_id(platform, admin)
    owner, name, commits = bare_repo["owner"], bare_repo["name"], bare_repo["commits"]
    base = f"/git/{gid}/repos/{owner}/{name}"

    repos = platform.api("GET", f"/git/{gid}/repos", sandbox_user).json()
    assert {"owner": owner, "name": name, "fullName": f"{owner}/{name}"} in repos
    assert platform.api("GET", f"/git/-1/repos", sandbox_user).json() == repos  # the tenant's default

    branches = platform.api("GET", f"{base}/branches", sandbox_user).json()
    assert branches == [{"branchName": "feature", "commitId": commits["third"]},
                        {"branchName": "main", "commitId": commits["second"]}]

    r = platform.api("GET", f"{base}/commits?branch=feature", sandbox_user)
    assert r.status_code == 200, r.text
    assert [c["commitId"] for c in r.json()] == [commits["third"], commits["second"], commits["first"]]
    head = r.json()[0]
    assert head["committerName"] == "Ada Lovelace" and head["authorName"] == "Ada Lovelace"
    assert head["comment"].startswith("third") and head["message"] == head["comment"]
    assert head["parentIds"] == [commits["second"]] and head["commitAt"]
    # the repository's HEAD (main) when no branch is given; paging
    assert [c["commitId"] for c in platform.api("GET", f"{base}/commits", sandbox_user).json()] == [
        commits["second"], commits["first"]]
    assert platform.api("GET", f"{base}/commits?branch=main&page=2", sandbox_user).json() == []
    page2 = platform.api("GET", f"{base}/commits?branch=feature&perPage=1&page=2", sandbox_user).json()
    assert [c["commitId"] for c in page2] == [commits["second"]]

    one = platform.api("GET", f"{base}/commits/{commits['first']}", sandbox_user)
    assert one.status_code == 200 and one.json()["commitId"] == commits["first"]
    assert one.json()["parentIds"] == []
    assert platform.api("GET", f"{base}/commits/{commits['second'][:10]}", sandbox_user).json()["commitId"] == \
        commits["second"]
    # a branch name resolves to its head commit
    assert platform.api("GET", f"{base}/commits/feature", sandbox_user).json()["commitId"] == commits["third"]
    assert platform.api("GET", f"/git/{gid}/repos/{owner}/{name}.git/branches", sandbox_user).status_code == 200

    # new commits show up at once
    work = bare_repo["work"]
    with open(os.path.join(work.working_dir, "train.py"), "a") as f:
        f.write("# more\n")
    work.index.add(["train.py"])
    fourth = work.index.commit("fourth").hexsha
    work.remote("origin").push(["feature:feature"])
    branches = platform.api("GET", f"{base}/branches", sandbox_user).json()
    assert {"branchName": "feature", "commitId": fourth} in branches

    # what is not there is a 404
    for path in (f"{base}/commits/{'0' * 40}", f"{base}/commits/deadbeef", f"{base}/commits?branch=nope",
                 f"/git/{gid}/repos/{owner}/missing/branches", f"/git/{gid}/repos/nobody/{name}/commits",
                 f"/git/987654/repos", f"/git/987654/repos/{owner}/{name}/branches"):
        r = platform.api("GET", path, sandbox_user)
        assert r.status_code == 404, (path, r.text)


@pytest.mark.parametrize("path, field", [
    ("/repos/%2E%2E%2Fetc/r/branches", "owner"), ("/repos/o/..%2F..%2Fx/branches", "repository"),
    ("/repos/o/%2E%2E.git/branches", "repository"), ("/repos/a%2Fb/r/branches", "owner"),
    ("/repos/o/r%00x/branches", "path"),  # a NUL anywhere in the path is refused first (BaseAPIHandler.refuse_nul)
    ("/repos/o/..x/commits", "repository"),
    ("/repos/.hidden/r/branches", "owner"), ("/repos/-o/r/branches", "owner"), ("/repos/a/b/c/branches", "owner"),
    ("/repos/o/r/commits?branch=-x", "branch"), ("/repos/o/r/commits?branch=a..b", "branch"),
    ("/repos/o/r/commits?page=0", "page"), ("/repos/o/r/commits?page=x", "page"),
    ("/repos/o/r/commits/-x", "commitId"),
])
def test_git_browsing_refuses_bad_names(platform, admin, sandbox_user, path, field):
    gid = local_git_id(platform, admin)
    r = platform.api("GET", f"/git/{gid}{path}", sandbox_user)
    assert r.status_code == 400, r.text
    assert field in error_fields(r)


def test_local_repositories_of_another_tenant_are_not_browsable(platform, admin, sandbox_user, bare_repo):
    """The same embedded git server, given to another tenant: it sees its own (empty) folder only."""
    gid = local_git_id(platform, admin)
    tenant, other_user = user_in_new_tenant(platform, admin, gitIds=[gid], defaultGitId=gid)
    base = f"/git/{gid}/repos/{bare_repo['owner']}/{bare_repo['name']}"
    assert platform.api("GET", f"{base}/branches", sandbox_user).status_code == 200  # the owner's tenant
    assert platform.api("GET", f"/git/{gid}/repos", other_user).json() == []
    for path in ("/branches", "/commits", "/commits?branch=main", f"/commits/{bare_repo['commits']['first']}",
                 "/commits/main"):
        r = platform.api("GET", base + path, other_user)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json()["detail"].startswith(f"Repository {bare_repo['owner']}/{bare_repo['name']}"), r.text
    # a repository of the other tenant with the same owner and name is its own, not the sandbox's
    other_bare = os.path.join(platform.data_dir, "git", tenant["name"], bare_repo["owner"], bare_repo["name"] + ".git")
    git.Repo.init(other_bare, bare=True, initial_branch="main").close()
    assert platform.api("GET", f"{base}/branches", other_user).json() == []
    assert len(platform.api("GET", f"{base}/branches", sandbox_user).json()) == 2


def test_git_server_of_another_tenant_is_not_browsable(platform, admin, sandbox_user, bare_repo):
    other = platform.api("POST", "/admin/git/endpoints", admin, json={
        "name": f"other-{uid()}", "serviceType": 6,
        "repositoryUrl": "file://" + os.path.join(platform.data_dir, "git")}).json()
    try:
        r = platform.api("GET", f"/git/{other['id']}/repos/{bare_repo['owner']}/{bare_repo['name']}/branches",
                         sandbox_user)
        assert r.status_code == 404
        assert platform.api("GET", f"/git/{other['id']}/repos", sandbox_user).status_code == 404
        # the admin, too, browses only through a tenant that has the server
        assert platform.api("GET", f"/git/{other['id']}/repos", admin).status_code == 404
    finally:
        platform.api("DELETE", f"/admin/git/endpoints/{other['id']}", admin)


# -- git servers on the network: plain HTTP, GitHub's API, and an unreachable one
@contextmanager
def http_server(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def git_server_for_new_tenant(platform, admin, **fields) -> tuple[dict, str]:
    r = platform.api("POST", "/admin/git/endpoints", admin, json={"name": f"net-{uid()}", **fields})
    assert r.status_code == 201, r.text
    server = r.json()
    _, token = user_in_new_tenant(platform, admin, gitIds=[server["id"]])
    return server, token


def test_plain_git_over_http(platform, admin, bare_repo, tmp_path):
    bare = bare_repo["bare"]
    bare.git.update_server_info()  # the dumb HTTP protocol needs info/refs
    root = os.path.dirname(os.path.dirname(bare_repo["path"]))
    owner, name, commits = bare_repo["owner"], bare_repo["name"], bare_repo["commits"]
    with http_server(partial(_Quiet, directory=root)) as url:
        server, token = git_server_for_new_tenant(platform, admin, serviceType=5, repositoryUrl=url + "/")
        base = f"/git/{server['id']}/repos/{owner}/{name}"
        r = platform.api("GET", f"{base}/branches", token)
        assert r.status_code == 200, r.text
        assert {"branchName": "feature", "commitId": commits["third"]} in r.json()
        r = platform.api("GET", f"{base}/commits?branch=feature", token)
        assert r.status_code == 200, r.text
        assert [c["commitId"] for c in r.json()] == [commits["third"], commits["second"], commits["first"]]
        assert platform.api("GET", f"{base}/commits/{commits['first']}", token).json()["comment"].startswith("first")
        # fetched again on each request
        work = bare_repo["work"]
        work.git.checkout("main")
        work.index.commit("on main")
        work.remote("origin").push(["main:main"])
        bare.git.update_server_info()
        newest = platform.api("GET", f"{base}/commits?branch=main", token).json()[0]
        assert newest["comment"].startswith("on main")
        # repositories this service has fetched
        assert {"owner": owner, "name": name, "fullName": f"{owner}/{name}"} in \
            platform.api("GET", f"/git/{server['id']}/repos", token).json()
        assert platform.api("GET", f"/git/{server['id']}/repos/{owner}/missing/branches", token).status_code == 404


def test_github_api_is_translated(platform, admin):
    sha = "a" * 40
    github = {
        "/repos/octo/model/branches": [{"name": "main", "commit": {"sha": sha}}],
        "/repos/octo/model/commits": [{"sha": sha, "parents": [{"sha": "b" * 40}], "commit": {
            "message": "fix training", "author": {"name": "Octo", "date": "2024-01-02T03:04:05Z"},
            "committer": {"name": "GitHub", "date": "2024-01-02T03:04:06Z"}}}],
    }
    github[f"/repos/octo/model/commits/{sha}"] = github["/repos/octo/model/commits"][0]
    seen = []

    class FakeGitHub(_Quiet):
        def do_GET(self):
            path, _, query = self.path.partition("?")
            seen.append((path, query, self.headers.get("Authorization")))
            if path.startswith("/repos/octo/old/"):  # a renamed repository: same-origin redirect
                self.send_response(301)
                self.send_header("Location", path.replace("/old/", "/model/"))
                self.end_headers()
                return
            if path.startswith("/repos/octo/elsewhere/"):
                self.send_response(302)
                self.send_header("Location", "http://other.example" + path)
                self.end_headers()
                return
            if path not in github:
                self.send_error(404)
                return
            body = json.dumps(github[path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(FakeGitHub) as url:
        server, token = git_server_for_new_tenant(platform, admin, serviceType=1, apiUrl=url + "/",
                                                  repositoryUrl="https://github.example/")
        base = f"/git/{server['id']}/repos/octo/model"
        assert platform.api("GET", f"{base}/branches", token).json() == [{"branchName": "main", "commitId": sha}]
        commits = platform.api("GET", f"{base}/commits?branch=main&page=2", token).json()
        assert commits[0]["commitId"] == sha and commits[0]["committerName"] == "GitHub"
        assert commits[0]["commitAt"] == "2024-01-02T03:04:06Z" and commits[0]["comment"] == "fix training"
        assert ("/repos/octo/model/commits", "per_page=100&page=2&sha=main", None) in seen
        assert platform.api("GET", f"{base}/commits/{sha}", token).json()["parentIds"] == ["b" * 40]
        assert platform.api("GET", f"/git/{server['id']}/repos/octo/gone/branches", token).status_code == 404
        assert platform.api("GET", f"/git/{server['id']}/repos/octo/old/branches", token).json()[0]["commitId"] == sha
        r = platform.api("GET", f"/git/{server['id']}/repos/octo/elsewhere/branches", token)
        assert r.status_code == 503 and "another host" in r.json()["detail"]
        # without a git token GitHub cannot list the user's repositories
        assert platform.api("GET", f"/git/{server['id']}/repos", token).json() == []


def test_gitlab_api_is_translated_with_nested_groups(platform, admin):
    sha = "c" * 40
    project = "/api/v4/projects/grp%2Fsub%2Fmodel"
    gitlab = {
        f"{project}/repository/branches": [{"name": "dev", "commit": {"id": sha}}],
        f"{project}/repository/commits": [{"id": sha, "committer_name": "Lab", "committed_date": "2024-05-06T07:08:09Z",
                                           "message": "tune", "author_name": "Lab", "parent_ids": []}],
    }
    gitlab[f"{project}/repository/commits/{sha}"] = gitlab[f"{project}/repository/commits"][0]
    seen = []

    class FakeGitLab(_Quiet):
        def do_GET(self):
            path, _, query = self.path.partition("?")
            seen.append((path, query))
            if path not in gitlab:
                self.send_error(404)
                return
            body = json.dumps(gitlab[path]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_server(FakeGitLab) as url:
        server, token = git_server_for_new_tenant(platform, admin, serviceType=2, apiUrl=url,
                                                  repositoryUrl=url + "/")
        base = f"/git/{server['id']}/repos/grp/sub/model"
        assert platform.api("GET", f"{base}/branches", token).json() == [{"branchName": "dev", "commitId": sha}]
        commits = platform.api("GET", f"{base}/commits?branch=dev", token).json()
        assert [(c["commitId"], c["committerName"], c["comment"]) for c in commits] == [(sha, "Lab", "tune")]
        assert (f"{project}/repository/commits", "per_page=100&page=1&ref_name=dev") in seen
        assert platform.api("GET", f"{base}/commits/{sha}", token).json()["commitAt"] == "2024-05-06T07:08:09Z"
        assert platform.api("GET", f"/git/{server['id']}/repos/grp/none/branches", token).status_code == 404


@pytest.mark.parametrize("fields", [
    {"serviceType": 1, "repositoryUrl": "https://github.example/"},
    {"serviceType": 2, "repositoryUrl": "https://gitlab.example/"},
    {"serviceType": 5},
])
def test_unreachable_git_server_is_a_503(platform, admin, fields):
    dead = f"http://127.0.0.1:{free_port()}/"
    fields = {"apiUrl": dead, **fields} if fields["serviceType"] != 5 else {**fields, "repositoryUrl": dead}
    server, token = git_server_for_new_tenant(platform, admin, **fields)
    r = platform.api("GET", f"/git/{server['id']}/repos/octo/model/branches", token)
    assert r.status_code == 503, r.text
    assert "git service" in r.json()["detail"] and "127.0.0.1" in r.json()["detail"]
    r = platform.api("GET", f"/git/{server['id']}/repos/octo/model/commits", token)
    assert r.status_code == 503, r.text
