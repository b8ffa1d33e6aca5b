"""Bad input gets a clear 4xx in KAMONOHASHI's error shape, and changes nothing.

Against a real hub + proxy + kqi service. After every test, the tenant list (kqi side) and
the hub's groups and tenant roles are read again and must be as they were before.
"""
from __future__ import annotations

import time
import uuid

import pytest
import requests

ERROR_KEYS = {"type", "title", "status", "detail", "instance", "errors"}


def error_of(r: requests.Response, status: int) -> dict:
    """The JSON error of a response that must have `status`."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    assert body["status"] == status
    assert body["type"].endswith(str(status)) and body["title"] and body["detail"]
    assert body["instance"].startswith("/services/kqi/"), body
    assert isinstance(body["errors"], dict)
    return body


@pytest.fixture(scope="module")
def admin(platform) -> str:
    return platform.admin_token()


@pytest.fixture(scope="module")
def member(platform):
    """A tenant user of a tenant of its own: (tenant, name, password, token)."""
    tenant = platform.create_tenant(f"bad-{uuid.uuid4().hex[:6]}")
    name, password = platform.create_user(tenants=[tenant["name"]])
    return tenant, name, password, platform.login(name, password)


def state(platform, admin) -> dict:
    tenants = platform.api("GET", "/admin/tenants", admin)
    assert tenants.status_code == 200, tenants.text
    groups = platform.hub("GET", "/groups")
    assert groups.status_code == 200, groups.text
    items = groups.json()
    items = items["items"] if isinstance(items, dict) else items
    return {
        "tenants": tenants.json(),
        "details": [platform.api("GET", f"/admin/tenants/{t['id']}", admin).json() for t in tenants.json()],
        "groups": sorted((g["name"], tuple(sorted(g["users"]))) for g in items),
        "admins": [platform.hub("GET", f"/kqi/tenants/{t['name']}").json() for t in tenants.json()],
    }


@pytest.fixture(autouse=True)
def nothing_changes(platform, admin, member):
    before = state(platform, admin)
    yield
    after = state(platform, admin)
    assert after == before, "a refused request changed the tenants or the hub's groups"


# ------------------------------------------------------------------ unknown things
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_tenant_id_is_404(platform, admin, method):
    body = {"displayName": "X", "gitIds": [1], "registryIds": [1], "storageId": 1} if method == "PUT" else None
    err = error_of(platform.api(method, "/admin/tenants/987654321", admin, json=body), 404)
    assert "987654321" in err["detail"]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "99999999999999999999999"])
def test_tenant_id_that_is_not_a_whole_number_is_400(platform, admin, value):
    error_of(platform.api("GET", f"/admin/tenants/{value}", admin), 400)


def test_switch_to_unknown_tenant_is_404(platform, member):
    _, _, _, token = member
    error_of(platform.api("POST", "/account/tenants/987654321/token", token, json={}), 404)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_unknown_route_is_404_in_the_error_shape(platform, admin, method):
    for path in ("/no-such-route", "/admin/tenants/1/no-such-thing", "/admin"):
        err = error_of(platform.api(method, path, admin, json={} if method in ("POST", "PUT") else None), 404)
        assert path in err["instance"]
    # also without credentials, and outside the API
    error_of(requests.request(method, platform.service_url + "/api/v2/nothing-here", timeout=30), 404)


# -------------------------------------------------------------------- bodies
MALFORMED = [b"{not json", b'{"tenantName": "x",}', b"\xff\xfe{}", b'{"a": 1', b"nul"]
NOT_OBJECTS = [b"[]", b'["tenantName"]', b'"a string"', b"42", b"true", b"null"]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_json_is_400(platform, admin, member, raw):
    tenant, _, _, _ = member
    headers = {"Content-Type": "application/json"}
    for method, path in [("POST", "/admin/tenants"), ("PUT", f"/admin/tenants/{tenant['id']}")]:
        err = error_of(platform.api(method, path, admin, data=raw, headers=dict(headers)), 400)
        assert "JSON" in err["detail"], err
    r = requests.post(f"{platform.api_url}/account/login", data=raw, headers=headers, timeout=30)
    assert "JSON" in error_of(r, 400)["detail"]


@pytest.mark.parametrize("raw", NOT_OBJECTS)
def test_json_that_is_not_an_object_is_400(platform, admin, member, raw):
    tenant, _, _, _ = member
    for method, path in [("POST", "/admin/tenants"), ("PUT", f"/admin/tenants/{tenant['id']}")]:
        err = error_of(platform.api(method, path, admin, data=raw,
                                    headers={"Content-Type": "application/json"}), 400)
        assert "object" in err["detail"], err
    r = requests.post(f"{platform.api_url}/account/login", data=raw, timeout=30)
    assert "object" in error_of(r, 400)["detail"]


@pytest.mark.parametrize("raw", [b"", b"   "])
def test_missing_body_is_400(platform, admin, raw):
    err = error_of(platform.api("POST", "/admin/tenants", admin, data=raw), 400)
    assert "JSON object" in err["detail"]


# ------------------------------------------------------------------ credentials
def test_wrong_password_is_401(platform, member):
    _, name, password, _ = member
    for user, pw in [(name, password + "x"), (name, ""), ("no-such-user-" + uuid.uuid4().hex[:6], password)]:
        r = requests.post(f"{platform.api_url}/account/login", json={"userName": user, "password": pw}, timeout=30)
        if pw == "":
            # an empty password is refused by the contract, naming the field
            assert list(error_of(r, 400)["errors"]) == ["password"]
            continue
        err = error_of(r, 401)
        assert err["detail"] == "The user name or the password is wrong."
        assert "token" not in r.text
    # wrong and unknown users get the same answer, so names cannot be probed
    a = requests.post(f"{platform.api_url}/account/login", json={"userName": name, "password": "x"}, timeout=30)
    b = requests.post(f"{platform.api_url}/account/login", json={"userName": "nobody-" + uuid.uuid4().hex[:6],
                                                                 "password": "x"}, timeout=30)
    assert a.json()["detail"] == b.json()["detail"] and a.status_code == b.status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"password": "x"}, "userName"),
    ({"userName": "admin"}, "password"),
    ({"userName": 5, "password": "x"}, "userName"),
    ({"userName": "admin", "password": "x", "expiresIn": 5}, "expiresIn"),
    ({"userName": "admin", "password": "x", "expiresIn": "long"}, "expiresIn"),
    ({"userName": "admin", "password": "x", "tenantId": "one"}, "tenantId"),
])
def test_login_field_errors_are_400(platform, body, field):
    err = error_of(requests.post(f"{platform.api_url}/account/login", json=body, timeout=30), 400)
    assert field in err["errors"], err


def _hub_token(platform, user, tenant, **extra):
    r = platform.hub("POST", f"/users/{user}/tokens",
                     json={"note": "bad input test", "scopes": [f"custom:kqi:user!group={tenant}",
                                                               "access:services!service=kqi"], **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _hub_accepts(platform, token) -> bool:
    return requests.get(platform.hub_api_url + "/user", headers={"Authorization": f"token {token}"},
                        timeout=10).status_code == 200


@pytest.mark.parametrize("used_before", [False, True], ids=["never-used", "in-use"])
def test_expired_token_is_401(platform, member, used_before):
    tenant, name, _, _ = member
    token = _hub_token(platform, name, tenant["name"], expires_in=3 if used_before else 1)["token"]
    if used_before:
        assert platform.api("GET", "/account", token).status_code == 200
    deadline = time.monotonic() + 10
    while _hub_accepts(platform, token):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    for path in ("/account", "/admin/tenants", "/tenant"):
        err = error_of(platform.api("GET", path, token), 401)
        assert "token" in err["detail"]


@pytest.mark.parametrize("used_before", [False, True], ids=["never-used", "in-use"])
def test_revoked_token_is_401(platform, member, used_before):
    tenant, name, _, _ = member
    model = _hub_token(platform, name, tenant["name"])
    assert _hub_accepts(platform, model["token"])
    if used_before:
        assert platform.api("GET", "/account", model["token"]).status_code == 200
    assert platform.hub("DELETE", f"/users/{name}/tokens/{model['id']}").status_code == 204
    for path in ("/account", "/admin/tenants", "/tenant"):
        error_of(platform.api("GET", path, model["token"]), 401)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "token", "Bearer a b c"])
def test_malformed_authorization_header_is_401(platform, header):
    r = requests.get(f"{platform.api_url}/account", headers={"Authorization": header}, timeout=30)
    error_of(r, 401)


# ------------------------------------------------------------------- tenants
def tenant_body(**fields) -> dict:
    return {"tenantName": f"ok-{uuid.uuid4().hex[:6]}", "displayName": "Bad input", "gitIds": [1],
            "registryIds": [1], "storageId": 1, **fields}


@pytest.mark.parametrize("name", [
    "UpperCase", "-leading", "trailing-", "kqi-reserved", "kube-reserved", "a" * 129, "under_score",
    "with space", "dot.ted", "日本語", "1starts-with-digit", "", "   ",
])
def test_tenant_name_that_breaks_the_rules_is_400(platform, admin, name):
    err = error_of(platform.api("POST", "/admin/tenants", admin, json=tenant_body(tenantName=name)), 400)
    assert list(err["errors"]) == ["tenantName"], err
    assert err["errors"]["tenantName"], err
    if name.strip():
        assert platform.hub("GET", f"/groups/{requests.utils.quote(name, safe='')}").status_code == 404


@pytest.mark.parametrize("fields, field", [
    ({"gitIds": [987654]}, "gitIds"),
    ({"gitIds": [1, 987654]}, "gitIds"),
    ({"registryIds": [987654]}, "registryIds"),
    ({"storageId": 987654}, "storageId"),
    ({"gitIds": "1"}, "gitIds"),
    ({"gitIds": [1, 1]}, "gitIds"),
    ({"gitIds": [True]}, "gitIds"),
    ({"storageId": "1"}, "storageId"),
    ({"defaultGitId": 987654}, "defaultGitId"),
    ({"displayName": None}, "displayName"),
    ({"displayName": 42}, "displayName"),
    ({"displayName": "x" * 129}, "displayName"),
    ({"limitCpu": -1}, "limitCpu"),
    ({"limitGpu": 1.5}, "limitGpu"),
    ({"availableInfiniteTimeNotebook": "yes"}, "availableInfiniteTimeNotebook"),
    ({"userGroupIds": [1]}, "userGroupIds"),
])
def test_bad_tenant_fields_are_400_on_create_and_edit(platform, admin, member, fields, field):
    def names_field(errors):  # the field, or an item of it ("gitIds[0]")
        return any(name == field or name.startswith(field + "[") for name in errors)

    err = error_of(platform.api("POST", "/admin/tenants", admin, json=tenant_body(**fields)), 400)
    assert names_field(err["errors"]), err
    tenant, _, _, _ = member
    body = tenant_body(**fields)
    body.pop("tenantName")
    err = error_of(platform.api("PUT", f"/admin/tenants/{tenant['id']}", admin, json=body), 400)
    assert names_field(err["errors"]), err


def test_every_problem_is_reported_at_once(platform, admin):
    # the shape of the body (the contract's model: types, required fields, lengths, the name pattern)
    body = {"tenantName": "Bad", "gitIds": [1], "registryIds": "x", "storageId": "1"}
    err = error_of(platform.api("POST", "/admin/tenants", admin, json=body), 400)
    assert set(err["errors"]) == {"tenantName", "displayName", "registryIds", "storageId"}, err
    assert all(name in err["detail"] for name in err["errors"]), err
    # a body of the right shape: everything the rules that read the database find
    body = {"tenantName": "kqi-bad", "displayName": "X", "gitIds": [987654], "registryIds": [987654],
            "storageId": 987654}
    err = error_of(platform.api("POST", "/admin/tenants", admin, json=body), 400)
    assert set(err["errors"]) == {"tenantName", "gitIds", "registryIds", "storageId"}, err


def test_existing_tenant_name_is_409(platform, admin, member):
    tenant, _, _, _ = member
    err = error_of(platform.api("POST", "/admin/tenants", admin, json=tenant_body(tenantName=tenant["name"])), 409)
    assert tenant["name"] in err["detail"]


# ---------------------------------------------------------------- query strings
@pytest.mark.parametrize("query, field", [
    ("perPage=0", "perPage"), ("perPage=abc", "perPage"), ("page=0", "page"), ("page=-3", "page"),
    ("perPage=10&page=x", "page"),
])
def test_bad_paging_is_400(platform, admin, query, field):
    err = error_of(platform.api("GET", f"/admin/tenants?{query}", admin), 400)
    assert field in err["errors"], err


@pytest.mark.parametrize("query", ["", "?defaultTenant=", "?defaultTenant=abc", "?defaultTenant=987654"])
def test_bad_default_tenant_is_400(platform, member, query):
    _, _, _, token = member
    before = platform.api("GET", "/account", token).json()
    err = error_of(platform.api("PUT", f"/account{query}", token), 400)
    assert "defaultTenant" in err["errors"], err
    assert platform.api("GET", "/account", token).json() == before


def test_default_tenant_of_another_tenant_is_400(platform, member, admin):
    _, _, _, token = member
    sandbox = platform.api("GET", "/account", admin).json()["selectedTenant"]["id"]
    err = error_of(platform.api("PUT", f"/account?defaultTenant={sandbox}", token), 400)
    assert err["errors"] == {"defaultTenant": ["not one of your tenants"]}


# ------------------------------------------------------- ids beyond the database's range
BIG = 2**40  # a JSON integer the database's 32-bit id columns cannot hold


@pytest.mark.parametrize("fields, field", [
    ({"gitIds": [BIG]}, "gitIds[0]"),
    ({"registryIds": [BIG]}, "registryIds[0]"),
    ({"storageId": BIG}, "storageId"),
    ({"defaultGitId": BIG}, "defaultGitId"),
])
def test_body_ids_beyond_the_database_range_are_400(platform, admin, field, fields):
    """Row ids in a body are refused by the contract (a 400 naming the field), never a 500 from the
    database's integer range."""
    err = error_of(platform.api("POST", "/admin/tenants", admin, json=tenant_body(**fields)), 400)
    assert field in err["errors"], err


def test_member_ids_beyond_the_database_range_are_400(platform, member):
    _, _, _, token = member
    for path, body in (("/account/registries", [{"id": BIG, "userName": "u"}]),
                       ("/account/gits", [{"id": BIG, "token": "t"}]),
                       ("/account/login", {"userName": "x", "password": "y", "tenantId": BIG})):
        r = platform.api("PUT" if path != "/account/login" else "POST", path, token, json=body)
        err = error_of(r, 400)
        assert any("id" in name.lower() for name in err["errors"]), err


@pytest.mark.parametrize("method, path, body, field", [
    ("POST", "/admin/tenants", tenant_body(limitGpu=BIG), "limitGpu"),
    ("POST", "/admin/nodes", {"name": "big-gpu", "accessLevel": 2, "gpu": BIG}, "gpu"),
    ("POST", "/admin/quotas", [{"tenantId": 1, "gpu": BIG}], "[0].gpu"),
])
def test_counts_beyond_the_database_range_are_400(platform, admin, method, path, body, field):
    """A GPU count the database's integer column cannot hold is a 400 naming the field, not a 500."""
    err = error_of(platform.api(method, path, admin, json=body), 400)
    assert field in err["errors"], err
