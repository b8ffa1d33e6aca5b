"""The job environment API against a real KQI Hub (SQLite and PostgreSQL): the system
setting, a tenant's override by the system administrator and by the tenant's own
administrator, the effective result, bad input (400, nothing saved) and who may call what.

The system setting is shared by the whole session: the `system_setting` fixture puts back
what was there before, so that later tests' jobs get the platform's default.
"""
from __future__ import annotations

import pytest

SECRET = "http://proxy-user:pr0xy-s3cret@proxy.example:3128"


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


@pytest.fixture
def system_setting(platform, admin):
    before = platform.api("GET", "/admin/job-environment", admin).json()
    yield before
    r = platform.api("PUT", "/admin/job-environment", admin,
                     json={"env": before["env"], "networkMode": before["networkMode"]})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def team(platform, admin):
    """A tenant with an administrator and a plain member, each with a token for it."""
    tenant = platform.create_tenant(token=admin)
    admin_name, admin_password = platform.create_user(admin_of=[tenant["name"]])
    user_name, user_password = platform.create_user(tenants=[tenant["name"]])
    return {
        "tenant": tenant,
        "admin": platform.login(admin_name, admin_password, tenant["id"]),
        "user": platform.login(user_name, user_password, tenant["id"]),
    }


def put(platform, token, path, body):
    return platform.api("PUT", path, token, json=body)


def errors_of(r) -> dict:
    body = r.json()
    assert body["status"] == r.status_code == 400 and body["detail"], body
    return body["errors"]


def test_system_setting_round_trip(platform, admin, system_setting):
    r = platform.api("GET", "/admin/job-environment", admin)
    assert r.status_code == 200, r.text
    assert set(r.json()) >= {"env", "networkMode"}
    assert r.json()["networkMode"] in ("host", "bridge", "none")

    env = {"PIP_INDEX_URL": "https://pypi.example/simple", "PIP_CERT": "/etc/ssl/company.pem", "HTTPS_PROXY": SECRET}
    r = put(platform, admin, "/admin/job-environment", {"env": env, "networkMode": "bridge"})
    assert r.status_code == 200, r.text
    assert r.json()["env"] == env and r.json()["networkMode"] == "bridge"
    assert r.json()["modifiedBy"] == "admin"
    got = platform.api("GET", "/admin/job-environment", admin).json()
    assert got["env"] == env and got["networkMode"] == "bridge"

    # a field left out keeps its value
    r = put(platform, admin, "/admin/job-environment", {"networkMode": "none"})
    assert r.status_code == 200 and r.json()["env"] == env and r.json()["networkMode"] == "none"
    r = put(platform, admin, "/admin/job-environment", {"env": {}})
    assert r.status_code == 200 and r.json() == {**r.json(), "env": {}, "networkMode": "none"}

    # values are never written to the service's log
    with open(platform.log_path, errors="replace") as f:
        assert "pr0xy-s3cret" not in f.read()


def test_tenant_override_and_effective_result(platform, admin, team, system_setting):
    tenant_id = team["tenant"]["id"]
    put(platform, admin, "/admin/job-environment",
        {"env": {"PIP_INDEX_URL": "https://a.example/simple", "HTTPS_PROXY": SECRET}, "networkMode": "bridge"})

    # no override yet: everything comes from the system
    r = platform.api("GET", f"/admin/tenants/{tenant_id}/job-environment", admin)
    assert r.status_code == 200, r.text
    assert r.json()["env"] == {} and r.json()["networkMode"] is None
    assert r.json()["effective"] == {"env": {"PIP_INDEX_URL": "https://a.example/simple", "HTTPS_PROXY": SECRET},
                                     "networkMode": "bridge"}

    # the system administrator sets an override: variables merged over, network mode replaced
    r = put(platform, admin, f"/admin/tenants/{tenant_id}/job-environment",
            {"env": {"PIP_INDEX_URL": "https://b.example/simple", "PIP_TRUSTED_HOST": "b.example"},
             "networkMode": "host"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["env"] == {"PIP_INDEX_URL": "https://b.example/simple", "PIP_TRUSTED_HOST": "b.example"}
    assert body["networkMode"] == "host"
    assert body["effective"] == {
        "env": {"PIP_INDEX_URL": "https://b.example/simple", "HTTPS_PROXY": SECRET, "PIP_TRUSTED_HOST": "b.example"},
        "networkMode": "host"}

    # the tenant's administrator sees the same, and changes it in the current tenant
    r = platform.api("GET", "/tenant/job-environment", team["admin"])
    assert r.status_code == 200, r.text
    assert r.json()["env"] == body["env"] and r.json()["effective"] == body["effective"]
    r = put(platform, team["admin"], "/tenant/job-environment", {"networkMode": None})
    assert r.status_code == 200, r.text
    assert r.json()["networkMode"] is None and r.json()["effective"]["networkMode"] == "bridge"
    assert r.json()["env"] == body["env"]
    r = platform.api("GET", f"/admin/tenants/{tenant_id}/job-environment", admin)
    assert r.json()["networkMode"] is None and r.json()["effective"]["networkMode"] == "bridge"

    # a system change shows through where the tenant does not override it
    put(platform, admin, "/admin/job-environment", {"networkMode": "none"})
    r = platform.api("GET", "/tenant/job-environment", team["admin"])
    assert r.json()["effective"]["networkMode"] == "none"
    assert r.json()["effective"]["env"]["PIP_INDEX_URL"] == "https://b.example/simple"

    # other tenants are not affected
    r = platform.api("GET", "/admin/tenants/1/job-environment", admin)
    assert r.status_code == 200 and r.json()["effective"]["env"]["PIP_INDEX_URL"] == "https://a.example/simple"

    # an override that sets nothing is gone
    r = put(platform, team["admin"], "/tenant/job-environment", {"env": {}, "networkMode": None})
    assert r.status_code == 200, r.text
    assert r.json()["env"] == {} and r.json()["modifiedAt"] is None
    assert r.json()["effective"]["env"]["PIP_INDEX_URL"] == "https://a.example/simple"


@pytest.mark.parametrize("body, field", [
    ({"env": {"1BAD": "x"}}, "env"),
    ({"env": {"BAD-NAME": "x"}}, "env"),
    ({"env": {"KQI_TOKEN": "x"}}, "env"),
    ({"env": {"KQI_SERVER": "http://evil"}}, "env"),
    ({"env": {"TRAINING_ID": "1"}}, "env"),
    ({"env": {"V": 1}}, "env"),
    ({"env": {"V": "a\u0000b"}}, "env"),
    ({"env": {"V": "x" * 4097}}, "env"),
    ({"env": {f"V{i}": "" for i in range(101)}}, "env"),
    ({"env": ["V=1"]}, "env"),
    ({"networkMode": "nat"}, "networkMode"),
    ({"networkMode": "HOST"}, "networkMode"),
    ({"netwrokMode": "host"}, "netwrokMode"),
])
def test_bad_input_is_refused_and_nothing_is_saved(platform, admin, team, system_setting, body, field):
    tenant_id = team["tenant"]["id"]
    good_system = {"env": {"PIP_INDEX_URL": "https://a.example/simple"}, "networkMode": "bridge"}
    assert put(platform, admin, "/admin/job-environment", good_system).status_code == 200
    good_tenant = {"env": {"PIP_CERT": "/etc/ca.pem"}, "networkMode": "host"}
    assert put(platform, admin, f"/admin/tenants/{tenant_id}/job-environment", good_tenant).status_code == 200
    # the good part of the body would change something if it were saved
    bad = {"env": {"CHANGED": "1"}, "networkMode": "none", **body}
    for token, path in ((admin, "/admin/job-environment"), (admin, f"/admin/tenants/{tenant_id}/job-environment"),
                        (team["admin"], "/tenant/job-environment")):
        r = put(platform, token, path, bad)
        assert r.status_code == 400, (path, r.text)
        assert field in errors_of(r), (path, r.json())
        assert field in r.json()["detail"] or len(errors_of(r)) > 1
    system = platform.api("GET", "/admin/job-environment", admin).json()
    assert {k: system[k] for k in ("env", "networkMode")} == good_system
    tenant = platform.api("GET", f"/admin/tenants/{tenant_id}/job-environment", admin).json()
    assert {k: tenant[k] for k in ("env", "networkMode")} == good_tenant
    put(platform, admin, f"/admin/tenants/{tenant_id}/job-environment", {"env": {}, "networkMode": None})


def test_system_mode_cannot_be_null_and_body_must_be_an_object(platform, admin, system_setting):
    r = put(platform, admin, "/admin/job-environment", {"networkMode": None})
    assert r.status_code == 400 and "networkMode" in errors_of(r)
    r = platform.api("PUT", "/admin/job-environment", admin, data="[]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = platform.api("PUT", "/admin/job-environment", admin, data="{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_unknown_tenant_is_404(platform, admin):
    assert platform.api("GET", "/admin/tenants/999999/job-environment", admin).status_code == 404
    r = put(platform, admin, "/admin/tenants/999999/job-environment", {"networkMode": "none"})
    assert r.status_code == 404
    assert platform.api("GET", "/admin/tenants/x/job-environment", admin).status_code == 400


def test_who_may_call_what(platform, admin, team, system_setting):
    tenant_id = team["tenant"]["id"]
    before_system = platform.api("GET", "/admin/job-environment", admin).json()
    before_tenant = platform.api("GET", f"/admin/tenants/{tenant_id}/job-environment", admin).json()
    body = {"env": {"X": "1"}, "networkMode": "none"}
    # a plain member: nothing
    for method, path in (("GET", "/admin/job-environment"), ("PUT", "/admin/job-environment"),
                         ("GET", f"/admin/tenants/{tenant_id}/job-environment"),
                         ("PUT", f"/admin/tenants/{tenant_id}/job-environment"),
                         ("GET", "/tenant/job-environment"), ("PUT", "/tenant/job-environment")):
        r = platform.api(method, path, team["user"], json=body if method == "PUT" else None)
        assert r.status_code == 403, (method, path, r.text)
    # the tenant's administrator: only its own tenant's override, through /tenant
    for method, path in (("GET", "/admin/job-environment"), ("PUT", "/admin/job-environment"),
                         ("GET", f"/admin/tenants/{tenant_id}/job-environment"),
                         ("PUT", f"/admin/tenants/{tenant_id}/job-environment"),
                         ("GET", "/admin/tenants/1/job-environment")):
        r = platform.api(method, path, team["admin"], json=body if method == "PUT" else None)
        assert r.status_code == 403, (method, path, r.text)
    # without a token
    assert platform.api("GET", "/admin/job-environment").status_code == 401
    assert platform.api("PUT", "/tenant/job-environment", json=body).status_code == 401
    assert platform.api("GET", "/admin/job-environment", admin).json() == before_system
    assert platform.api("GET", f"/admin/tenants/{tenant_id}/job-environment", admin).json() == before_tenant
