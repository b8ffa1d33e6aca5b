"""The hub configuration and its two profiles, loaded the way JupyterHub loads them."""
from __future__ import annotations

import os

import pytest
from traitlets.config.loader import PyFileConfigLoader

import kqi_hub_config

CONFIG_DIR = os.path.dirname(kqi_hub_config.__file__)


def load(monkeypatch, tmp_path, **env):
    for key in list(os.environ):
        if key.startswith("KQI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KQI_DATA_DIR", str(tmp_path / "data"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return PyFileConfigLoader("jupyterhub_config.py", path=CONFIG_DIR).load_config()


def test_local_profile(monkeypatch, tmp_path):
    c = load(monkeypatch, tmp_path, KQI_PORT="8765")
    assert c.JupyterHub.port == 8765 and c.JupyterHub.ip == "127.0.0.1"
    assert c.JupyterHub.db_url.startswith("sqlite:///" + str(tmp_path / "data"))
    assert c.JupyterHub.authenticator_class == "kqi"
    assert c.JupyterHub.spawner_class == "kqi-local"
    assert set(c.JupyterHub.custom_scopes) == {"custom:kqi:user", "custom:kqi:tenant-admin", "custom:kqi:system-admin"}
    (service,) = c.JupyterHub.services
    assert service["name"] == "kqi" and service["oauth_no_confirm"]
    assert service["environment"]["KQI_PROFILE"] == "local"
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["kqi-system-admin"]["users"] == ["admin"]
    assert "tokens" in roles["kqi-service"]["scopes"]
    # every piece of state is under the data directory
    assert c.JupyterHub.cookie_secret_file.startswith(str(tmp_path / "data"))


def test_kubernetes_profile(monkeypatch, tmp_path):
    c = load(monkeypatch, tmp_path, KQI_PROFILE="kubernetes",
             KQI_HUB_DB_URL="postgresql+psycopg://hub@db/hub", KQI_NAMESPACE="ai")
    assert c.JupyterHub.spawner_class == "kqi-kube"
    assert c.JupyterHub.db_url == "postgresql+psycopg://hub@db/hub"
    assert c.KqiKubeSpawner.namespace == "ai"


def test_kubernetes_profile_needs_its_database(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="KQI_HUB_DB_URL"):
        load(monkeypatch, tmp_path, KQI_PROFILE="kubernetes")


def test_unknown_profile(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="KQI_PROFILE"):
        load(monkeypatch, tmp_path, KQI_PROFILE="cloud")
