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


def test_the_hubs_doors_lead_to_the_kqi_ui(monkeypatch, tmp_path):
    """Signing in starts no server; the hub's root, home and spawn pages send users to the KQI UI."""
    from jupyterhub import handlers

    from kqi_hub_config import doors

    c = load(monkeypatch, tmp_path)
    assert c.JupyterHub.redirect_to_server is False and c.JupyterHub.implicit_spawn_seconds == 0

    class Handler:
        base_url = "/"

    assert c.JupyterHub.default_url(Handler) == "/services/kqi/"
    Handler.base_url = "/ai/"
    assert c.JupyterHub.default_url(Handler) == "/ai/services/kqi/"
    # tornado takes the first matching handler: the doors come before JupyterHub's /home and /spawn
    patterns = [h[0] for h in handlers.default_handlers]
    for pattern in ("/home", "/spawn", "/spawn/([^/]+)", "/spawn/([^/]+)/([^/]+)"):
        first = next(h for h in handlers.default_handlers if h[0] == pattern)
        assert first[1] is doors.KqiDoorHandler, pattern
        assert patterns.index(pattern) < len(doors.DOOR_HANDLERS)
    load(monkeypatch, tmp_path)  # loading the config again adds nothing twice
    assert [h[0] for h in handlers.default_handlers] == patterns


@pytest.mark.parametrize("ip,port,base,url", [
    ("127.0.0.1", 8000, "/", "http://127.0.0.1:8000/services/kqi/"),
    ("0.0.0.0", 80, "/", "http://127.0.0.1:80/services/kqi/"),
    ("::1", 8000, "/ai/", "http://[::1]:8000/ai/services/kqi/"),
])
def test_the_start_up_address_is_the_kqi_ui(ip, port, base, url):
    from kqi_hub_config.doors import kqi_ui_url

    assert kqi_ui_url(ip, port, base) == url
