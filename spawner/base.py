"""What every KQI notebook does, whichever base spawner runs it.

A KQI notebook is a named server of its owner. Its `user_options` hold the fields of the
guide's table (spawner/options.py) and the `plan` the kqi service resolved, signed by the
service for this one start. The mixin checks the options (a bad option fails the spawn with
a clear message and nothing starts), refuses any start the service did not plan (the
default server, plain or changed options, a replayed or stale plan: HTTP 400 from the hub's
API, before anything is made), keeps the expiry time in the spawner's state so the lifetime
holds across hub restarts, and builds the runtime's notebook spec.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time

from tornado import web
from traitlets import Bool, Float, Unicode, default
from traitlets.config import LoggingConfigurable

from .options import NOT_PLANNED, NotebookOptions, OptionsError, PlanLedger, parse_options, plan_key, verify_plan

#: the plans this hub process has taken (one ledger per process, shared by every spawner)
_LEDGERS: dict[float, PlanLedger] = {}
_STARTED = time.time()  # the spawner is loaded when the hub starts

#: where a notebook container finds the lab extension (kqi_labextension): its Python package under
#: python/, its prebuilt front-end under share/jupyter/labextensions/kqi-labextension
LAB_DIR = "/opt/kqi-labextension"
LAB_PACKAGE = "kqi_labextension"
LAB_FRONTEND = "share/jupyter/labextensions/kqi-labextension"
#: the scopes of JupyterHub's `server` role (what a server's token has by default)
SERVER_ROLE_SCOPES = ("users:activity!user", "access:servers!server")


def lab_package_dir() -> str:
    """The folder of the kqi_labextension package this hub has installed ("" when none)."""
    try:
        spec = importlib.util.find_spec(LAB_PACKAGE)
    except (ImportError, ValueError):
        return ""
    return os.path.dirname(spec.origin) if spec and spec.origin else ""


def lab_env() -> dict:
    """A notebook's variables that make its JupyterLab load the lab extension from LAB_DIR."""
    return {"PYTHONPATH": f"{LAB_DIR}/python", "JUPYTER_PATH": f"{LAB_DIR}/share/jupyter"}


#: the notebook server's argument that enables the server extension (config files of the image's or
#: the runtime's JupyterLab still enable theirs)
LAB_ARGS = (f"--ServerApp.jpserver_extensions={LAB_PACKAGE}=True",)


def kqi_server_token_scopes(spawner) -> list[str]:
    """Spawner.server_token_scopes of a KQI notebook: the `server` role's scopes, access to the kqi
    service and the KQI scopes of the owner's tenants (the hub grants the subset the owner holds).

    The hub makes this token before it applies the start's options, so it cannot name the
    notebook's tenant here; the kqi service lets a token carrying a server's own
    `access:servers!server=<user>/<server>` act only in the tenant of that KQI notebook
    (kqi_services/permissions.py notebook_identity), never as a system administrator."""
    scopes = set(SERVER_ROLE_SCOPES)
    scopes.add(f"access:services!service={spawner.kqi_service_name}")
    for group in getattr(spawner.user, "groups", None) or []:
        name = getattr(group, "name", group)
        scopes.add(f"custom:kqi:user!group={name}")
        scopes.add(f"custom:kqi:tenant-admin!group={name}")
    return sorted(scopes)


class KqiSpawnerMixin(LoggingConfigurable):
    default_image = Unicode(
        "docker.io/kamonohashi/jupyterlab:tensorflow-2.2.0",
        help="Container image of a notebook whose options name none (the guide's default:"
        " kamonohashi/jupyterlab:tensorflow-2.2.0 from Docker Hub).",
    ).tag(config=True)

    default_jupyterlab_version = Unicode(
        "",
        help="JupyterLab version installed into images that lack JupyterLab, when the options name none"
        " (empty: the newest).",
    ).tag(config=True)

    lifetime_unit_seconds = Float(
        3600.0,
        help="Seconds per unit of the lifetime option (hours). Tests make it small to see a notebook end.",
    ).tag(config=True)

    allow_infinite_lifetime = Unicode(
        "plan",
        help="Whether a notebook may run without a lifetime: 'plan' (as the kqi service's plan says for the"
        " tenant), 'always' or 'never'.",
    ).tag(config=True)

    plan_secret = Unicode(
        "",
        help="The kqi service's secret key (KQI_SECRET_KEY or <data dir>/kqi/secret_key). A plan (host"
        " folders or volume sub-paths to mount, clone URL, whether the tenant allows no lifetime) is only"
        " accepted with the service's signature, and every start needs one (plan_max_age_seconds): users"
        " could otherwise start servers through the hub's API with any user_options. Empty: every start"
        " is refused.",
    ).tag(config=True)

    plan_max_age_seconds = Float(
        120.0,
        help="Seconds a start planned by the kqi service stays good: the service signs the options of"
        " every start with the time and a one-time nonce, and the hub makes the server right after. A"
        " plan older than this, made before this hub process started, or used once already is refused:"
        " a user's own hub token cannot start a server (or the default server) with options replayed"
        " from an earlier start, only the kqi service's checks (quota, node capacity) start servers.",
    ).tag(config=True)

    kqi_service_name = Unicode(
        "kqi",
        help="Name of the kqi service in the hub: the notebook server's own hub token may call it (the lab"
        " extension's panels go through the server with that token).",
    ).tag(config=True)

    lab_extension = Bool(
        True,
        help="Install the KQI lab extension (kqi_labextension: the KQI sidebar and its server extension)"
        " into every notebook.",
    ).tag(config=True)

    lab_package_dir = Unicode(
        help="Folder of the kqi_labextension package (with its prebuilt front-end in labextension/) that"
        " notebooks get read-only. Default: where this hub's Python finds the package.",
    ).tag(config=True)

    @default("lab_package_dir")
    def _lab_package_dir_default(self):
        return lab_package_dir()

    @default("server_token_scopes")
    def _server_token_scopes_default(self):
        return kqi_server_token_scopes

    kqi_options: NotebookOptions | None = None
    expires_at: float | None = None
    _admitted_nonce: str | None = None

    # ---------------------------------------------------------------- doors
    def plan_ledger(self) -> PlanLedger:
        ledger = _LEDGERS.get(self.plan_max_age_seconds)
        if ledger is None:
            ledger = _LEDGERS[self.plan_max_age_seconds] = PlanLedger(self.plan_max_age_seconds, started_at=_STARTED)
        return ledger

    def admit_plan(self, user_options: dict) -> None:
        """Take the kqi service's one-time plan of this start, or refuse the start (HTTP 400)."""
        key = plan_key(self.plan_secret) if self.plan_secret else None
        reason = self.plan_ledger().admit(key, self.user.name, self.name or "", user_options or {})
        if reason:
            where = f"{self.user.name}/{self.name}" if self.name else f"the default server of {self.user.name}"
            self.log.warning("Refused a start of %s: %s", where, reason.split(":")[0])
            raise web.HTTPError(400, f"The server {where} cannot start: {reason}")
        self._admitted_nonce = user_options["planNonce"]

    def take_admission(self) -> None:
        """In start(): the hub took this start's plan (apply_user_options) and nothing started with it yet."""
        nonce = (self.user_options or {}).get("planNonce")
        if not nonce or nonce != self._admitted_nonce:
            raise web.HTTPError(400, f"The server cannot start: {NOT_PLANNED}")
        self._admitted_nonce = None

    # ---------------------------------------------------------------- options
    def _infinite_allowed(self, raw: dict) -> bool:
        if self.allow_infinite_lifetime == "always":
            return True
        if self.allow_infinite_lifetime == "never":
            return False
        return bool((raw.get("plan") or {}).get("infiniteAllowed", False))

    def parse_kqi_options(self, raw: dict) -> NotebookOptions:
        plan = (raw or {}).get("plan")
        if plan:
            key = plan_key(self.plan_secret) if self.plan_secret else None
            if not isinstance(plan, dict) or not verify_plan(key, self.user.name, self.name or "", raw):
                raise OptionsError({"plan": "only the kqi service makes plans: start notebooks through"
                                            " its notebook API (POST /notebook/run)"})
        return parse_options(raw or {}, infinite_allowed=self._infinite_allowed(raw or {}),
                             default_image=self.default_image or None,
                             default_jupyterlab=self.default_jupyterlab_version or None)

    def options_from_form(self, formdata):
        return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in formdata.items()}

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # JupyterHub (5.3+) calls this before start(): a bad option fails the spawn request with
        # HTTP 400 and the message, before anything is made or started
        return _apply_kqi_user_options

    def load_kqi_options(self) -> NotebookOptions:
        try:
            self.kqi_options = self.parse_kqi_options(self.user_options)
        except OptionsError as e:
            # the hub shows this message to the user; nothing starts
            raise ValueError(f"The notebook options are not valid: {e}") from None
        return self.kqi_options

    # ---------------------------------------------------------------- lifetime
    def start_lifetime(self) -> float | None:
        """Seconds left to run (None: no lifetime). The expiry is fixed at the first start."""
        options = self.kqi_options
        if not options.lifetime_enabled:
            self.expires_at = None
            return None
        if self.expires_at is None:
            self.expires_at = time.time() + options.lifetime_hours * self.lifetime_unit_seconds
        return max(1.0, self.expires_at - time.time())

    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    def kqi_state(self, state: dict) -> dict:
        if self.expires_at is not None:
            state["kqi_expires_at"] = self.expires_at
        if self.kqi_options is not None:
            state["kqi_options"] = json.dumps(self.kqi_options.to_dict())
        return state

    def load_kqi_state(self, state: dict) -> None:
        self.expires_at = state.get("kqi_expires_at")
        if state.get("kqi_options"):
            self.kqi_options = NotebookOptions(**json.loads(state["kqi_options"]))

    def clear_kqi_state(self) -> None:
        self.expires_at = None

    # ---------------------------------------------------------------- runtime
    def notebook_spec(self, server_command: list[str], python: str | None = None) -> dict:
        o, plan = self.kqi_options, self.kqi_options.plan
        spec = {
            "mode": "notebook",
            "logName": "notebook.log",
            "serverCommand": server_command,
            "jupyterlabVersion": o.jupyterlab_version,
            "startupCommand": o.startup_command,
            "env": dict(o.env),
            "datasetId": o.dataset_id,
        }
        if python:
            spec["python"] = python
        if plan.get("git"):
            spec["git"] = plan["git"]
        if plan.get("pairs") is not None:
            spec["dataset"] = {"method": "copy" if o.local_dataset else "symlink", "pairs": plan["pairs"],
                               "rawDir": "/kqi/raw", **({"urls": plan["urls"]} if plan.get("urls") else {})}
        return spec

    # ---------------------------------------------------------------- lab extension
    def lab_binds(self) -> list[tuple[str, str]]:
        """(host folder, container folder) pairs that put the lab extension at LAB_DIR, read-only:
        its package and, once built (setup.sh), its front-end. Empty when it is off or missing."""
        package = self.lab_package_dir
        if not self.lab_extension or not package or not os.path.isfile(os.path.join(package, "__init__.py")):
            return []
        binds = [(package, f"{LAB_DIR}/python/{LAB_PACKAGE}")]
        frontend = os.path.join(package, "labextension")
        if os.path.isfile(os.path.join(frontend, "package.json")):
            binds.append((frontend, f"{LAB_DIR}/{LAB_FRONTEND}"))
        else:
            self.log.warning("The lab extension's front-end is not built (%s): notebooks get its server"
                             " extension only; run setup.sh", frontend)
        return binds

    def kqi_env(self) -> dict:
        o = self.kqi_options
        env = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "true",
               "DATASET_ID": str(o.dataset_id or ""), "PARENT_ID": ",".join(map(str, o.training_ids)),
               "INFERENCE_ID": ",".join(map(str, o.inference_ids)),
               "JUPYTERLAB_VERSION": o.jupyterlab_version or ""}
        if o.notebook_id:
            env["NOTEBOOK_ID"] = str(o.notebook_id)
        if self.expires_at:
            env["EXPIRES_IN"] = str(int(max(0, self.expires_at - time.time())))
        # what the lab extension shows and proposes (its context; "Train from here")
        env["KQI_EXPIRES_AT"] = str(int(self.expires_at)) if self.expires_at else ""
        env["KQI_IMAGE"] = o.image or self.default_image or ""
        if o.git:
            env["KQI_GIT_MODEL"] = json.dumps(o.git)
        plan = o.plan
        for key in ("KQI_SERVER",):
            if plan.get(key):
                env[key] = plan[key]
        tenant = plan.get("tenant") or {}
        if tenant.get("id") is not None:  # the notebook's tenant, as the kqi service planned the start
            env["KQI_TENANT_ID"] = str(tenant["id"])
            env["KQI_TENANT_NAME"] = str(tenant.get("name") or "")
            env["KQI_TENANT_DISPLAY_NAME"] = str(tenant.get("displayName") or "")
        if plan.get("git"):
            env["MODEL_REPOSITORY"] = plan["git"]["url"]
            env["COMMIT_ID"] = plan["git"]["commit"]
        return env


def _apply_kqi_user_options(spawner: KqiSpawnerMixin, user_options: dict) -> None:
    try:
        spawner.kqi_options = spawner.parse_kqi_options(user_options or {})
    except OptionsError as e:
        raise web.HTTPError(400, f"The notebook options are not valid: {e}") from None
    # only a start the kqi service planned (its checks: quota, node capacity, references) goes on
    spawner.admit_plan(user_options or {})

