"""User administration against a real KQI Hub: /admin/users (system administrator) and
/tenant/users (tenant administrator). Users, passwords and memberships are the hub's, so
every check looks at the hub as well.
"""
from __future__ import annotations

import uuid

import pytest
import requests


def new_name() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def new_password() -> str:
    return f"pw-{uuid.uuid4().hex}"


def try_login(platform, name, password, tenant_id=None) -> requests.Response:
    body = {"userName": name, "password": password}
    if tenant_id is not None:
        body["tenantId"] = tenant_id
    return requests.post(f"{platform.api_url}/account/login", json=body, timeout=30)


def hub_tenant(platform, tenant_name) -> dict:
    r = platform.hub("GET", f"/kqi/tenants/{tenant_name}")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


# ------------------------------------------------------------------ system administrator
def test_create_user_logs_in_and_lands_in_its_tenant(platform, admin):
    team = platform.create_tenant()
    name, password = new_name(), new_password()
    r = platform.api("POST", "/admin/users", admin, json={
        "name": name, "password": password, "displayName": "New Member",
        "tenants": [{"id": team["id"], "isTenantAdmin": False}],
    })
    assert r.status_code == 201, r.text
    row = r.json()
    assert password not in r.text
    assert row["name"] == name and row["displayName"] == "New Member"
    assert row["isSystemAdmin"] is False
    assert row["tenants"] == [{"id": team["id"], "name": team["name"], "displayName": team["displayName"],
                               "isTenantAdmin": False, "default": False}]
    assert isinstance(row["id"], int)

    # the hub has the user in the tenant's group, and not as an administrator
    assert name in platform.hub("GET", f"/groups/{team['name']}").json()["users"]
    assert name not in hub_tenant(platform, team["name"])["admins"]

    r = try_login(platform, name, password)
    assert r.status_code == 200, r.text
    assert r.json()["tenantId"] == team["id"]
    token = r.json()["token"]
    account = platform.api("GET", "/account", token).json()
    assert account["selectedTenant"]["name"] == team["name"]
    assert account["userDisplayName"] == "New Member"
    assert try_login(platform, name, "wrong-password").status_code == 401

    listed = platform.api("GET", "/admin/users", admin)
    assert listed.status_code == 200, listed.text
    rows = {u["name"]: u for u in listed.json()}
    assert {**rows[name], "lastActivity": None} == {**row, "lastActivity": None}
    assert rows[name]["lastActivity"]  # it signed in
    assert rows["admin"]["isSystemAdmin"] is True
    assert {"id": 1, "name": "sandbox", "displayName": "Sandbox", "isTenantAdmin": True,
            "default": False} in rows["admin"]["tenants"]
    assert password not in listed.text

    got = platform.api("GET", f"/admin/users/{name}", admin)
    assert got.status_code == 200 and got.json() == rows[name]
    paged = platform.api("GET", "/admin/users?perPage=1&page=1&withTotal=true", admin)
    assert len(paged.json()) == 1 and int(paged.headers["X-Total-Count"]) == len(rows)


def test_create_user_as_tenant_admin_with_default_tenant(platform, admin):
    team = platform.create_tenant()
    name, password = new_name(), new_password()
    r = platform.api("POST", "/admin/users", admin, json={
        "name": name, "password": password,
        "tenants": [{"id": 1}, {"id": team["id"], "isTenantAdmin": True, "default": True}],
    })
    assert r.status_code == 201, r.text
    assert [(t["id"], t["isTenantAdmin"], t["default"]) for t in r.json()["tenants"]] == [
        (1, False, False), (team["id"], True, True)]
    assert r.json()["displayName"] == name
    assert name in hub_tenant(platform, team["name"])["admins"]
    r = try_login(platform, name, password)
    assert r.json()["tenantId"] == team["id"]
    assert platform.api("GET", "/tenant/users", r.json()["token"]).status_code == 200


def test_create_user_refusals(platform, admin):
    existing, _ = platform.create_user(tenants=["sandbox"])
    name = new_name()
    cases = [
        ({"name": existing, "password": new_password()}, 409, None),
        ({"name": "Upper-Case", "password": new_password()}, 400, "name"),
        ({"name": "has space", "password": new_password()}, 400, "name"),
        ({"password": new_password()}, 400, "name"),
        ({"name": name}, 400, "password"),
        ({"name": name, "password": "short"}, 400, "password"),
        ({"name": name, "password": new_password(), "tenants": [{"id": 99999}]}, 400, "tenants[0].id"),
        ({"name": name, "password": new_password(), "tenants": [{"id": 1}, {"id": 1}]}, 400, "tenants[1].id"),
        ({"name": name, "password": new_password(), "tenants": [{"id": 1, "isTenantAdmin": "yes"}]}, 400,
         "tenants[0].isTenantAdmin"),
        ({"name": name, "password": new_password(), "tenants": "sandbox"}, 400, "tenants"),
    ]
    for body, status, field in cases:
        r = platform.api("POST", "/admin/users", admin, json=body)
        assert r.status_code == status, (body, r.text)
        if field:
            assert field in r.json()["errors"], (body, r.json())
        if "password" in body:
            assert body["password"] not in r.text
    # none of the refused requests made a user
    assert platform.hub("GET", f"/users/{name}").status_code == 404


def test_create_user_is_undone_when_a_later_hub_step_fails(platform, admin):
    good = platform.create_tenant()
    broken = platform.create_tenant()
    # the hub group of a tenant disappears behind KQI's back (the hub's admin page can do that)
    assert platform.hub("DELETE", f"/groups/{broken['name']}").status_code == 204
    name, password = new_name(), new_password()
    r = platform.api("POST", "/admin/users", admin, json={
        "name": name, "password": password,
        "tenants": [{"id": good["id"], "isTenantAdmin": True}, {"id": broken["id"]}],
    })
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert broken["name"] in detail and "undone" in detail
    # nothing is left: no hub user, no membership, no admin role, no settings
    assert platform.hub("GET", f"/users/{name}").status_code == 404
    assert name not in platform.hub("GET", f"/groups/{good['name']}").json()["users"]
    assert name not in hub_tenant(platform, good["name"])["admins"]
    assert name not in {u["name"] for u in platform.api("GET", "/admin/users", admin).json()}
    assert try_login(platform, name, password).status_code == 401


def test_admin_sets_password(platform, admin):
    name, password = platform.create_user(tenants=["sandbox"])
    new = new_password()
    assert platform.api("PUT", f"/admin/users/{name}/password", admin, json={"password": "short"}).status_code == 400
    r = platform.api("PUT", f"/admin/users/{name}/password", admin, json={"password": new})
    assert r.status_code == 204, r.text
    assert try_login(platform, name, password).status_code == 401
    assert try_login(platform, name, new).status_code == 200
    # an unknown user is not made by setting a password
    ghost = new_name()
    r = platform.api("PUT", f"/admin/users/{ghost}/password", admin, json={"password": new})
    assert r.status_code == 404
    assert platform.hub("GET", f"/users/{ghost}").status_code == 404


def test_replace_tenants(platform, admin):
    team = platform.create_tenant()
    name, password = platform.create_user(tenants=["sandbox"])
    r = platform.api("PUT", f"/admin/users/{name}/tenants", admin,
                     json=[{"id": team["id"], "isTenantAdmin": True}])
    assert r.status_code == 200, r.text
    assert [(t["name"], t["isTenantAdmin"]) for t in r.json()["tenants"]] == [(team["name"], True)]
    assert name not in platform.hub("GET", "/groups/sandbox").json()["users"]
    assert name in platform.hub("GET", f"/groups/{team['name']}").json()["users"]
    assert name in hub_tenant(platform, team["name"])["admins"]
    assert try_login(platform, name, password).json()["tenantId"] == team["id"]
    assert try_login(platform, name, password, tenant_id=1).status_code == 400

    # demote, and back into the sandbox
    r = platform.api("PUT", f"/admin/users/{name}/tenants", admin,
                     json={"tenants": [{"id": 1}, {"id": team["id"], "isTenantAdmin": False}]})
    assert r.status_code == 200, r.text
    assert [(t["id"], t["isTenantAdmin"]) for t in r.json()["tenants"]] == [(1, False), (team["id"], False)]
    assert name not in hub_tenant(platform, team["name"])["admins"]

    # out of every tenant: the user can no longer sign in to one
    r = platform.api("PUT", f"/admin/users/{name}/tenants", admin, json=[])
    assert r.status_code == 200 and r.json()["tenants"] == []
    assert try_login(platform, name, password).status_code == 403

    assert platform.api("PUT", f"/admin/users/{name}/tenants", admin, json=[{"id": 4242}]).status_code == 400
    assert platform.api("PUT", f"/admin/users/{new_name()}/tenants", admin, json=[]).status_code == 404

    # PUT /admin/users/{name} edits the display name and the tenants together
    r = platform.api("PUT", f"/admin/users/{name}", admin,
                     json={"displayName": "Renamed", "tenants": [{"id": 1, "default": True}]})
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Renamed"
    assert r.json()["tenants"][0]["default"] is True
    r = platform.api("PUT", f"/admin/users/{name}/displayName", admin, json={"displayName": "Again"})
    assert r.status_code == 200 and r.json()["displayName"] == "Again"


def test_delete_user(platform, admin):
    name, password = platform.create_user(tenants=["sandbox"])
    token = platform.login(name, password)
    hook = f"https://hooks.slack.com/services/T/B/{uuid.uuid4().hex}"
    assert platform.api("PUT", "/account/webhook/slack", token, json={"slackUrl": hook}).status_code == 204
    assert platform.api("PUT", "/account/gits", token, json=[{"id": 1, "token": "t-" + uuid.uuid4().hex}]
                        ).status_code == 200

    r = platform.api("DELETE", f"/admin/users/{name}", admin)
    assert r.status_code == 204, r.text
    assert platform.hub("GET", f"/users/{name}").status_code == 404
    assert try_login(platform, name, password).status_code == 401
    assert platform.api("GET", f"/admin/users/{name}", admin).status_code == 404
    assert platform.api("DELETE", f"/admin/users/{name}", admin).status_code == 404

    # a new user of the same name starts with nothing of the old one's
    again = new_password()
    r = platform.api("POST", "/admin/users", admin, json={"name": name, "password": again, "tenants": [{"id": 1}]})
    assert r.status_code == 201, r.text
    token = platform.login(name, again)
    assert platform.api("GET", "/account/webhook/slack", token).json()["slackUrlSet"] is False
    assert platform.api("GET", "/account/gits", token).json()["gits"][0]["tokenSet"] is False

    r = platform.api("DELETE", "/admin/users/admin", admin)
    assert r.status_code == 400
    assert "yourself" in r.json()["detail"]
    assert platform.hub("GET", "/users/admin").status_code == 200


# ------------------------------------------------------------------ tenant administrator
def test_tenant_admin_manages_members(platform, admin):
    team = platform.create_tenant()
    boss, boss_pw = platform.create_user(admin_of=[team["name"]])
    outsider, outsider_pw = platform.create_user(tenants=["sandbox"])
    token = platform.login(boss, boss_pw)

    r = platform.api("GET", "/tenant/users", token)
    assert r.status_code == 200, r.text
    assert [(u["name"], u["isTenantAdmin"]) for u in r.json()] == [(boss, True)]

    # add an existing hub user
    r = platform.api("PUT", f"/tenant/users/{outsider}", token, json={"isTenantAdmin": False})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == outsider and r.json()["isTenantAdmin"] is False
    assert outsider in platform.hub("GET", f"/groups/{team['name']}").json()["users"]
    assert try_login(platform, outsider, outsider_pw, tenant_id=team["id"]).status_code == 200
    assert platform.api("GET", f"/tenant/users/{outsider}", token).json()["isTenantAdmin"] is False

    # make it an administrator, then a member again
    r = platform.api("PUT", f"/tenant/users/{outsider}", token, json={"isTenantAdmin": True})
    assert r.status_code == 200 and r.json()["isTenantAdmin"] is True
    assert outsider in hub_tenant(platform, team["name"])["admins"]
    r = platform.api("PUT", f"/tenant/users/{outsider}", token, json={"isTenantAdmin": False})
    assert r.status_code == 200 and r.json()["isTenantAdmin"] is False
    assert outsider not in hub_tenant(platform, team["name"])["admins"]

    assert platform.api("PUT", f"/tenant/users/{new_name()}", token, json={"isTenantAdmin": False}
                        ).status_code == 404
    assert platform.api("PUT", "/tenant/users/Not Valid", token, json={}).status_code == 400
    assert platform.api("PUT", f"/tenant/users/{outsider}", token, json={"isTenantAdmin": "no"}
                        ).status_code == 400
    r = platform.api("PUT", f"/tenant/users/{boss}", token, json={"isTenantAdmin": False})
    assert r.status_code == 400
    assert boss in hub_tenant(platform, team["name"])["admins"]

    r = platform.api("DELETE", f"/tenant/users/{boss}", token)
    assert r.status_code == 400 and "yourself" in r.json()["detail"]

    # an administrator is removed with its role
    platform.api("PUT", f"/tenant/users/{outsider}", token, json={"isTenantAdmin": True})
    r = platform.api("DELETE", f"/tenant/users/{outsider}", token)
    assert r.status_code == 204, r.text
    assert outsider not in platform.hub("GET", f"/groups/{team['name']}").json()["users"]
    assert outsider not in hub_tenant(platform, team["name"])["admins"]
    assert try_login(platform, outsider, outsider_pw, tenant_id=team["id"]).status_code == 400
    assert platform.api("DELETE", f"/tenant/users/{outsider}", token).status_code == 404
    assert platform.api("GET", f"/tenant/users/{outsider}", token).status_code == 404
    # the user is still in its other tenant
    assert outsider in platform.hub("GET", "/groups/sandbox").json()["users"]


def test_tenant_users_see_403_on_user_administration(platform):
    name, password = platform.create_user(tenants=["sandbox"])
    token = platform.login(name, password)
    for method, path in (("GET", "/admin/users"), ("POST", "/admin/users"), ("GET", "/admin/users/admin"),
                         ("PUT", f"/admin/users/{name}/password"), ("DELETE", "/admin/users/admin"),
                         ("GET", "/tenant/users"), ("PUT", f"/tenant/users/{name}"),
                         ("DELETE", "/tenant/users/admin")):
        r = platform.api(method, path, token, json={"password": new_password(), "isTenantAdmin": True})
        assert r.status_code == 403, (method, path, r.text)
        assert platform.api(method, path, None, json={}).status_code == 401
    # nothing changed for the user
    assert name not in hub_tenant(platform, "sandbox")["admins"]


def test_tenant_admin_is_no_system_admin(platform):
    team = platform.create_tenant()
    boss, boss_pw = platform.create_user(admin_of=[team["name"]])
    token = platform.login(boss, boss_pw)
    assert platform.api("GET", "/admin/users", token).status_code == 403
    # the tenant administrator of one tenant acts in that tenant only
    other, _ = platform.create_user(tenants=["sandbox"])
    r = platform.api("DELETE", f"/tenant/users/{other}", token)
    assert r.status_code == 404
    assert other in platform.hub("GET", "/groups/sandbox").json()["users"]


def test_user_deleted_in_the_hub_leaves_nothing_to_a_new_user_of_that_name(platform, admin):
    name, password = platform.create_user(tenants=["sandbox"])
    token = platform.login(name, password)
    hook = f"https://hooks.slack.com/services/T/B/{uuid.uuid4().hex}"
    assert platform.api("PUT", "/account/webhook/slack", token, json={"slackUrl": hook}).status_code == 204
    # deleted on the hub's admin page, so KQI's settings row stays behind
    assert platform.hub("DELETE", f"/users/{name}").status_code == 204
    again = new_password()
    r = platform.api("POST", "/admin/users", admin, json={"name": name, "password": again, "tenants": [{"id": 1}]})
    assert r.status_code == 201, r.text
    token = platform.login(name, again)
    assert platform.api("GET", "/account/webhook/slack", token).json()["slackUrlSet"] is False
