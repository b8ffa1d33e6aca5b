"""The one data directory that holds all state of an embedded KQI Hub.

Layout:
    hub/      hub database, cookie secret, proxy token
    kqi/      kqi service database and its secret key
    store/    local object store
    jobs/     job folders (each job's /kqi)
    notebooks/ notebook folders
    git/      bare git repositories, <tenant>/<owner>/<repository>.git (gitserver.py)
"""
from __future__ import annotations

import os
import secrets
import socket

SUBDIRS = ("hub", "kqi", "store", "jobs", "notebooks", "git")


def data_dir_from_env() -> str:
    return os.path.abspath(os.environ.get("KQI_DATA_DIR") or "kqi-data")


def ensure_layout(data_dir: str) -> None:
    os.makedirs(data_dir, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for sub in SUBDIRS:
        os.makedirs(os.path.join(data_dir, sub), exist_ok=True)


def secret_file(path: str, nbytes: int = 32) -> str:
    """Read a hex secret from `path`, creating it (mode 0600) on first use."""
    if os.path.exists(path):
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def env_port(name: str, host: str = "127.0.0.1") -> int:
    value = os.environ.get(name)
    if value:
        return int(value)
    port = free_port(host)
    os.environ[name] = str(port)
    return port
