"""`kqi-hub`: start the embedded KQI Hub (hub + proxy + kqi service) on one machine.

    kqi-hub [--ip 127.0.0.1] [--port 8000] [--data-dir ./kqi-data] [--profile local]

Each flag has an environment variable too (KQI_IP, KQI_PORT, KQI_DATA_DIR, KQI_PROFILE).
All state stays under the data directory. On the first start the system administrator
`admin` gets the password from KQI_ADMIN_PASSWORD, or a generated one that is printed
once. The process becomes the hub, so Ctrl-C stops the hub, which stops the proxy, the
kqi service and the servers they started.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys

from . import datadir

CONFIG_FILE = os.path.join(
    os.path.dirname(os.path.abspath(__import__("kqi_hub_config").__file__)), "jupyterhub_config.py"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="kqi-hub", description=__doc__.split("\n")[0])
    parser.add_argument("--ip", default=os.environ.get("KQI_IP", "127.0.0.1"), help="address to serve on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KQI_PORT", "8000")), help="port to serve on")
    parser.add_argument(
        "--data-dir", default=os.environ.get("KQI_DATA_DIR", "kqi-data"), help="directory for all state"
    )
    parser.add_argument(
        "--profile", default=os.environ.get("KQI_PROFILE", "local"), choices=["local", "kubernetes"]
    )
    parser.add_argument(
        "--base-url", default=os.environ.get("KQI_BASE_URL", "/"),
        help="URL path the platform is served under, e.g. /kqi/ behind a shared web server (the hub's"
             " JupyterHub.base_url; every address the platform hands out starts with it); default /",
    )
    parser.add_argument(
        "--authenticator", default=os.environ.get("KQI_AUTHENTICATOR", "kqi"), choices=["kqi", "ldap", "oidc"],
        help="who checks sign-ins: kqi (passwords kept by the hub, the default), ldap or oidc (directory groups"
             " mapped to tenants; their settings in --hub-config)",
    )
    parser.add_argument(
        "--hub-config", default=os.environ.get("KQI_HUB_CONFIG", ""),
        help="a hub configuration file loaded last (LDAP/OIDC settings, the group-to-tenant mapping)",
    )
    parser.add_argument("--debug", action="store_true", help="debug logging for the hub")
    return parser.parse_args(argv)


def normalize_base_url(value: str) -> str:
    """/kqi, kqi/ and /kqi/ are /kqi/; empty is /."""
    value = (value or "/").strip().strip("/")
    if any(c in value for c in "?#\\ ") or ".." in value.split("/"):
        raise SystemExit(f"--base-url must be a URL path such as /kqi/, not {value!r}")
    return f"/{value}/" if value else "/"


def prepare_environment(args, environ=os.environ, out=sys.stdout) -> dict:
    """Build the hub's environment; returns it. Creates the data directory layout."""
    env = dict(environ)
    data_dir = os.path.abspath(args.data_dir)
    datadir.ensure_layout(data_dir)
    env.update(
        KQI_DATA_DIR=data_dir,
        KQI_IP=args.ip,
        KQI_PORT=str(args.port),
        KQI_PROFILE=args.profile,
        KQI_BASE_URL=normalize_base_url(getattr(args, "base_url", "/")),
    )
    env["KQI_AUTHENTICATOR"] = getattr(args, "authenticator", None) or environ.get("KQI_AUTHENTICATOR") or "kqi"
    if getattr(args, "hub_config", ""):
        env["KQI_HUB_CONFIG"] = os.path.abspath(args.hub_config)
    # configurable-http-proxy and jupyterhub-singleuser sit beside this Python
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")

    marker = os.path.join(data_dir, "hub", "admin-password-set")
    password = environ.get("KQI_ADMIN_PASSWORD")
    if password:
        env["KQI_BOOTSTRAP_ADMIN_PASSWORD"] = password
    elif not os.path.exists(marker):
        password = secrets.token_urlsafe(12)
        env["KQI_BOOTSTRAP_ADMIN_PASSWORD"] = password
        print(
            f"First start: the administrator is 'admin' with the password {password}\n"
            "(shown once; set KQI_ADMIN_PASSWORD to choose it)",
            file=out,
            flush=True,
        )
    env.pop("KQI_ADMIN_PASSWORD", None)
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("the first administrator password was handed to the hub\n")
    return env


def main(argv=None):
    args = parse_args(argv)
    env = prepare_environment(args)
    if shutil.which("configurable-http-proxy", path=env["PATH"]) is None:
        raise SystemExit(
            "configurable-http-proxy is not installed: run `bash setup.sh` first (it installs it with npm)"
        )
    # where users start: the KQI UI (the hub's own pages lead there too)
    from kqi_hub_config.doors import kqi_ui_url

    print(f"KQI Hub on {kqi_ui_url(args.ip, args.port, env['KQI_BASE_URL'])} (data in {env['KQI_DATA_DIR']})",
          flush=True)
    # JupyterHub, made to stop on SIGINT/SIGTERM even with a full disk (see hubapp.py)
    cmd = [sys.executable, "-m", "kqi_services.hubapp", "-f", CONFIG_FILE]
    if args.debug:
        cmd.append("--debug")
    os.chdir(os.path.join(env["KQI_DATA_DIR"], "hub"))
    os.execve(sys.executable, cmd, env)


if __name__ == "__main__":
    main()
