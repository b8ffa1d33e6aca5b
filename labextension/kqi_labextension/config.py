"""The server extension's settings (c.KqiLab.* in the notebook server's config).

Every default comes from the environment the KQI spawners give a notebook (spawner/base.py
kqi_env) and from the hub (JUPYTERHUB_API_TOKEN, JUPYTERHUB_USER), so a notebook started by the
platform needs no configuration.
"""
from __future__ import annotations

import json
import os

from traitlets import Float, Integer, List, Unicode, default
from traitlets.config import Configurable


def _ids(text: str | None) -> list[int]:
    return [int(part) for part in (text or "").replace(" ", "").split(",") if part.isdigit()]


class KqiLab(Configurable):
    kqi_server = Unicode(
        help="URL of the kqi service, ending before /api/v2 (e.g. http://hub.example.com/services/kqi)."
        " Default: the KQI_SERVER variable the spawner sets.",
    ).tag(config=True)

    api_token = Unicode(
        help="The credential the extension sends to the kqi service: the notebook server's own hub token"
        " (JUPYTERHUB_API_TOKEN), never shown to the browser or written to the log.",
    ).tag(config=True)

    tenant_id = Unicode(
        help="Id of the notebook's tenant, sent as X-KQI-Tenant with every call (whatever the browser"
        " sends) and shown in the panels. Default: KQI_TENANT_ID (the spawner sets it from the kqi"
        " service's plan); when empty the extension asks the service (GET /account). The service decides"
        " what the server's token reaches either way: only its notebook's tenant.",
    ).tag(config=True)

    tenant_name = Unicode(help="Name of the notebook's tenant (shown only). Default: KQI_TENANT_NAME.").tag(config=True)

    tenant_display_name = Unicode(
        help="Display name of the notebook's tenant (shown only). Default: KQI_TENANT_DISPLAY_NAME.",
    ).tag(config=True)

    user = Unicode(help="The notebook's owner. Default: JUPYTERHUB_USER.").tag(config=True)

    notebook_id = Unicode(help="The KQI notebook's id. Default: NOTEBOOK_ID.").tag(config=True)

    dataset_id = Unicode(help="The notebook's dataset id (empty: none). Default: DATASET_ID.").tag(config=True)

    training_ids = List(
        Integer(), help="Trainings mounted at /kqi/parent. Default: PARENT_ID (comma separated).",
    ).tag(config=True)

    inference_ids = List(
        Integer(), help="Inferences mounted at /kqi/inference. Default: INFERENCE_ID (comma separated).",
    ).tag(config=True)

    image = Unicode(
        help="The notebook's container image (registry/path:tag): what 'Train from here' proposes."
        " Default: KQI_IMAGE.",
    ).tag(config=True)

    expires_at = Float(
        0.0,
        help="When the notebook's lifetime ends (seconds since the epoch; 0: no lifetime). Default:"
        " KQI_EXPIRES_AT.",
    ).tag(config=True)

    git_model = Unicode(
        help="The notebook's model repository as the kqi service names it, JSON {gitId, owner,"
        " repository, branch, commitId} ('Train from here' fills a training's gitModel from it)."
        " Default: KQI_GIT_MODEL.",
    ).tag(config=True)

    git_roots = List(
        Unicode(),
        ["/kqi/git"],
        help="Folders whose git repositories the notebook's context lists (the folder itself when it is a"
        " repository, else its sub-folders that are); the server's root folder is looked at too.",
    ).tag(config=True)

    request_timeout = Float(
        3600.0,
        help="Seconds a call to the kqi service may take in all (a followed live log or a large download"
        " takes long).",
    ).tag(config=True)

    connect_timeout = Float(20.0, help="Seconds to wait for a connection to the kqi service.").tag(config=True)

    part_size = Integer(
        16 * 1024 * 1024,
        help="Bytes per part of an upload (the official CLI's 16 MiB); one part is in memory at a time.",
    ).tag(config=True)

    max_clients = Integer(
        64,
        help="Calls to the kqi service at once (followed logs hold one each); more wait for a free one.",
    ).tag(config=True)

    ca_certs = Unicode(
        help="CA bundle to check the kqi service's certificate with (empty: the system's)."
        " Default: KQI_CA_BUNDLE or SSL_CERT_FILE.",
    ).tag(config=True)

    @default("kqi_server")
    def _kqi_server(self):
        return os.environ.get("KQI_SERVER", "")

    @default("api_token")
    def _api_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("tenant_id")
    def _tenant_id(self):
        return os.environ.get("KQI_TENANT_ID", "")

    @default("tenant_name")
    def _tenant_name(self):
        return os.environ.get("KQI_TENANT_NAME", "")

    @default("tenant_display_name")
    def _tenant_display_name(self):
        return os.environ.get("KQI_TENANT_DISPLAY_NAME", "")

    @default("user")
    def _user(self):
        return os.environ.get("JUPYTERHUB_USER", "")

    @default("notebook_id")
    def _notebook_id(self):
        return os.environ.get("NOTEBOOK_ID", "")

    @default("dataset_id")
    def _dataset_id(self):
        return os.environ.get("DATASET_ID", "")

    @default("training_ids")
    def _training_ids(self):
        return _ids(os.environ.get("PARENT_ID"))

    @default("inference_ids")
    def _inference_ids(self):
        return _ids(os.environ.get("INFERENCE_ID"))

    @default("image")
    def _image(self):
        return os.environ.get("KQI_IMAGE", "")

    @default("expires_at")
    def _expires_at(self):
        try:
            return float(os.environ.get("KQI_EXPIRES_AT") or 0)
        except ValueError:
            return 0.0

    @default("git_model")
    def _git_model(self):
        return os.environ.get("KQI_GIT_MODEL", "")

    @default("ca_certs")
    def _ca_certs(self):
        return os.environ.get("KQI_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or ""

    def git_model_dict(self) -> dict | None:
        try:
            model = json.loads(self.git_model) if self.git_model else None
        except ValueError:
            return None
        return model if isinstance(model, dict) else None
