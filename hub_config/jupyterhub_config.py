# JupyterHub configuration of KQI Hub.
#
# One setting chooses the profile: KQI_PROFILE=local (the embedded default: SQLite, local
# notebook spawner, local jobs, local object store) or KQI_PROFILE=kubernetes
# (KubeSpawner-based notebooks, PostgreSQL, S3). What both share is here; the profile
# files in profiles/ add the rest. The `kqi-hub` launcher sets the environment.
import os
import sys

from kqi_services.datadir import data_dir_from_env, ensure_layout, env_port, secret_file

c = get_config()  # noqa: F821

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILE = os.environ.get("KQI_PROFILE", "local")
if PROFILE not in ("local", "kubernetes"):
    raise SystemExit(f"KQI_PROFILE must be 'local' or 'kubernetes', not {PROFILE!r}")

DATA_DIR = data_dir_from_env()
ensure_layout(DATA_DIR)
HUB_DIR = os.path.join(DATA_DIR, "hub")
BIND_IP = os.environ.get("KQI_IP", "127.0.0.1")
PUBLIC_PORT = int(os.environ.get("KQI_PORT", "8000"))
SERVICE_NAME = "kqi"

# --- network ---------------------------------------------------------------------------
c.JupyterHub.ip = BIND_IP
c.JupyterHub.port = PUBLIC_PORT
# the URL path everything is served under (`kqi-hub --base-url /kqi/`); the kqi service learns it
# from the hub (JUPYTERHUB_BASE_URL, JUPYTERHUB_SERVICE_PREFIX) and builds its addresses on it.
# Unset (as on Kubernetes, where z2jh's hub.baseUrl sets it), the hub's own setting stays.
if os.environ.get("KQI_BASE_URL"):
    c.JupyterHub.base_url = os.environ["KQI_BASE_URL"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = env_port("KQI_HUB_API_PORT")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env_port('KQI_PROXY_API_PORT')}"
c.ConfigurableHTTPProxy.auth_token = secret_file(os.path.join(HUB_DIR, "proxy_auth_token"))
c.JupyterHub.cookie_secret_file = os.path.join(HUB_DIR, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(HUB_DIR, "jupyterhub.pid")
# answer a spawn request after 2 s instead of 10: the kqi service and its UI follow the
# notebook's state themselves (bad options fail at once, well within this time)
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 2}
c.JupyterHub.db_url = os.environ.get(
    "KQI_HUB_DB_URL", "sqlite:///" + os.path.join(HUB_DIR, "jupyterhub.sqlite")
)

# --- sign-in ---------------------------------------------------------------------------
# KQI_AUTHENTICATOR chooses who checks sign-ins: "kqi" (the embedded default, passwords kept by
# the hub), "ldap" (jupyterhub-ldapauthenticator) or "oidc" (oauthenticator's GenericOAuthenticator),
# both with directory groups mapped to tenants (kqi_hub_config/directory_auth.py). Their settings
# (server, client id, group mapping, ...) go in the file named by KQI_HUB_CONFIG, loaded last.
from kqi_hub_config.directory_auth import authenticator_class as _authenticator_class  # noqa: E402

AUTHENTICATOR = os.environ.get("KQI_AUTHENTICATOR", "kqi").strip().lower() or "kqi"
c.JupyterHub.authenticator_class = _authenticator_class(AUTHENTICATOR)
c.Authenticator.admin_users = {"admin"}
if AUTHENTICATOR != "kqi":
    c.Authenticator.allow_all = True  # whoever the directory signs in; tenants come from the mapping
    c.Authenticator.kqi_service_name = SERVICE_NAME
c.KqiAuthenticator.open_signup = os.environ.get("KQI_OPEN_SIGNUP", "") == "1"
c.KqiAuthenticator.kqi_service_name = SERVICE_NAME
if os.environ.get("KQI_BOOTSTRAP_ADMIN_PASSWORD"):
    c.KqiAuthenticator.bootstrap_admin_password = os.environ["KQI_BOOTSTRAP_ADMIN_PASSWORD"]

import kqi_services.hubext.authenticator as _kqi_auth  # noqa: E402

c.JupyterHub.template_paths = [os.path.join(os.path.dirname(_kqi_auth.__file__), "templates")]
c.JupyterHub.template_vars = {
    "announcement_login": 'No account yet? <a href="signup">Sign up</a>.',
} if AUTHENTICATOR == "kqi" else {}  # a directory has no sign-up page here

# --- the hub's doors ------------------------------------------------------------------------
# Users start in the KQI UI: the hub's root, the page after sign-in, its home and its spawn pages
# send them to <base_url>services/kqi/, and signing in starts no server (servers start only from
# the kqi service's plans, which the spawners check).
from jupyterhub import handlers as _hub_handlers  # noqa: E402

from kqi_hub_config import doors as _doors  # noqa: E402

c.JupyterHub.default_url = _doors.default_url
c.JupyterHub.redirect_to_server = False
c.JupyterHub.implicit_spawn_seconds = 0
_doors.install(_hub_handlers.default_handlers)

# --- tenants and permissions -------------------------------------------------------------
# A tenant is a hub group; the roles per tenant are made by the authenticator's
# /hub/api/kqi/tenants/<group> endpoint when the kqi service creates a tenant.
c.JupyterHub.custom_scopes = {
    "custom:kqi:user": {"description": "Use KQI (data, datasets, jobs, notebooks) in a tenant."},
    "custom:kqi:tenant-admin": {"description": "Administer a KQI tenant: its members and settings."},
    "custom:kqi:system-admin": {
        "description": "Administer KQI: tenants, git servers, registries, storage, nodes, quotas."
    },
}
c.JupyterHub.load_roles = [
    {
        "name": "kqi-system-admin",
        "description": "KQI system administrator",
        "users": ["admin"],
        "scopes": ["custom:kqi:system-admin", f"access:services!service={SERVICE_NAME}"],
    },
    {
        "name": "kqi-service",
        "description": "What the kqi service needs from the hub",
        "services": [SERVICE_NAME],
        "scopes": [
            "admin:users",
            "admin:groups",
            "list:users",
            "read:users",
            "list:groups",
            "read:groups",
            "read:roles",
            "tokens",
            "admin:servers",
        ],
    },
]

# --- the kqi service -------------------------------------------------------------------
SERVICE_PORT = env_port("KQI_SERVICE_PORT")
service_env = {
    "KQI_DATA_DIR": DATA_DIR,
    "KQI_PROFILE": PROFILE,
    "KQI_PUBLIC_URL": os.environ.get("KQI_PUBLIC_URL", f"http://{BIND_IP}:{PUBLIC_PORT}"),
}
for name in ("KQI_DB_URL", "KQI_SERVICE_CONFIG", "KQI_SECRET_KEY", "KQI_HUB_AUTH_CACHE_SECONDS",
             "KQI_JOB_IMAGE", "KQI_TENSORBOARD_IMAGE", "KQI_CONTAINER_CA_BUNDLE", "KQI_CHECK_RESPONSES"):
    if os.environ.get(name):
        service_env[name] = os.environ[name]
# the local store's signed upload and download URLs from a listener of the service's own, on the
# hub's address, so that their bytes skip the proxy (KqiService.direct_transfer_port); off with
# KQI_DIRECT_TRANSFER=off, the port chosen with KQI_DIRECT_TRANSFER_PORT (a free one by default)
if PROFILE == "local" and os.environ.get("KQI_DIRECT_TRANSFER", "on").lower() not in ("off", "0", "false", "no"):
    service_env["KQI_DIRECT_TRANSFER_PORT"] = str(env_port("KQI_DIRECT_TRANSFER_PORT", BIND_IP if ":" not in BIND_IP else "127.0.0.1"))
    service_env["KQI_DIRECT_TRANSFER_IP"] = BIND_IP
    if os.environ.get("KQI_DIRECT_TRANSFER_URL"):
        service_env["KQI_DIRECT_TRANSFER_URL"] = os.environ["KQI_DIRECT_TRANSFER_URL"]
c.JupyterHub.services = [
    {
        "name": SERVICE_NAME,
        "display": True,
        "info": {"description": "KQI: data, datasets, training, inference, notebooks"},
        "url": f"http://127.0.0.1:{SERVICE_PORT}",
        "command": [sys.executable, "-m", "kqi_services.app"],
        "environment": service_env,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [
            "custom:kqi:user",
            "custom:kqi:tenant-admin",
            "custom:kqi:system-admin",
            "read:users:groups!user",
            "read:users:name!user",
        ],
    }
]

load_subconfig(os.path.join(HERE, "profiles", f"{PROFILE}.py"))  # noqa: F821
if os.environ.get("KQI_HUB_CONFIG"):
    load_subconfig(os.environ["KQI_HUB_CONFIG"])  # noqa: F821
