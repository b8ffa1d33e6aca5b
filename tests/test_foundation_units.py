"""Unit tests of the foundation's plain rules: passwords, scopes → identity, secrets, launcher."""
from __future__ import annotations

import io
import os
import types

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from kqi_services import launcher
from kqi_services.hubext.passwords import (
    PasswordError,
    PasswordStore,
    check_password_strength,
    check_username,
    hash_password,
    verify_password,
)
from kqi_services.hubext.tenant_roles import tenant_role_specs
from kqi_services.permissions import Access, allowed, identity_from_model, tenant_token_scopes
from kqi_services.secrets import SecretBox


def test_password_hash_round_trip_and_salt():
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2  # salted
    assert verify_password("correct horse", h1)
    assert not verify_password("wrong horse", h1)
    assert not verify_password("x", "garbage")


@pytest.mark.parametrize("name", ["", "Alice", "-bob", "a/b", "x" * 65, "a b"])
def test_bad_usernames(name):
    with pytest.raises(PasswordError):
        check_username(name)


def test_password_rules():
    with pytest.raises(PasswordError):
        check_password_strength("short")
    check_password_strength("long enough")


def test_password_store(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/hub.sqlite")
    PasswordStore.create_table(engine)
    with Session(engine) as db:
        store = PasswordStore(db)
        store.set_password("alice", "first-password")
        assert store.check("alice", "first-password") is not None
        assert store.check("alice", "other-password") is None
        assert store.check("nobody", "first-password") is None
        store.set_password("alice", "second-password")
        assert store.check("alice", "first-password") is None
        assert store.check("alice", "second-password") is not None
        # only the hash is stored
        raw = open(f"{tmp_path}/hub.sqlite", "rb").read()
        assert b"second-password" not in raw


def test_identity_from_scopes_reads_group_filters():
    identity = identity_from_model({
        "name": "alice", "kind": "user",
        "scopes": ["custom:kqi:user!group=a", "custom:kqi:user!group=b", "custom:kqi:tenant-admin!group=b",
                   "access:services!service=kqi", "read:users:name!user=alice",
                   "custom:kqi:user"],  # an unfiltered user scope names no tenant
    })
    assert identity.tenants == {"a": False, "b": True}
    assert not identity.system_admin
    assert identity_from_model({"name": "root", "scopes": ["custom:kqi:system-admin"]}).system_admin
    # a filtered system-admin scope is not system administration
    assert not identity_from_model({"name": "x", "scopes": ["custom:kqi:system-admin!group=a"]}).system_admin


def test_access_rules():
    member = identity_from_model({"name": "m", "scopes": ["custom:kqi:user!group=a"]})
    admin = identity_from_model({"name": "t", "scopes": ["custom:kqi:tenant-admin!group=a"]})
    assert allowed(Access.ANONYMOUS, None, None)
    assert not allowed(Access.AUTHENTICATED, None, None)
    assert allowed(Access.TENANT_USER, member, "a")
    assert not allowed(Access.TENANT_USER, member, "b")
    assert not allowed(Access.TENANT_ADMIN, member, "a")
    assert allowed(Access.TENANT_ADMIN, admin, "a")
    assert not allowed(Access.SYSTEM_ADMIN, admin, "a")


def test_tenant_token_scopes():
    assert tenant_token_scopes({"kqi-tenant-admin.a"}, "a", "kqi") == [
        "access:services!service=kqi", "custom:kqi:user!group=a", "custom:kqi:tenant-admin!group=a"]
    assert tenant_token_scopes({"kqi-tenant-admin.b"}, "a", "kqi") == [
        "access:services!service=kqi", "custom:kqi:user!group=a"]
    assert "custom:kqi:system-admin" in tenant_token_scopes({"kqi-system-admin"}, None, "kqi")


def test_tenant_role_specs():
    user_role, admin_role = tenant_role_specs("team", "kqi")
    assert user_role["name"] == "kqi-user.team"
    assert "custom:kqi:user!group=team" in user_role["scopes"]
    assert "custom:kqi:tenant-admin!group=team" in admin_role["scopes"]
    assert all(r["managed_by_auth"] for r in (user_role, admin_role))


def test_secret_box():
    box = SecretBox("a-key-of-enough-length")
    sealed = box.encrypt("ghp_secret")
    assert "ghp_secret" not in sealed
    assert box.decrypt(sealed) == "ghp_secret"
    with pytest.raises(ValueError):
        SecretBox("another-key-of-enough-length").decrypt(sealed)


def test_launcher_first_start_password(tmp_path):
    args = types.SimpleNamespace(data_dir=str(tmp_path / "d"), ip="127.0.0.1", port=8123, profile="local")
    out = io.StringIO()
    env = launcher.prepare_environment(args, environ={"PATH": "/usr/bin"}, out=out)
    password = env["KQI_BOOTSTRAP_ADMIN_PASSWORD"]
    assert password in out.getvalue()
    for sub in ("hub", "kqi", "store", "jobs", "notebooks", "git"):
        assert os.path.isdir(tmp_path / "d" / sub)
    assert env["KQI_PORT"] == "8123" and env["KQI_DATA_DIR"] == str(tmp_path / "d")
    # the second start prints nothing and hands no password over
    out2 = io.StringIO()
    env2 = launcher.prepare_environment(args, environ={"PATH": "/usr/bin"}, out=out2)
    assert "KQI_BOOTSTRAP_ADMIN_PASSWORD" not in env2 and out2.getvalue() == ""
    # KQI_ADMIN_PASSWORD is handed over under the bootstrap name only
    env3 = launcher.prepare_environment(args, environ={"KQI_ADMIN_PASSWORD": "chosen-pw-1"}, out=io.StringIO())
    assert env3["KQI_BOOTSTRAP_ADMIN_PASSWORD"] == "chosen-pw-1" and "KQI_ADMIN_PASSWORD" not in env3
