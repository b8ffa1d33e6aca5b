"""KQI Hub inside JupyterLab: the "KQI" sidebar (the prebuilt front-end in ./labextension) and the
server extension its panels call (handlers.py), which forwards them to the kqi service with the
notebook server's own hub token. See ../CONTRACT.md."""
from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "kqi-labextension"}]


def _jupyter_server_extension_points():
    return [{"module": "kqi_labextension"}]


def _load_jupyter_server_extension(serverapp):
    from .handlers import setup_handlers

    setup_handlers(serverapp)


# the name older notebook servers look for
load_jupyter_server_extension = _load_jupyter_server_extension
