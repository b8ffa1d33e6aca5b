"""The hub's own doors lead to the KQI UI.

A KQI notebook is started by the kqi service (its checks: tenant quota, node capacity, the
references of the notebook) and signed for that one start; the spawners refuse any other
start (spawner/base.py). So the hub's pages that would offer or start a server by
themselves send users to the KQI UI at `<base_url>services/kqi/` instead:

- `/hub/` and the page after sign-in (c.JupyterHub.default_url, redirect_to_server off);
- `/hub/home` (the list of named servers with their start buttons);
- `/hub/spawn[/<user>[/<server>]]` (which starts a server with no options form at once).
"""
from __future__ import annotations

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.utils import url_path_join

SERVICE_NAME = "kqi"


def kqi_ui_path(base_url: str = "/") -> str:
    """The KQI UI's path under the hub's base URL ('/' -> '/services/kqi/')."""
    return url_path_join(base_url or "/", "services", SERVICE_NAME) + "/"


def kqi_ui_url(ip: str, port: int, base_url: str = "/") -> str:
    """The address the launcher prints: where a user starts (http://ip:port/services/kqi/)."""
    host = f"[{ip}]" if ":" in ip else ip
    if ip in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening on every address: this machine's own is one of them
    return f"http://{host}:{port}{kqi_ui_path(base_url)}"


def default_url(handler) -> str:
    """c.JupyterHub.default_url: the KQI UI under the hub's base URL."""
    return kqi_ui_path(handler.base_url)


class KqiDoorHandler(BaseHandler):
    """Send the hub's home and spawn pages to the KQI UI (a 302, signed in or not: the UI asks for
    sign-in itself)."""

    def _to_kqi(self, *args):
        self.redirect(kqi_ui_path(self.base_url))

    get = _to_kqi
    post = _to_kqi


#: (pattern, handler) pairs under the hub's prefix, before JupyterHub's own
DOOR_HANDLERS = [
    (r"/home", KqiDoorHandler),
    (r"/spawn", KqiDoorHandler),
    (r"/spawn/([^/]+)", KqiDoorHandler),
    (r"/spawn/([^/]+)/([^/]+)", KqiDoorHandler),
]


def install(hub_handlers: list) -> None:
    """Put the door handlers first in JupyterHub's handler list (tornado takes the first match);
    JupyterHub.extra_handlers come after its own pages, so they could not replace /home."""
    for door in reversed(DOOR_HANDLERS):
        if door not in hub_handlers:
            hub_handlers.insert(0, door)
