"""A real KQI Hub for the tests: `kqi-hub` (hub + configurable-http-proxy + kqi service)
started in its own data directory on free loopback ports, and helpers to drive it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import requests

from kqi_services.datadir import free_port

VENV_BIN = os.path.dirname(sys.executable)
KQI_CLI = os.path.join(VENV_BIN, "kqi")


class PlatformError(RuntimeError):
    pass


@dataclass
class Platform:
    data_dir: str
    port: int
    admin_password: str
    env: dict
    process: subprocess.Popen | None = None
    log_path: str = ""
    _admin_hub_token: str | None = field(default=None, repr=False)

    # --------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/kqi"

    @property
    def api_url(self) -> str:
        return f"{self.service_url}/api/v2"

    @property
    def hub_api_url(self) -> str:
        return f"{self.url}/hub/api"

    # -------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 60) -> None:
        self.log_path = os.path.join(self.data_dir, "platform.log")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [os.path.join(VENV_BIN, "kqi-hub"), "--port", str(self.port), "--data-dir", self.data_dir],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PlatformError(f"kqi-hub exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                r = requests.get(f"{self.api_url}/version", timeout=2)
                if r.status_code == 200 and self._first_tenant_ready():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise PlatformError(f"kqi-hub did not come up in {timeout}s:\n{self.log_tail()}")

    def _first_tenant_ready(self) -> bool:
        try:
            r = requests.post(f"{self.api_url}/account/login",
                              json={"userName": "admin", "password": self.admin_password}, timeout=5)
        except requests.RequestException:
            return False
        return r.status_code == 200 and r.json().get("tenantId") is not None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ hub side
    def admin_hub_token(self) -> str:
        """An unrestricted hub token of the administrator, for test set-up through the hub API."""
        if self._admin_hub_token is None:
            r = requests.post(
                f"{self.hub_api_url}/users/admin/tokens",
                json={"auth": {"username": "admin", "password": self.admin_password},
                      "note": "tests", "expires_in": 3600},
                timeout=10,
            )
            r.raise_for_status()
            self._admin_hub_token = r.json()["token"]
        return self._admin_hub_token

    def hub(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.admin_hub_token()}"}
        return requests.request(method, self.hub_api_url + path, headers=headers, timeout=30, **kwargs)

    def create_user(self, name: str | None = None, password: str | None = None,
                    tenants: list[str] = (), admin_of: list[str] = ()) -> tuple[str, str]:
        """A hub user with a password, member of `tenants`, administrator of `admin_of`."""
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        password = password or f"pw-{uuid.uuid4().hex}"
        r = self.hub("PUT", f"/kqi/users/{name}/password", json={"password": password})
        assert r.status_code in (200, 201), r.text
        for tenant in set(tenants) | set(admin_of):
            r = self.hub("POST", f"/groups/{tenant}/users", json={"users": [name]})
            assert r.status_code == 200, r.text
        for tenant in admin_of:
            current = self.hub("GET", f"/kqi/tenants/{tenant}").json()
            r = self.hub("PUT", f"/kqi/tenants/{tenant}", json={"admins": current["admins"] + [name]})
            assert r.status_code in (200, 201), r.text
        return name, password

    # ------------------------------------------------------------------ kqi API
    def login(self, name: str, password: str, tenant_id: int | None = None) -> str:
        body = {"userName": name, "password": password}
        if tenant_id is not None:
            body["tenantId"] = tenant_id
        r = requests.post(f"{self.api_url}/account/login", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def admin_token(self) -> str:
        return self.login("admin", self.admin_password)

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.api_url + path, headers=headers, timeout=30, **kwargs)

    def create_tenant(self, name: str | None = None, token: str | None = None, **fields) -> dict:
        name = name or f"t-{uuid.uuid4().hex[:8]}"
        body = {"tenantName": name, "displayName": name.upper(), "gitIds": [1], "registryIds": [1],
                "storageId": 1, **fields}
        r = self.api("POST", "/admin/tenants", token or self.admin_token(), json=body)
        assert r.status_code == 201, r.text
        return r.json()

    # -------------------------------------------------------------- the kqi CLI
    def cli(self, home: str, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        env = {**self.env, "HOME": home}
        result = subprocess.run([KQI_CLI, *args], env=env, capture_output=True, text=True,
                                timeout=120, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kqi {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


def new_platform(base_dir: str, env_extra: dict | None = None) -> Platform:
    data_dir = os.path.join(base_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    admin_password = "admin-" + uuid.uuid4().hex[:12]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "KQI_"))}
    env.update(
        KQI_ADMIN_PASSWORD=admin_password,
        KQI_HUB_AUTH_CACHE_SECONDS="0",
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
    )
    env.update(env_extra or {})
    return Platform(data_dir=data_dir, port=free_port(), admin_password=admin_password, env=env)


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
