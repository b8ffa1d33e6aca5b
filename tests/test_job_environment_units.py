"""The job environment's plain rules (validation, merging) and its storage on a migrated
database (SQLite, and PostgreSQL with --db postgresql)."""
from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from kqi_services.db.models import Storage, Tenant
from kqi_services.db.models_job_environment import SystemJobEnvironment, TenantJobEnvironment
from kqi_services.db.session import alembic_config, make_engine, upgrade
from kqi_services.domain import job_environment as je
from kqi_services.domain.jobs import RESERVED_ENV
from kqi_services.domain.validation import ValidationError


# ------------------------------------------------------------------ validation
def test_good_variables_pass():
    assert je.env_errors({}) == []
    assert je.env_errors({"PIP_INDEX_URL": "https://pypi.example/simple", "_x1": "", "https_proxy": "u:p@h"}) == []
    assert je.env_errors({f"V{i}": "x" for i in range(je.MAX_VARIABLES)}) == []
    assert je.env_errors({"V": "x" * je.MAX_VALUE_LENGTH}) == []


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A.B", "A B", "", "Ä", "X=Y", "A\x00"])
def test_bad_names_are_refused(name):
    errors = je.env_errors({name: "v"})
    assert len(errors) == 1 and "not a valid variable name" in errors[0]


def test_reserved_names_are_the_jobs_list():
    for name in ("KQI_TOKEN", "KQI_SERVER", "TRAINING_ID", "LC_ALL", "MODEL_REPOSITORY_TOKEN"):
        assert name in RESERVED_ENV
        errors = je.env_errors({name: "x"})
        assert errors == [f"{name} is set by the platform and cannot be given"]
    # the proxy variables are the platform's overridable defaults, not reserved
    assert je.env_errors({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost"}) == []


@pytest.mark.parametrize("env, text", [
    ({"V": 1}, "the value of V must be a string"),
    ({"V": None}, "the value of V must be a string"),
    ({"V": ["a"]}, "the value of V must be a string"),
    ({"V": "x" * (je.MAX_VALUE_LENGTH + 1)}, f"at most {je.MAX_VALUE_LENGTH} characters"),
    ({"V": "a\x00b"}, "must not contain NUL"),
    ({"V" + "x" * 300: "v"}, "longer than"),
    ({f"V{i}": "" for i in range(je.MAX_VARIABLES + 1)}, f"at most {je.MAX_VARIABLES} variables"),
    ([["V", "x"]], "must be an object"),
    ("V=x", "must be an object"),
])
def test_bad_values_are_refused(env, text):
    errors = je.env_errors(env)
    assert errors and text in errors[0]


def test_messages_never_show_values():
    secret = "http://user:s3cret@proxy:3128"
    errors = je.env_errors({"P": secret + "\x00", "KQI_TOKEN": secret, "Q": secret * 200})
    assert len(errors) == 3
    assert not any("s3cret" in e for e in errors)


def test_network_modes():
    for mode in je.NETWORK_MODES:
        assert je.network_errors(mode, allow_none=False) == []
    assert je.network_errors(None, allow_none=True) == []
    for bad in (None, "", "HOST", "container:x", 1, ["host"]):
        assert je.network_errors(bad, allow_none=False) == ["must be one of host, bridge, none"]
    assert "or null" in je.network_errors("slirp", allow_none=True)[0]


def test_read_setting_keeps_what_is_left_out():
    current = ({"A": "1"}, "host")
    assert je.read_setting({}, current, override=False) == ({"A": "1"}, "host")
    assert je.read_setting({"networkMode": "none"}, current, override=False) == ({"A": "1"}, "none")
    assert je.read_setting({"env": {}}, current, override=False) == ({}, "host")
    # an override's null network mode means "the system's"
    assert je.read_setting({"networkMode": None}, ({}, "bridge"), override=True) == ({}, None)
    # what GET adds may be sent back
    body = {"env": {"B": "2"}, "networkMode": None, "effective": {"env": {}}, "modifiedAt": None}
    assert je.read_setting(body, current, override=True) == ({"B": "2"}, None)


def test_read_setting_reports_every_field():
    with pytest.raises(ValidationError) as e:
        je.read_setting({"env": {"KQI_TOKEN": "x", "1X": "y"}, "networkMode": "nat", "netwrok": "host"},
                        ({}, "host"), override=False)
    errors = e.value.errors
    assert set(errors) == {"env", "networkMode", "netwrok"}
    assert len(errors["env"]) == 2
    assert str(e.value).startswith(("env:", "networkMode:", "netwrok:"))
    with pytest.raises(ValidationError) as e:
        je.read_setting({"networkMode": None}, ({}, "host"), override=False)
    assert list(e.value.errors) == ["networkMode"]


# --------------------------------------------------------------------- merging
def test_merge_tenant_over_system():
    system = je.JobEnvironment(env={"PIP_INDEX_URL": "https://a/simple", "HTTPS_PROXY": "http://p:1"},
                               network="bridge")
    merged = je.merge(system, {"PIP_INDEX_URL": "https://b/simple", "PIP_CERT": "/etc/ca.pem"}, None)
    assert merged == je.JobEnvironment(
        env={"PIP_INDEX_URL": "https://b/simple", "HTTPS_PROXY": "http://p:1", "PIP_CERT": "/etc/ca.pem"},
        network="bridge")
    assert je.merge(system, {}, "none").network == "none"
    assert je.merge(system, None, None) == system
    # the system's object is not changed
    assert system.env == {"PIP_INDEX_URL": "https://a/simple", "HTTPS_PROXY": "http://p:1"}


def test_default():
    assert je.DEFAULT == je.JobEnvironment(env={}, network="host")
    assert je.NETWORK_MODES == ("host", "bridge", "none")


# ------------------------------------------------------------ migrated database
@pytest.fixture
def db_url(db_backend, request, tmp_path):
    if db_backend == "postgresql":
        return request.getfixturevalue("postgres_server").create_database(f"je_{uuid.uuid4().hex[:8]}")
    return f"sqlite:///{tmp_path}/kqi.sqlite"


@pytest.fixture
def db(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def _tenant(db) -> Tenant:
    storage = Storage(name=f"s-{uuid.uuid4().hex[:6]}", kind="local", server_url="file:///tmp/x")
    db.add(storage)
    db.flush()
    tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}", display_name="T", storage_id=storage.id)
    db.add(tenant)
    db.commit()
    return tenant


def test_fresh_database_has_the_default(db):
    assert je.effective_job_environment(db, None) == je.DEFAULT
    tenant = _tenant(db)
    assert je.effective_job_environment(db, tenant) == je.DEFAULT
    assert je.effective_job_environment(db, tenant.id) == je.DEFAULT
    assert je.effective_job_environment(db, None) is not je.DEFAULT  # callers may change what they get


def test_system_and_tenant_settings_are_stored_and_merged(db):
    tenant, other = _tenant(db), _tenant(db)
    je.set_system(db, {"env": {"PIP_INDEX_URL": "https://a/simple", "HTTPS_PROXY": "http://u:p@proxy:3128"},
                       "networkMode": "bridge"}, "root")
    je.set_tenant_override(db, tenant, {"env": {"PIP_INDEX_URL": "https://b/simple"}}, "tadmin")
    db.expire_all()
    effective = je.effective_job_environment(db, tenant)
    assert effective.env == {"PIP_INDEX_URL": "https://b/simple", "HTTPS_PROXY": "http://u:p@proxy:3128"}
    assert effective.network == "bridge"
    assert je.effective_job_environment(db, other).env["PIP_INDEX_URL"] == "https://a/simple"

    je.set_tenant_override(db, tenant, {"networkMode": "none"}, "tadmin")
    db.expire_all()
    assert je.effective_job_environment(db, tenant).network == "none"
    assert je.effective_job_environment(db, other).network == "bridge"
    out = je.tenant_json(db, tenant)
    assert out["env"] == {"PIP_INDEX_URL": "https://b/simple"} and out["networkMode"] == "none"
    assert out["effective"]["networkMode"] == "none" and out["modifiedBy"] == "tadmin"
    assert je.system_json(db)["modifiedBy"] == "root"

    # an override that sets nothing is removed
    je.set_tenant_override(db, tenant, {"env": {}, "networkMode": None}, "tadmin")
    assert db.get(TenantJobEnvironment, tenant.id) is None
    assert je.effective_job_environment(db, tenant).env["PIP_INDEX_URL"] == "https://a/simple"


def test_bad_input_saves_nothing(db):
    tenant = _tenant(db)
    je.set_system(db, {"env": {"A": "1"}, "networkMode": "bridge"}, "root")
    with pytest.raises(ValidationError):
        je.set_system(db, {"env": {"A": "2", "KQI_TOKEN": "x"}, "networkMode": "host"}, "root")
    with pytest.raises(ValidationError):
        je.set_tenant_override(db, tenant, {"env": {"B": "1"}, "networkMode": "nat"}, "root")
    db.rollback()
    db.expire_all()
    assert je.effective_job_environment(db, tenant) == je.JobEnvironment(env={"A": "1"}, network="bridge")
    assert db.scalars(select(TenantJobEnvironment)).all() == []


def test_one_system_row_and_overrides_go_with_their_tenant(db):
    tenant = _tenant(db)
    je.set_tenant_override(db, tenant, {"env": {"B": "1"}}, "root")
    assert len(db.scalars(select(SystemJobEnvironment)).all()) == 1
    db.delete(tenant)
    db.commit()
    assert db.scalars(select(TenantJobEnvironment)).all() == []


def test_migration_goes_down_and_up(db_url):
    upgrade(db_url)
    command.downgrade(alembic_config(db_url), "0005")
    upgrade(db_url)
    engine = make_engine(db_url)
    with Session(engine) as session:
        assert je.effective_job_environment(session, None) == je.DEFAULT
    engine.dispose()
