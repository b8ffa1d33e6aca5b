"""The kqi service: a hub-managed tornado application under /services/kqi/.

Started by the hub (see hub_config/jupyterhub_config.py) with the JUPYTERHUB_* variables
of a managed service. Configuration comes from traitlets (a config file named by
--config or KQI_SERVICE_CONFIG, then command-line flags), with defaults from the
environment the hub passes.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from sqlalchemy import select
from tornado import httpserver, ioloop, web
from traitlets import Bool, Enum, Float, Integer, Unicode, default
from traitlets.config import Application

from . import datadir, seed
from .storage import handlers as storage_handlers
from .storage.factory import StoreFactory
from .db.session import make_engine, make_session_factory, upgrade
from .hub_client import HubClient
from .secrets import SecretBox

API_PREFIX = "api/v2"
#: modules under kqi_services.api whose `default_handlers` make up the REST API
API_MODULES = ("account", "tenants", "infra", "user_settings", "users", "version", "openapi_doc",
               "storage", "data", "datasets", "training", "inference", "preprocessing", "notebooks",
               "job_environment", "shell", "lineage")
API_MODULES += ("resources",)  # the resource monitor, what can I use now, the usage ledger
API_MODULES += ("directory", "personal_tokens")  # LDAP directory sync, personal access tokens (issue 16)


class KqiHubOAuth(HubOAuth):
    """HubOAuth whose cache_max_age of 0 means "ask the hub every time".

    (jupyterhub's cache treats 0 as "keep forever", which would let a revoked or expired
    token keep working until the service restarts.)
    """

    def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
        return super().user_for_token(token, use_cache=use_cache and self.cache_max_age > 0,
                                      session_id=session_id, sync=sync)


def api_routes() -> list[tuple]:
    """(pattern, handler class) of every REST route, relative to /api/v2 (pure: tests use it)."""
    routes = []
    for module_name in API_MODULES:
        module = importlib.import_module(f"kqi_services.api.{module_name}")
        routes.extend(module.default_handlers)
    return routes


class KqiService(Application):
    name = "kqi-service"
    description = "KQI service: the KAMONOHASHI-style API and web UI of KQI Hub"

    aliases = {
        "config": "KqiService.config_file",
        "port": "KqiService.port",
        "db-url": "KqiService.db_url",
        "data-dir": "KqiService.data_dir",
        "log-level": "Application.log_level",
    }

    config_file = Unicode(
        os.environ.get("KQI_SERVICE_CONFIG", ""),
        help="Python config file (traitlets) to load, e.g. kqi_service_config.py.",
    ).tag(config=True)

    data_dir = Unicode(help="Directory for all state of an embedded install (KQI_DATA_DIR).").tag(config=True)

    @default("data_dir")
    def _data_dir_default(self):
        return datadir.data_dir_from_env()

    db_url = Unicode(
        help="SQLAlchemy URL of the kqi database. SQLite in the data directory by default;"
        " postgresql+psycopg://... in production (KQI_DB_URL).",
    ).tag(config=True)

    @default("db_url")
    def _db_url_default(self):
        return os.environ.get("KQI_DB_URL") or "sqlite:///" + os.path.join(self.data_dir, "kqi", "kqi.sqlite")

    secret_key = Unicode(
        help="Key that encrypts per-user secrets at rest (KQI_SECRET_KEY). Generated and kept in"
        " <data dir>/kqi/secret_key when unset. Changing it makes stored secrets unreadable.",
    ).tag(config=True)

    @default("secret_key")
    def _secret_key_default(self):
        return os.environ.get("KQI_SECRET_KEY") or datadir.secret_file(
            os.path.join(self.data_dir, "kqi", "secret_key")
        )

    profile = Unicode(
        os.environ.get("KQI_PROFILE", "local"),
        help="Deployment profile: 'local' (embedded default) or 'kubernetes'.",
    ).tag(config=True)

    service_name = Unicode(
        os.environ.get("JUPYTERHUB_SERVICE_NAME", "kqi"), help="Name of this service in the hub."
    ).tag(config=True)

    service_prefix = Unicode(
        os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/kqi/"),
        help="URL prefix the proxy routes to this service.",
    ).tag(config=True)

    ip = Unicode(help="Address to listen on (from JUPYTERHUB_SERVICE_URL).").tag(config=True)
    port = Integer(help="Port to listen on (from JUPYTERHUB_SERVICE_URL).").tag(config=True)

    @default("ip")
    def _ip_default(self):
        from urllib.parse import urlparse

        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")).hostname

    @default("port")
    def _port_default(self):
        from urllib.parse import urlparse

        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")).port or 80

    hub_api_url = Unicode(
        os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
        help="The hub's REST API URL.",
    ).tag(config=True)

    hub_prefix = Unicode(
        os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/", help="URL prefix of the hub's pages."
    ).tag(config=True)

    public_url = Unicode(
        os.environ.get("KQI_PUBLIC_URL", "http://127.0.0.1:8000"),
        help="The address users reach the platform at (used in notifications and job settings).",
    ).tag(config=True)

    hub_auth_cache_seconds = Float(
        float(os.environ.get("KQI_HUB_AUTH_CACHE_SECONDS", "5")),
        help="How long a token's identity is cached before the hub is asked again (0: no cache)."
        " A revoked token keeps working for at most this long.",
    ).tag(config=True)

    check_responses = Bool(
        os.environ.get("KQI_CHECK_RESPONSES", "").lower() in ("1", "true", "yes"),
        help="Check every JSON answer against the response model its route declares (api/schemas) and"
        " log an error naming the route and the misfit fields when it does not fit; the answer is sent"
        " as it is. For tests and development (it costs a validation per answer); KQI_CHECK_RESPONSES=1.",
    ).tag(config=True)

    upload_url_expiry_seconds = Integer(
        3600, help="How long the part URLs of an upload stay valid."
    ).tag(config=True)

    download_url_expiry_seconds = Integer(
        3600, help="How long a download URL stays valid."
    ).tag(config=True)

    upload_expiry_seconds = Float(
        3600.0,
        help="An upload that is not completed, or completed but not registered on a data, training"
        " or other entry, within this many seconds is removed with its parts (abandoned uploads"
        " must not keep a disk full for long).",
    ).tag(config=True)

    upload_cleanup_interval_seconds = Float(
        300.0, help="How often abandoned uploads (see upload_expiry_seconds) are looked for."
    ).tag(config=True)

    local_store_reserve_bytes = Integer(
        1024**3,
        help="Free space (bytes) a local object store keeps on its disk for everything else there (the"
        " databases, logs, jobs): uploads are refused (507) while the free space is under the reserve, and"
        " so is an upload whose announced size would cut into it. The reserve is the larger of this and"
        " local_store_reserve_percent of the disk's size.",
    ).tag(config=True)

    local_store_reserve_percent = Float(
        5.0,
        help="Free space a local object store keeps, as a percentage of its disk's size (see"
        " local_store_reserve_bytes; the larger of the two applies).",
    ).tag(config=True)

    watch_parent = Bool(
        True,
        help="End the service when the process that started it ends: the hub, for a hub-managed service,"
        " so that a hub killed with SIGKILL leaves no service behind. Not done when the parent is PID 1"
        " (a container's init, or a service that was orphaned already).",
    ).tag(config=True)

    max_part_bytes = Integer(
        1024**3, help="The largest part a client may PUT to a local-store part URL (the SDK sends 16 MiB)."
    ).tag(config=True)

    direct_transfer_port = Integer(
        int(os.environ.get("KQI_DIRECT_TRANSFER_PORT") or 0),
        help="Port of a second listener of this service that serves only the local object store's signed"
        " URLs (upload parts and downloads; they carry their own signature, no hub cookie or token), so"
        " that their bytes do not pass through the hub's proxy: the URLs handed out then point at it"
        " (see direct_transfer_url). Nothing else of the service is served there. 0: no such listener,"
        " the URLs go through the hub's proxy. `kqi-hub` sets a free port on the hub's address by default"
        " (KQI_DIRECT_TRANSFER=off to turn it off; KQI_DIRECT_TRANSFER_PORT to choose it).",
    ).tag(config=True)

    direct_transfer_ip = Unicode(
        os.environ.get("KQI_DIRECT_TRANSFER_IP", "127.0.0.1"),
        help="Address the listener of direct_transfer_port binds to (0.0.0.0: every interface, e.g. in a"
        " pod behind a Service).",
    ).tag(config=True)

    direct_transfer_url = Unicode(
        os.environ.get("KQI_DIRECT_TRANSFER_URL", ""),
        help="The address (scheme://host[:port], no path) clients reach the listener of direct_transfer_port"
        " at, e.g. a Kubernetes Service or an Ingress that routes <base url>services/kqi/storage/ to it;"
        " the signed URLs keep their path (<base url>services/kqi/storage/...). Empty: http://<the host name"
        " the caller used>:<direct_transfer_port>. Used only when direct_transfer_port is set.",
    ).tag(config=True)

    git_max_push_bytes = Integer(
        4 * 1024**3, help="The largest request body (a push) the embedded git server takes at"
        " <service prefix>git/<tenant>/<owner>/<repository>.git, in bytes."
    ).tag(config=True)

    io_threads = Integer(
        8, help="Threads for blocking object-store and file work."
    ).tag(config=True)

    job_backend = Unicode(
        "",
        help="Where jobs run: 'local' (podman containers of the requested image on this machine; see"
        " c.PodmanBackend) or 'kubernetes'."
        " Empty: 'local' in the local profile, 'kubernetes' in the kubernetes profile.",
    ).tag(config=True)

    job_tick_seconds = Float(
        1.0, help="How often the job engine looks at running and queued jobs (it also wakes on every change)."
    ).tag(config=True)

    job_capacity_cpu = Float(
        0.0, help="CPU cores the local backend may hand out in all (0: the machine's cores)."
    ).tag(config=True)

    job_capacity_memory_gib = Float(
        0.0, help="Memory (GiB) the local backend may hand out in all (0: the machine's memory)."
    ).tag(config=True)

    job_capacity_gpu = Integer(0, help="GPUs the local backend may hand out in all.").tag(config=True)

    stop_jobs_on_exit = Bool(
        True,
        help="End running local jobs when the service stops cleanly (Kubernetes jobs are never ended by this) (the embedded default: Ctrl-C stops"
        " everything). When False, jobs keep running and the next start reconciles them.",
    ).tag(config=True)

    xterm_dir = Unicode(
        help="The node_modules folder that holds the npm packages @xterm/xterm and @xterm/addon-fit, the web"
        " shell's terminal; served at <service prefix>/static/xterm/. Default: <the Python environment>/node/"
        "node_modules, where setup.sh installs them.",
    ).tag(config=True)

    @default("xterm_dir")
    def _xterm_dir_default(self):
        return os.path.join(sys.prefix, "node", "node_modules")

    cytoscape_dir = Unicode(
        help="The node_modules folder that holds the npm packages cytoscape and cytoscape-dagre, which draw"
        " the lineage graph in the web UI; served at <service prefix>/static/cytoscape/ and"
        " static/cytoscape-dagre/. Default: <the Python environment>/node/node_modules, where setup.sh"
        " installs them.",
    ).tag(config=True)

    @default("cytoscape_dir")
    def _cytoscape_dir_default(self):
        return os.path.join(sys.prefix, "node", "node_modules")

    lineage_max_nodes = Integer(
        500,
        help="The most nodes a lineage graph (GET /lineage/{kind}/{id}) holds; a larger graph is cut and"
        " says so (truncated: true).",
    ).tag(config=True)

    chart_dir = Unicode(
        help="The node_modules folder that holds the npm package chart.js, which draws the usage report's chart"
        " in the web UI; served at <service prefix>/static/chart.js/. Default: <the Python environment>/node/"
        "node_modules, where setup.sh installs it.",
    ).tag(config=True)

    @default("chart_dir")
    def _chart_dir_default(self):
        return os.path.join(sys.prefix, "node", "node_modules")

    resource_sample_seconds = Float(
        3600.0,
        help="How often the resource history (KAMONOHASHI's hourly samples: what each node holds, per"
        " container; GET /admin/resource/histories/containers/data) takes a sample. 0: never.",
    ).tag(config=True)

    usage_refresh_seconds = Float(
        30.0,
        help="How often the usage ledger looks at the notebook servers recorded as running (their starts and"
        " ends are seen in the hub; jobs and TensorBoards record theirs as they happen).",
    ).tag(config=True)

    job_ports_for = Enum(
        ["tenant", "owner", "off"], "tenant",
        help="Who may open a running job's ports through the proxy (/services/kqi/proxy/<kind>/<id>/<port>/):"
        " 'tenant' (the members of the job's tenant, as KAMONOHASHI), 'owner' (only the user who started"
        " the job) or 'off'. The pages a job serves come from this site's own origin, so their scripts act"
        " with the signed-in viewer's rights: 'owner' keeps a member's job from acting for other members.",
    ).tag(config=True)

    first_tenant_name = Unicode("sandbox", help="Name of the tenant made on the first start.").tag(config=True)
    first_tenant_display_name = Unicode("Sandbox", help="Display name of the first tenant.").tag(config=True)
    admin_user = Unicode("admin", help="The system administrator put into the first tenant.").tag(config=True)

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        datadir.ensure_layout(self.data_dir)
        upgrade(self.db_url)
        self.engine = make_engine(self.db_url)
        self.session_factory = make_session_factory(self.engine)
        self.secret_box = SecretBox(self.secret_key)
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        self.hub = HubClient(self.hub_api_url, token)
        # the one HubOAuth of the process: handlers (API, pages, OAuth callback) all use
        # HubOAuth.instance(), which is this object
        self.hub_auth = KqiHubOAuth.instance(
            api_url=self.hub_api_url,
            api_token=token,
            cache_max_age=max(0, int(self.hub_auth_cache_seconds)),
        )
        self.io_executor = ThreadPoolExecutor(self.io_threads, thread_name_prefix="kqi-io")
        self.hash_executor = ThreadPoolExecutor(1, thread_name_prefix="kqi-hash")
        self.stores = StoreFactory(self.secret_box, self.secret_key, url_path_join(self.service_prefix, "storage"),
                                   direct=self.direct_address())
        self.version = _version()
        self.jobs = self.make_job_engine()
        from .tensorboard import TensorBoards

        self.tensorboards = TensorBoards(self)
        self.tornado_app = self.make_app()

    def handlers(self) -> list:
        api_base = url_path_join(self.service_prefix, API_PREFIX)
        routes = [(api_base + pattern + "/?", handler, *rest) for pattern, handler, *rest in api_routes()]
        routes.append((url_path_join(self.service_prefix, "oauth_callback"), HubOAuthCallbackHandler))
        routes.extend(storage_handlers.make_handlers(self.service_prefix))
        from . import gitserver

        routes.extend(gitserver.make_handlers(self.service_prefix))  # git smart HTTP, per tenant
        from . import proxy

        routes.extend(proxy.make_handlers(self.service_prefix))
        from . import docs

        routes.extend(docs.make_handlers(self.service_prefix, docs.GuideSite(parent=self)))  # the user guide
        ui = importlib.import_module("kqi_services.ui.handlers")
        # the web shell's terminal: the npm packages @xterm/xterm and @xterm/addon-fit, as installed
        routes.append((url_path_join(self.service_prefix, "static/xterm/") + "(.*)", ui.UIStaticHandler,
                       {"path": os.path.join(self.xterm_dir, "@xterm")}))
        # the lineage graph: cytoscape and its dagre layout (npm), as installed (their dist folders only)
        for package in ("cytoscape", "cytoscape-dagre"):
            routes.append((url_path_join(self.service_prefix, f"static/{package}/") + "(.*)", ui.UIStaticHandler,
                           {"path": os.path.join(self.cytoscape_dir, package, "dist")}))
        # the usage report's chart: the npm package chart.js (its dist folder), as installed
        routes.append((url_path_join(self.service_prefix, "static/chart.js/") + "(.*)", ui.UIStaticHandler,
                       {"path": os.path.join(self.chart_dir, "chart.js", "dist")}))
        routes.extend(ui.make_handlers(self.service_prefix))
        return routes

    def direct_address(self):
        """Where the local store's signed URLs point when they bypass the proxy (None: they do not)."""
        from .storage.local import DirectAddress

        if not self.direct_transfer_port:
            return None
        return DirectAddress(self.direct_transfer_url, self.direct_transfer_port)

    def make_app(self) -> web.Application:
        from .api.base import NotFoundHandler

        return web.Application(
            self.handlers(),
            kqi=self,
            session_factory=self.session_factory,
            hub_auth=self.hub_auth,
            cookie_secret=datadir.secret_file(os.path.join(self.data_dir, "kqi", "cookie_secret")),
            default_handler_class=NotFoundHandler,
            xsrf_cookies=False,
            log_function=self._log_request,
        )

    def _log_request(self, handler):
        # never log query strings: they may carry tokens
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        self.log.log(level, "%d %s %s %.1fms", status, handler.request.method, handler.request.path,
                     1000 * handler.request.request_time())

    # ------------------------------------------------------------- jobs
    def make_job_engine(self):
        from .jobs.engine import JobEngine

        kind = self.job_backend or ("kubernetes" if self.profile == "kubernetes" else "local")
        if kind != "local":
            from .jobs.kubernetes import KubernetesBackend

            backend = KubernetesBackend.from_app(self)
        else:
            from .jobs.podman import PodmanBackend, platform_tag

            jobs_dir = os.path.join(self.data_dir, "jobs")
            backend = PodmanBackend(
                jobs_dir, platform_tag(self.data_dir), parent=self, log=self.log,
                capacity_cpu_cores=self.job_capacity_cpu, capacity_memory=self.job_capacity_memory_gib,
                capacity_gpus=self.job_capacity_gpu,
            )
        from .domain.preprocessing import collect_outputs

        engine = JobEngine(self, backend)
        engine.finish_hooks.append(lambda db, job: collect_outputs(db, self, job))
        from .api.inference import record_output_value

        engine.finish_hooks.append(lambda db, job: record_output_value(db, self, job))
        return engine

    def notify_job_end(self, job, tenant) -> None:
        """Tell the job's owner on Slack that it ended, when they set a webhook (in the background)."""
        from .db.models import UserSetting
        from .notify import slack
        from .notify.policy import policy_for

        with self.session_factory() as db:
            setting = db.scalar(select(UserSetting).where(UserSetting.name == job.created_by))
            if setting is None or not setting.slack_url_encrypted:
                return
            url = self.secret_box.decrypt(setting.slack_url_encrypted)
            mention = setting.slack_mention
        # (by the id the tenant sees: a tenant's trainings, inferences ... count 1, 2, 3 each)
        page = f"{self.public_url.rstrip('/')}{self.service_prefix}{job.kind}/{job.display_id}"
        fields = dict(kind=job.kind, job_id=job.display_id, name=job.name, tenant=tenant.display_name,
                      user_name=job.created_by, status=job.status, url=page, mention=mention,
                      message=job.status_reason)
        # jobs end in worker threads: hand the delivery to the event loop
        policy = policy_for(self)  # the address allow-list of notifications
        self._loop.call_soon_threadsafe(
            lambda: asyncio.ensure_future(slack.notify_job_end(url, policy=policy, **fields)))

    _loop = None  # the service's event loop, set when it starts

    # ------------------------------------------------------------- object stores
    def space_reserve(self):
        """The free space local object stores keep (local_store_reserve_*)."""
        from .storage.base import SpaceReserve

        return SpaceReserve(self.local_store_reserve_bytes, self.local_store_reserve_percent)

    def local_store(self, store_id: str):
        """The local object store of the storage endpoint `store_id` (for its signed URLs)."""
        from .db.models import Storage
        from .storage.base import StoreError
        from .storage.local import LocalObjectStore

        try:
            number = int(store_id)
        except ValueError:
            raise StoreError("The link is malformed.", client_error=True)
        with self.session_factory() as db:
            storage = db.get(Storage, number)
            store = self.stores.for_storage(storage) if storage is not None else None
        if not isinstance(store, LocalObjectStore):
            raise StoreError("The link is malformed.", client_error=True)
        return store

    def schedule_hash(self, tenant, stored_path: str) -> None:
        """Compute the sha256 of a stored file in the background and record it on its rows."""
        from .db.models import Tenant
        from .db.models_data import DataFile
        from .storage.factory import tenant_key

        tenant_id = tenant.id

        def work():
            with self.session_factory() as db:
                tenant_row = db.get(Tenant, tenant_id)
                digest = self.stores.for_tenant(tenant_row).sha256(tenant_key(tenant_row, stored_path))
                for row in db.scalars(select(DataFile).where(DataFile.stored_path == stored_path)).all():
                    row.sha256 = digest
                db.commit()

        future = self.hash_executor.submit(work)
        future.add_done_callback(lambda f: f.exception() and self.log.error(
            "Hashing %s failed: %s", stored_path, f.exception()))

    def clean_uploads(self) -> None:
        from .db.models import Storage
        from .domain.uploads import clean_expired_uploads, clean_orphan_upload_folders
        from .storage.base import StoreError

        with self.session_factory() as db:
            removed = clean_expired_uploads(db, self.stores.for_tenant, self.upload_expiry_seconds, self.log)
            local = []
            for storage in db.scalars(select(Storage).where(Storage.kind == "local")).all():
                try:
                    local.append(self.stores.for_storage(storage))
                except StoreError as e:
                    self.log.warning("Storage %s: %s", storage.name, e)
            removed += clean_orphan_upload_folders(db, local, self.upload_expiry_seconds)
        if removed:
            self.log.info("Removed %d stale uploads", removed)

    async def _clean_uploads_forever(self):
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(self.io_executor, self.clean_uploads)
            except Exception:
                self.log.exception("Cleaning stale uploads failed")
            await asyncio.sleep(self.upload_cleanup_interval_seconds)

    async def seed(self):
        """First start: the first tenant with the administrator, and the local defaults."""
        for attempt in range(60):
            try:
                await seed.seed(self)
                return
            except Exception as e:  # the hub may not answer yet while it starts
                if attempt == 59:
                    self.log.error("Could not seed the first tenant: %s", e)
                    return
                await asyncio.sleep(0.5)

    def start(self):
        server = httpserver.HTTPServer(self.tornado_app, xheaders=True)
        server.listen(self.port, self.ip)
        if self.direct_transfer_port:
            # only the signed object routes, not through the hub's proxy (storage/handlers.py)
            direct = httpserver.HTTPServer(storage_handlers.make_direct_app(self), xheaders=False)
            direct.listen(self.direct_transfer_port, self.direct_transfer_ip)
            self.log.info("signed object URLs also on http://%s:%d%sstorage/ (handed out as %s)",
                          self.direct_transfer_ip, self.direct_transfer_port, self.service_prefix,
                          self.direct_transfer_url or "the caller's host name with that port")
        self.log.info("kqi service on http://%s:%d%s (db %s)", self.ip, self.port, self.service_prefix,
                      self.engine.url.render_as_string(hide_password=True))
        loop = ioloop.IOLoop.current()
        loop.add_callback(self.seed)
        loop.add_callback(self._clean_uploads_forever)
        loop.add_callback(self._start_jobs)
        loop.add_callback(self._reconcile_tensorboards_forever)
        loop.add_callback(self._usage_forever)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: loop.add_callback_from_signal(loop.stop))
        if self.watch_parent:
            watch_parent(loop, os.getppid(), self.log)
        loop.start()
        if self.stop_jobs_on_exit:
            # local jobs are children of this machine; cluster jobs outlive a service restart
            self.jobs.stop_all()

    async def _reconcile_tensorboards_forever(self):
        """TensorBoards whose time ran out or that ended (also while the service was down)."""
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(self.io_executor, self.tensorboards.reconcile)
            except Exception:
                self.log.exception("Reconciling TensorBoards failed")
            await asyncio.sleep(self.tensorboards.reconcile_seconds)

    async def _usage_forever(self):
        """The usage ledger's notebook runs (every usage_refresh_seconds) and the resource history's
        samples (every resource_sample_seconds)."""
        from .domain import resources

        loop = asyncio.get_running_loop()
        next_sample = loop.time() + min(self.resource_sample_seconds, 60.0)
        while True:
            try:
                await resources.refresh_notebooks(self)
            except Exception:
                self.log.exception("Refreshing the notebooks' usage failed")
            if self.resource_sample_seconds > 0 and loop.time() >= next_sample:
                next_sample = loop.time() + self.resource_sample_seconds
                try:
                    await loop.run_in_executor(self.io_executor, resources.sample, self)
                except Exception:
                    self.log.exception("Taking a resource sample failed")
            wait = self.usage_refresh_seconds
            if self.resource_sample_seconds > 0:
                wait = min(wait, max(0.5, next_sample - loop.time()))
            await asyncio.sleep(max(0.5, wait))

    async def _start_jobs(self):
        self._loop = asyncio.get_running_loop()
        self.jobs.start()


def watch_parent(loop, parent: int, log) -> bool:
    """Stop `loop` when process `parent` ends (a pidfd, polled by the loop); False when there is
    nothing to watch (PID 0 or 1) or the platform has no pidfds, where getppid() is polled instead."""
    if parent <= 1:
        return False

    def gone(*_):
        log.warning("The process that started this service (pid %d, the hub) is gone: stopping", parent)
        loop.stop()

    try:
        fd = os.pidfd_open(parent)
    except ProcessLookupError:
        loop.add_callback(gone)
        return True
    except (AttributeError, OSError):
        def poll():
            if os.getppid() != parent:
                gone()
        ioloop.PeriodicCallback(poll, 1000).start()
        return False
    loop.add_handler(fd, lambda *_: (loop.remove_handler(fd), gone()), ioloop.IOLoop.READ)
    return True


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kqi-hub")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv=None):
    app = KqiService.instance()
    app.initialize(argv if argv is not None else sys.argv[1:])
    app.start()


if __name__ == "__main__":
    main()
