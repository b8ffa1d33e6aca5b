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
    def kqi_db_url(self) -> str:
        """The kqi service's database (for tests that seed or read rows directly)."""
        return self.env.get("KQI_DB_URL") or "sqlite:///" + f"{self.data_dir}/kqi/kqi.sqlite"

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
                    self._set_job_environment()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise PlatformError(f"kqi-hub did not come up in {timeout}s:\n{self.log_tail()}")

    def _set_job_environment(self) -> None:
        """Jobs and notebooks get the host's package index settings (the job environment setting),
        so that `pip install` works in them as it does on this machine."""
        from . import images

        r = self.api("PUT", "/admin/job-environment", self.admin_token(),
                     json={"env": images.job_environment(), "networkMode": "host"})
        assert r.status_code == 200, r.text

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
        self.keep_contract_misfits()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def contract_misfits(self) -> list[str]:
        """The log's lines about answers that did not fit their routes' contracts (KQI_CHECK_RESPONSES)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return [line for line in f if "does not fit its contract" in line]
        except OSError:
            return []

    def keep_contract_misfits(self) -> None:
        """Copy the misfit lines to tests/artifacts/contract-misfits.log (the data dir goes at teardown)."""
        misfits = self.contract_misfits()
        if misfits:
            folder = os.path.join(os.path.dirname(__file__), "artifacts")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "contract-misfits.log"), "a") as f:
                f.writelines(misfits)

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
    from . import images

    built = images.ensure_images()  # jobs and notebooks run in these (built once per machine)
    data_dir = os.path.join(base_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    admin_password = "admin-" + uuid.uuid4().hex[:12]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "KQI_"))}
    env.update(
        KQI_ADMIN_PASSWORD=admin_password,
        KQI_HUB_AUTH_CACHE_SECONDS="0",
        KQI_CHECK_RESPONSES="1",  # a misfit answer is logged (api/schemas contracts): see test logs
        KQI_NOTEBOOK_IMAGE=built["notebook"],
        KQI_TENSORBOARD_IMAGE=built["tensorboard"],
        KQI_CONTAINER_CA_BUNDLE=images.host_ca_bundle() or "",
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
    )
    env.update(env_extra or {})
    return Platform(data_dir=data_dir, port=free_port(), admin_password=admin_password, env=env)


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Data management helpers: a tenant on a given storage endpoint with a user in it, the
# SDK's upload protocol driven with plain requests, and where a platform keeps its files.
@dataclass
class TenantUser:
    """A user who belongs to one tenant, with a token for it (and a logged-in CLI home)."""

    platform: Platform
    tenant: dict
    name: str
    password: str
    token: str
    home: str | None = None

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.platform.api(method, path, self.token, **kwargs)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        assert self.home, "log the CLI in first (tenant_user(..., home=...))"
        return self.platform.cli(self.home, *args, check=check)


def create_s3_storage(platform: Platform, endpoint: str, access_key: str, secret_key: str, bucket: str,
                      region: str = "us-east-1", name: str | None = None) -> dict:
    """An S3 storage endpoint through the admin API."""
    body = {"name": name or f"s3-{uuid.uuid4().hex[:8]}", "kind": "s3", "serverUrl": endpoint, "bucket": bucket,
            "region": region, "pathStyle": True, "accessKey": access_key, "secretKey": secret_key}
    r = platform.api("POST", "/admin/storage/endpoints", platform.admin_token(), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def tenant_user(platform: Platform, storage_id: int = 1, home: str | None = None,
                tenant: dict | None = None) -> TenantUser:
    """A new user in `tenant` (or in a new tenant on `storage_id`); logs the CLI in when `home` is given."""
    tenant = tenant or platform.create_tenant(storageId=storage_id)
    name, password = platform.create_user(tenants=[tenant["name"]])
    token = platform.login(name, password, tenant["id"])
    if home is not None:
        os.makedirs(home, exist_ok=True)
        platform.cli(home, "account", "login", "-s", platform.service_url, "-u", name, "-p", password,
                     "-t", str(tenant["id"]))
    return TenantUser(platform, tenant, name, password, token, home)


def upload_parts(user: TenantUser, file_name: str, parts: list[bytes], resource_type: str = "Data",
                 complete: bool = True) -> dict:
    """The SDK's upload protocol with requests: parameter, PUT each part, complete.
    Returns the upload parameter with "etags" added (and "completed" when it was completed)."""
    r = user.api("GET", "/upload/parameter", params={"fileName": file_name, "partSum": len(parts),
                                                      "type": resource_type})
    assert r.status_code == 200, r.text
    upload = r.json()
    etags = []
    for number, (url, body) in enumerate(zip(upload["uris"], parts), start=1):
        put = requests.put(url, data=body, timeout=60)
        assert put.status_code == 200 and put.headers.get("ETag"), (put.status_code, put.text)
        etags.append(f"{number}+{put.headers['ETag']}")
    upload["etags"] = etags
    if complete:
        r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                       "partETags": etags})
        assert r.status_code == 200, r.text
        upload["completed"] = True
    return upload


def add_file(user: TenantUser, data_id: int, file_name: str, content: bytes) -> dict:
    """Upload `content` in one part and register it on the data; returns the file entry."""
    upload = upload_parts(user, file_name, [content])
    r = user.api("POST", f"/data/{data_id}/files",
                 json={"files": [{"fileName": file_name, "storedPath": upload["storedPath"]}]})
    assert r.status_code == 201, r.text
    return r.json()["files"][0]


def create_data(user: TenantUser, name: str, files: dict[str, bytes] | None = None, **fields) -> dict:
    """A data entry through the API, with `files` ({name: bytes}) uploaded and registered."""
    r = user.api("POST", "/data", json={"name": name, **fields})
    assert r.status_code == 201, r.text
    data = r.json()
    for file_name, content in (files or {}).items():
        add_file(user, data["id"], file_name, content)
    return data


def local_store_dir(platform: Platform) -> str:
    """The folder of the platform's seeded local object store."""
    return os.path.join(platform.data_dir, "store")


class StoreView:
    """A tenant's files as the object store holds them, seen from outside the service:
    the folder of a local store, or the bucket of an S3 store (through boto3)."""

    def __init__(self, kind: str, prefix: str, root: str | None = None, s3_client=None, bucket: str | None = None):
        self.kind = kind
        self.prefix = prefix.rstrip("/") + "/"
        self.root = root
        self.s3 = s3_client
        self.bucket = bucket

    def keys(self) -> dict[str, int]:
        """key → size of every stored object below the tenant's prefix."""
        if self.kind == "local":
            found = {}
            base = os.path.join(self.root, *self.prefix.strip("/").split("/"))
            for dirpath, _, names in os.walk(base):
                for name in names:
                    full = os.path.join(dirpath, name)
                    found[os.path.relpath(full, self.root).replace(os.sep, "/")] = os.path.getsize(full)
            return found
        found = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["Size"]
        return found

    def read(self, key: str) -> bytes:
        if self.kind == "local":
            with open(os.path.join(self.root, *key.split("/")), "rb") as f:
                return f.read()
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def pending_uploads(self) -> dict[str, str]:
        """upload id → key of every unfinished multipart upload below the tenant's prefix
        (local store: the folders under .uploads with their part files)."""
        if self.kind == "local":
            found = {}
            base = os.path.join(self.root, ".uploads")
            for upload_id in os.listdir(base) if os.path.isdir(base) else []:
                try:
                    with open(os.path.join(base, upload_id, "meta")) as f:
                        key = f.read()
                except OSError:
                    key = ""
                if key.startswith(self.prefix) or not key:
                    found[upload_id] = key
            return found
        found = {}
        for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                found[upload["UploadId"]] = upload["Key"]
        return found

    def upload_files(self, upload_id: str) -> list[str]:
        """The part files a local upload has on disk (empty when it is gone)."""
        folder = os.path.join(self.root, ".uploads", upload_id)
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def store_user(platform: Platform, kind: str, s3=None, home: str | None = None) -> tuple[TenantUser, StoreView]:
    """A user in a new tenant on the local store (kind "local", the seeded endpoint 1) or on a
    new S3 endpoint with its own bucket on `s3` (a tests.s3server.SeaweedS3); and a view of
    that tenant's files in the store."""
    if kind == "local":
        user = tenant_user(platform, storage_id=1, home=home)
        return user, StoreView("local", user.tenant["storagePath"], root=local_store_dir(platform))
    bucket = s3.new_bucket()
    storage = create_s3_storage(platform, s3.endpoint, s3.access_key, s3.secret_key, bucket, s3.region)
    user = tenant_user(platform, storage_id=storage["id"], home=home)
    return user, StoreView("s3", user.tenant["storagePath"], s3_client=s3.client(), bucket=bucket)


# ------------------------------------------------------------------------------------------
# Job helpers: model repositories the tests make (bare repositories of the seeded "local"
# git server, <data dir>/git/<tenant>/<owner>/<repo>.git), waiting for job states, the service's pid.
GIT_IDENTITY = ["-c", "user.name=KQI Tests", "-c", "user.email=tests@kqi.invalid", "-c", "init.defaultBranch=master",
                "-c", "commit.gpgsign=false"]


def git(cwd: str, *args: str) -> str:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


class ModelRepo:
    """A work tree whose commits are pushed to <data dir>/git/<tenant>/<owner>/<repo>.git of a
    platform (the embedded git server keeps each tenant's repositories in the tenant's folder;
    written on disk as an administrator of the machine would). `tenant` is a tenant (its API
    JSON) or its name; `add_tenant` gives another tenant a copy, which later commits reach too."""

    def __init__(self, platform: Platform, work_dir: str, owner: str, name: str, *, tenant):
        self.platform, self.owner, self.name = platform, owner, name
        self.work = work_dir
        os.makedirs(work_dir, exist_ok=True)
        git(work_dir, "init", "--quiet")
        self.remotes: list[str] = []
        self.bare = self.add_tenant(tenant)

    def add_tenant(self, tenant) -> str:
        """A bare copy in `tenant`'s folder (a remote of the work tree); its path."""
        name = tenant["name"] if isinstance(tenant, dict) else tenant
        bare = os.path.join(self.platform.data_dir, "git", name, self.owner, self.name + ".git")
        os.makedirs(os.path.dirname(bare), exist_ok=True)
        git(os.path.dirname(bare), "init", "--quiet", "--bare", bare)
        remote = "origin" if not self.remotes else f"tenant-{name}"
        git(self.work, "remote", "add", remote, bare)
        self.remotes.append(remote)
        if git(self.work, "branch", "--list"):
            git(self.work, "push", "--quiet", remote, "--all")
        return bare

    def commit(self, files: dict[str, str], message: str, branch: str = "master") -> str:
        """Write `files` on `branch` (made from the current HEAD when new), commit, push; the commit id."""
        current = subprocess.run(["git", "symbolic-ref", "--short", "HEAD"], cwd=self.work,
                                 capture_output=True, text=True).stdout.strip()
        if current != branch:
            exists = subprocess.run(["git", "rev-parse", "--verify", "--quiet", branch], cwd=self.work,
                                    capture_output=True).returncode == 0
            git(self.work, "checkout", "--quiet", *(() if exists else ("-b",)), branch)
        for path, content in files.items():
            full = os.path.join(self.work, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(content)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "-m", message)
        for remote in self.remotes:
            git(self.work, "push", "--quiet", remote, branch)
        return git(self.work, "rev-parse", "HEAD")


def wait_job(user: TenantUser, job_id: int, statuses, timeout: float = 60, kind: str = "training") -> dict:
    """Poll GET /<kind>/{id} until its status is one of `statuses`; its details."""
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        r = user.api("GET", f"/{kind}/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind} {job_id} is {job['status']} ({job.get('conditionNote')}), "
                                 f"not {sorted(statuses)} after {timeout}s")
        time.sleep(0.1)


def containers(platform: Platform, key: str, running_only: bool = True) -> list[str]:
    """Names of the platform's podman containers for a job key (training-12) or a notebook's server."""
    from kqi_services.jobs.podman import platform_tag

    args = ["podman", "ps", "--filter", f"label=kqi.platform={platform_tag(platform.data_dir)}",
            "--filter", f"label=kqi.key={key}", "--format", "{{.Names}}"]
    if not running_only:
        args.insert(2, "--all")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line for line in out.split() if line]


def service_pids(platform: Platform) -> list[int]:
    """Pids of the platform's kqi service process (cmdline kqi_services.app, its data dir in the environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            if b"kqi_services.app" not in cmdline:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if f"KQI_DATA_DIR={platform.data_dir}".encode() in environ:
            found.append(int(entry))
    return found


def processes_with(marker: str, exact: bool = False) -> list[int]:
    """Pids of live processes whose command line (arguments joined by spaces) contains `marker`
    (is `marker`, when exact)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (cmdline == marker if exact else marker in cmdline) and state != "Z":
            found.append(int(entry))
    return found


def job_output_dir(platform: Platform, tenant: dict, job_id: int, kind_folder: str = "TrainingContainerOutputFiles") -> str:
    """Where a job's /kqi/output lives in the seeded local store (written as the job runs)."""
    return os.path.join(local_store_dir(platform), *tenant["storagePath"].split("/"), kind_folder, str(job_id))


def job_row_id(user, job_id: int, kind: str = "training") -> int:
    """The table id of a job the API shows as `job_id` (a tenant's own number of its kind): its
    storage folders and container are named by it, and its `key` (training-<table id>) tells it."""
    r = user.api("GET", f"/{kind}/{job_id}")
    assert r.status_code == 200, r.text
    return int(r.json()["key"].rsplit("-", 1)[1])


# ------------------------------------------------------------------------------------------
# Notebook helpers: a user's own hub token, the hub's view of a user's servers, waiting for a
# notebook's status, and a running Jupyter server's contents API through the hub's proxy.
def user_hub_token(platform: Platform, name: str, password: str, expires_in: int = 3600) -> str:
    """An unrestricted hub API token of `name` (as the hub issues one to a password)."""
    r = requests.post(f"{platform.hub_api_url}/users/{name}/tokens",
                      json={"auth": {"username": name, "password": password}, "note": "tests",
                            "expires_in": expires_in}, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()["token"]


def hub_servers(platform: Platform, name: str) -> dict:
    """The hub's named servers of a user (name → server model), as an administrator sees them."""
    r = platform.hub("GET", f"/users/{name}")
    assert r.status_code == 200, r.text
    return r.json().get("servers") or {}


def wait_notebook(platform: Platform, token: str, notebook_id: int, statuses, timeout: float = 90) -> dict:
    """Poll GET /notebook/{id} until its status is one of `statuses`; its details."""
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        r = platform.api("GET", f"/notebook/{notebook_id}", token)
        assert r.status_code == 200, r.text
        nb = r.json()
        if nb["status"] in statuses:
            return nb
        if time.monotonic() > deadline:
            raise AssertionError(f"notebook {notebook_id} is {nb['status']} ({nb.get('conditionNote')}), "
                                 f"not {sorted(statuses)} after {timeout}s:\n{platform.log_tail(40)}")
        time.sleep(0.2)


class JupyterServer:
    """A user's running Jupyter server (a named server) through the hub's proxy, with a hub token."""

    def __init__(self, platform: Platform, user: str, server: str, token: str):
        self.base = f"{platform.url}/user/{user}/{server}"
        self.headers = {"Authorization": f"token {token}"}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.headers, timeout=30,
                                allow_redirects=False, **kwargs)

    def contents(self, path: str = "", content: bool = True) -> requests.Response:
        return self.request("GET", "/api/contents/" + path.lstrip("/"), params={"content": "1" if content else "0"})

    def listing(self, path: str = "") -> dict[str, str]:
        """name → type of a folder's entries (fails unless the folder is there)."""
        r = self.contents(path)
        assert r.status_code == 200 and r.json()["type"] == "directory", (path, r.status_code, r.text[:300])
        return {e["name"]: e["type"] for e in r.json()["content"]}

    def read_text(self, path: str) -> str:
        r = self.request("GET", "/api/contents/" + path.lstrip("/"), params={"content": "1", "format": "text",
                                                                            "type": "file"})
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        return r.json()["content"]

    def write_text(self, path: str, text: str) -> requests.Response:
        return self.request("PUT", "/api/contents/" + path.lstrip("/"),
                            json={"type": "file", "format": "text", "content": text})
