"""Personal access tokens (issue 16): /account/tokens against a real KQI Hub, used by the official CLI."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

from kqi_services.api.personal_tokens import parse_note, personal_tokens, token_note


def test_note_round_trip_and_only_personal_tokens_listed():
    assert parse_note(token_note("vision", "my laptop")) == ("vision", "my laptop")
    assert parse_note(token_note("vision", None)) == ("vision", None)
    assert parse_note("kqi login, tenant vision") is None
    assert parse_note(None) is None
    models = [
        {"id": "a1", "note": token_note("vision", "ci"), "scopes": ["custom:kqi:user!group=vision"],
         "created": "2026-11-30T01:02:03.000000Z", "last_activity": None, "expires_at": "2026-12-30T01:02:03Z"},
        {"id": "a2", "note": "kqi login, tenant vision", "scopes": [], "created": "2026-11-30T01:02:03Z"},
    ]
    listed = personal_tokens(models, {})
    assert [t["id"] for t in listed] == ["a1"]
    assert listed[0]["tenantName"] == "vision" and listed[0]["tenantId"] is None
    assert listed[0]["createdAt"] == "2026-11-30T01:02:03" and listed[0]["expiresAt"] == "2026-12-30T01:02:03"


def write_cli_config(home: str, server: str, token: str) -> None:
    os.makedirs(os.path.join(home, ".kqi"), exist_ok=True)
    with open(os.path.join(home, ".kqi", "config.json"), "w") as f:
        json.dump({"server": server, "token": token}, f)


def test_create_list_use_and_revoke(platform, cli_home):
    team = platform.create_tenant()
    other = platform.create_tenant()
    name, password = platform.create_user(tenants=[team["name"]])
    session_token = platform.login(name, password)
    # the embedded authenticator keeps the passwords: KQI changes them
    assert platform.api("GET", "/account", session_token).json()["passwordChangeEnabled"] is True

    r = platform.api("POST", "/account/tokens", session_token,
                     json={"tenantId": other["id"], "note": "not mine", "expiresInDays": 7})
    assert r.status_code == 400 and "tenantId" in r.json()["errors"]
    r = platform.api("POST", "/account/tokens", session_token,
                     json={"tenantId": team["id"], "note": "laptop", "expiresInDays": 0})
    assert r.status_code == 400

    r = platform.api("POST", "/account/tokens", session_token,
                     json={"tenantId": team["id"], "note": "laptop scripts", "expiresInDays": 7})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["token"]
    assert created["tenantId"] == team["id"] and created["note"] == "laptop scripts"
    expires = datetime.fromisoformat(created["expiresAt"])
    assert timedelta(days=6, hours=23) < expires - datetime.utcnow() <= timedelta(days=7)

    # the official CLI with the token: the tenant's data and the account in that tenant
    write_cli_config(cli_home, platform.service_url, secret)
    out = platform.cli(cli_home, "account", "get").stdout
    assert f"selected tenant: {team['id']} {team['displayName']}" in out
    platform.cli(cli_home, "data", "list")

    r = platform.api("GET", "/account/tokens", session_token)
    assert r.status_code == 200, r.text
    assert secret not in r.text  # never shown again
    listed = {t["id"]: t for t in r.json()}
    mine = listed[created["id"]]
    assert set(mine) == {"id", "note", "tenantId", "tenantName", "createdAt", "lastUsedAt", "expiresAt"}
    assert mine["note"] == "laptop scripts" and mine["tenantId"] == team["id"]
    assert mine["tenantName"] == team["displayName"]
    assert mine["lastUsedAt"] is not None  # the CLI used it

    # another user cannot see or revoke it
    stranger, stranger_pw = platform.create_user(tenants=[team["name"]])
    stranger_token = platform.login(stranger, stranger_pw)
    assert created["id"] not in {t["id"] for t in platform.api("GET", "/account/tokens", stranger_token).json()}
    assert platform.api("DELETE", f"/account/tokens/{created['id']}", stranger_token).status_code == 404
    r = platform.api("DELETE", f"/account/tokens/{created['id']}", session_token)
    assert r.status_code == 204
    assert platform.api("GET", "/account", secret).status_code == 401
    result = platform.cli(cli_home, "data", "list", check=False)
    assert result.returncode != 0
    assert created["id"] not in {t["id"] for t in platform.api("GET", "/account/tokens", session_token).json()}
    assert platform.api("DELETE", f"/account/tokens/{created['id']}", session_token).status_code == 404

    log = open(platform.log_path, errors="replace").read()
    assert secret not in log


def test_no_directory_sync_with_the_embedded_authenticator(platform):
    admin = platform.admin_token()
    assert platform.api("GET", "/admin/directory/sync", admin).json() == {"available": False}
    r = platform.api("POST", "/admin/directory/sync", admin)
    assert r.status_code == 400 and "KQI_AUTHENTICATOR=ldap" in r.json()["detail"], r.text
