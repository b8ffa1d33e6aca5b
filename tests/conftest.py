"""Shared fixtures: a real KQI Hub (on SQLite and on PostgreSQL), CLI homes, tokens."""
from __future__ import annotations

import os
import uuid

import pytest

from .platform import new_platform, remove_tree
from .postgres import PostgresServer

ARTIFACTS = os.path.join(os.path.dirname(__file__), "artifacts")


def pytest_addoption(parser):
    parser.addoption(
        "--db", default="sqlite,postgresql",
        help="comma-separated database backends to run the platform tests on",
    )


def pytest_generate_tests(metafunc):
    if "db_backend" in metafunc.fixturenames:
        backends = [b for b in metafunc.config.getoption("--db").split(",") if b]
        metafunc.parametrize("db_backend", backends, scope="session")


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def platform(db_backend, request, tmp_path_factory):
    """The running platform for one database backend, shared by the whole session."""
    base = str(tmp_path_factory.mktemp(f"platform-{db_backend}"))
    # the tests' Slack stand-ins listen on http://127.0.0.1: allowed here as an administrator would
    # allow an internal chat server (by default notifications go to public https addresses only)
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write('c.NotificationPolicy.allowed_networks = ["127.0.0.1/32"]\n'
                "c.NotificationPolicy.allow_http = True\n")
    env = {"KQI_SERVICE_CONFIG": config}
    if db_backend == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        env["KQI_HUB_DB_URL"] = pg.create_database(f"hub_{suffix}")
        env["KQI_DB_URL"] = pg.create_database(f"kqi_{suffix}")
    plat = new_platform(base, env)
    plat.db_backend = db_backend
    plat.start()
    yield plat
    plat.stop()
    remove_tree(base)


@pytest.fixture
def cli_home(tmp_path):
    """An empty HOME for the kqi CLI (it keeps its config in ~/.kqi/config.json)."""
    home = tmp_path / "home"
    home.mkdir()
    return str(home)


@pytest.fixture(scope="session")
def artifacts_dir():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
