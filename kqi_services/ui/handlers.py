"""The web UI of the kqi service: one server-rendered page per screen under /services/kqi/.

Each page is a tornado template (the hub's look: its stylesheet, Bootstrap 5, its nav bar)
plus a small script that talks to the JSON API with the browser's OAuth cookie. The pages
themselves hold no data: whatever they show comes from the API, so the API's permission
checks are the only ones that matter; the checks here only choose what to offer.

A browser without a session is sent through the hub's OAuth sign-in (`@web.authenticated`).
"""
from __future__ import annotations

import hashlib
import os
import re
from http.client import responses

from jupyterhub.services.auth import HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import escape, web

from ..permissions import identity_from_model, notebook_identity, notebook_servers
from .i18n import CATALOGS, choose_language, translate

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
STATIC = os.path.join(HERE, "static")
API_PREFIX = "api/v2"


class Screen:
    """A page of the UI: where it is, its title, who it is for and which API it needs."""

    def __init__(self, name, path, title, *, audience="user", needs=None, nav=None, description=None):
        self.name = name  # also the page script's entry point (data-page)
        self.path = path  # relative to the service prefix
        self.title = title  # catalog key
        self.audience = audience  # "user" | "tenant-admin" | "system-admin"
        self.needs = needs  # API feature that must exist, e.g. "GET /tenant/users"
        self.nav = nav  # catalog key of the nav entry, None: not in the nav
        self.description = description  # catalog key for the home page's list


SCREENS = [
    Screen("home", "", "home.title"),
    # the platform's own screens (templates <name>.html, scripts in static/)
    Screen("data", "data", "data.title", needs="GET /data", nav="nav.data"),
    Screen("datasets", "datasets", "datasets.title", needs="GET /datasets", nav="nav.datasets"),
    Screen("preprocessing", "preprocessing", "preprocessing.title", needs="GET /preprocessings",
           nav="nav.preprocessing"),
    Screen("training", "training", "training.title", needs="GET /training", nav="nav.training"),
    Screen("inference", "inference", "inference.title", needs="GET /inferences", nav="nav.inference"),
    Screen("notebooks", "notebooks", "notebooks.title", needs="GET /notebook", nav="nav.notebooks"),
    # the lineage graph of one object (KQI addition), opened from the pages of data, jobs, notebooks
    Screen("lineage", "lineage", "lineage.title", needs="GET /lineage/{}/{}"),
    Screen("settings", "user-settings", "settings.title", description="home.settings_desc"),
    Screen("tenants", "admin/tenants", "tenants.title", audience="system-admin",
           needs="GET /admin/tenants", nav="nav.tenants", description="home.tenants_desc"),
    Screen("gits", "admin/git", "gits.title", audience="system-admin",
           needs="GET /admin/git/endpoints", nav="nav.git", description="home.git_desc"),
    Screen("registries", "admin/registries", "registries.title", audience="system-admin",
           needs="GET /admin/registry/endpoints", nav="nav.registries", description="home.registries_desc"),
    Screen("nodes", "admin/nodes", "nodes.title", audience="system-admin",
           needs="GET /admin/nodes", nav="nav.nodes", description="home.nodes_desc"),
    Screen("users", "admin/users", "users.title", audience="system-admin",
           needs="GET /admin/users", nav="nav.users", description="home.users_desc"),
    Screen("jobenv", "admin/job-environment", "jobenv.title", audience="system-admin",
           needs="GET /admin/job-environment", nav="nav.jobenv", description="home.jobenv_desc"),
    Screen("tensorboards", "admin/tensorboards", "tensorboards.title", audience="system-admin",
           needs="GET /admin/tensorboards", nav="nav.tensorboards", description="home.tensorboards_desc"),
    Screen("resources", "admin/resources", "resources.title", audience="system-admin",
           needs="GET /admin/resource/containers", nav="nav.resources", description="home.resources_desc"),
    Screen("tenant_resources", "tenant/resources", "tenant_resources.title", audience="tenant-admin",
           needs="GET /tenant/resource/containers", nav="nav.tenant_resources",
           description="home.tenant_resources_desc"),
    Screen("members", "tenant/members", "members.title", audience="tenant-admin",
           needs="GET /tenant/users", nav="nav.members", description="home.members_desc"),
    Screen("tenant_settings", "tenant/settings", "tenant_settings.title", audience="tenant-admin",
           needs="GET /tenant/job-environment", nav="nav.tenant_settings",
           description="home.tenant_settings_desc"),
]


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def route_template(pattern: str) -> str:
    """A route pattern with its groups written `{}`: r"/admin/tenants/([^/]+)" -> "/admin/tenants/{}"."""
    return re.sub(r"\([^()]*\)", "{}", pattern)


def api_features() -> set[str]:
    """What the REST API of this service offers, as "METHOD /path/{}" (relative to /api/v2).

    The UI offers a screen or an action only when its route is there, so screens for parts
    of the API that a deployment lacks do not lead to errors.
    """
    from ..app import api_routes  # late import: app imports this module

    features = set()
    for pattern, handler, *_ in api_routes():
        path = route_template(pattern)
        for method in HTTP_METHODS:
            own = getattr(handler, method.lower(), None)
            if own is None or own is getattr(web.RequestHandler, method.lower(), None):
                continue
            access_for = getattr(handler, "access_for", None)
            if access_for is not None and access_for(method) is None:
                continue
            features.add(f"{method} {path}")
    return features


class StaticFiles:
    """URLs of the UI's own static files, with a content hash so browsers cache them safely."""

    def __init__(self, prefix: str):
        self.base = url_path_join(prefix, "static/")
        self._hashes: dict[str, str] = {}

    def url(self, path: str) -> str:
        digest = self._hashes.get(path)
        if digest is None:
            try:
                with open(os.path.join(STATIC, path), "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()[:12]
            except OSError:
                digest = "missing"
            self._hashes[path] = digest
        return f"{self.base}{path}?v={digest}"


class PageHandler(HubOAuthenticated, web.RequestHandler):
    """A screen of the UI (GET only). Subclasses need nothing but the `Screen`."""

    def initialize(self, screen: Screen, screens: list[Screen], api_features: set[str], static: StaticFiles):
        self.screen = screen
        self.screens = screens
        self.api_features = api_features
        self.static = static
        # hub_auth stays HubOAuth.instance(), as for the API and the OAuth callback handler:
        # the OAuth state (with its PKCE verifier) lives in that instance's memory
        self.language = choose_language(self.request.headers.get("Accept-Language"))
        self.identity = None

    @property
    def kqi(self):
        return self.settings["kqi"]

    def get_template_path(self):
        return TEMPLATES

    def _(self, key: str, **params) -> str:
        return translate(self.language, key, **params)

    async def prepare(self):
        # ask the hub without blocking the loop; @web.authenticated then uses current_user
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError as e:
            if e.status_code >= 500:
                raise
            model = None
        if model is not None:
            if model.get("kind", "user") != "user" or not self.hub_auth.check_scopes(
                self.hub_auth.access_scopes, model
            ):
                raise web.HTTPError(403, "This account may not use the kqi service.")
            self.identity = identity_from_model(model)
            servers = notebook_servers(model)
            if servers:  # a notebook server's own token: its notebook's tenant only, as in the API
                from ..api.base import notebook_tenants

                db = self.settings["session_factory"]()
                try:
                    self.identity = notebook_identity(self.identity, notebook_tenants(db, model["name"], servers))
                finally:
                    db.close()
            self.current_user = model
        else:
            self.current_user = None

    def get_current_user(self):
        return None  # set in prepare()

    # -------------------------------------------------------------- what to offer
    def available(self, screen: Screen) -> bool:
        return screen.needs is None or screen.needs in self.api_features

    def allowed(self, screen: Screen) -> bool:
        if self.identity is None:
            return False
        if screen.audience == "system-admin":
            return self.identity.system_admin
        if screen.audience == "tenant-admin":
            return any(self.identity.tenants.values())
        return True

    def url(self, screen_or_path) -> str:
        path = screen_or_path.path if isinstance(screen_or_path, Screen) else screen_or_path
        return url_path_join(self.kqi.service_prefix, path) if path else self.kqi.service_prefix

    def nav_screens(self, audience: str) -> list[Screen]:
        return [s for s in self.screens
                if s.nav and s.audience == audience and self.available(s) and self.allowed(s)]

    # ------------------------------------------------------------------- render
    def page_data(self) -> dict:
        return {
            "page": self.screen.name,
            "lang": self.language,
            "user": self.identity.name,
            "isSystemAdmin": self.identity.system_admin,
            "apiBase": url_path_join(self.kqi.service_prefix, API_PREFIX),
            "servicePrefix": self.kqi.service_prefix,
            "hubPrefix": self.kqi.hub_prefix,
            "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token,
            "features": sorted(self.api_features),
            "urls": {s.name: self.url(s) for s in self.screens},
            "messages": CATALOGS[self.language],
        }

    def page_tenant(self, db):
        """The tenant the page's API calls act in, chosen as the API chooses for a browser (no
        header on a page load): the tenant switcher's cookie, the user's default tenant, the first."""
        from ..api.base import TENANT_COOKIE
        from ..domain.tenants import current_tenant

        if self.identity is None:
            return None
        return current_tenant(db, self.identity.name, self.identity.tenants, self.get_cookie(TENANT_COOKIE))

    def render_page(self, template: str, **extra):
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        from ..storage.handlers import upload_origin

        # uploads PUT their parts where the current tenant's store signs them for: the local store's
        # direct listener when there is one, an S3 server's address (other origins); no other
        db = self.settings["session_factory"]()
        try:
            origin = upload_origin(self.kqi, self.request, self.page_tenant(db))
        finally:
            db.close()
        connect = " ".join(filter(None, ["'self'", origin]))
        self.set_header("Content-Security-Policy",
                        f"default-src 'self'; connect-src {connect}; img-src 'self' data:;"
                        " style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'")
        self.render(
            template,
            _=self._,
            lang=self.language,
            screen=self.screen,
            screens=self.screens,
            page=self,
            hub_prefix=self.kqi.hub_prefix,
            static_file=self.static.url,
            page_json=escape.json_encode(self.page_data()),
            **extra,
        )

    @web.authenticated
    def get(self, *args):
        screen = self.screen
        if not self.available(screen):
            raise web.HTTPError(404, self._("common.feature_missing"))
        if not self.allowed(screen):
            key = "common.need_system_admin" if screen.audience == "system-admin" else "common.need_tenant_admin"
            raise web.HTTPError(403, self._(key))
        self.render_page(f"{screen.name}.html")

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = None
        if isinstance(exc, web.HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message
        if message is None:
            message = self._("error.not_found") if status_code == 404 else (
                self._("error.server") if status_code >= 500 else responses.get(status_code, "Error"))
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.render(
            "error.html",
            _=self._,
            lang=self.language,
            status=status_code,
            message=message,
            home_url=self.kqi.service_prefix,
            hub_prefix=self.kqi.hub_prefix,
            static_file=self.static.url,
        )


class UIStaticHandler(web.StaticFileHandler):
    """The UI's scripts and stylesheet; cached for long when asked with ?v=<hash>."""

    def set_extra_headers(self, path):
        self.set_header("X-Content-Type-Options", "nosniff")


def make_handlers(prefix: str) -> list:
    """The UI routes under the service prefix (e.g. /services/kqi/)."""
    static = StaticFiles(prefix)
    features = api_features()
    routes = [(url_path_join(prefix, "static/") + "(.*)", UIStaticHandler, {"path": STATIC})]
    for screen in SCREENS:
        kwargs = {"screen": screen, "screens": SCREENS, "api_features": features, "static": static}
        if screen.path:
            pattern = re.escape(url_path_join(prefix, screen.path)) + "/?"
        else:
            pattern = re.escape(prefix.rstrip("/")) + "/?"
        routes.append((pattern, PageHandler, kwargs))
    return routes
