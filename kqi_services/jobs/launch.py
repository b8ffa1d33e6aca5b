"""The launch contract: what a job or notebook container is, whichever backend runs it.

The engine (for jobs) and the notebook spawners build one `LaunchRequest` from a job or a
notebook: the image, the limits, the plain and the secret environment, and the mount plan
of `/kqi` (`kqi_mounts`). Each backend renders the same request: `podman run` arguments on
one machine (jobs/podman.py), a batch/v1 Job or a pod on Kubernetes (jobs/kubernetes.py,
spawner/kube.py). The `/kqi` layout is written here and nowhere else.

Mount kinds:
  bind      a host folder (locally bound as it is; on Kubernetes a subPath of the shared
            storage volume that holds it)
  scratch   a fresh empty folder of the job's own (a folder of the job directory locally,
            an emptyDir on Kubernetes)
  runtime   the job runtime's files (kqi_runtime.py, layout.py), read-only (copied into the
            job directory locally, a ConfigMap on Kubernetes)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

BIND, SCRATCH, RUNTIME = "bind", "scratch", "runtime"

#: where every container finds the runtime
RUNTIME_DIR = "/kqi/runtime"

#: the container's capabilities: what root in a container needs to install packages and run
#: programs as other users, nothing that reaches the host (no SYS_ADMIN, DAC_READ_SEARCH,
#: SYS_PTRACE, NET_ADMIN, NET_RAW, MKNOD, SYS_MODULE, ...). Docker's defaults minus NET_RAW, MKNOD,
#: AUDIT_WRITE and SETFCAP.
CONTAINER_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                          "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT")


@dataclass(frozen=True)
class Mount:
    target: str  # path in the container
    source: str | None = None  # host folder (kind bind)
    writable: bool = False
    kind: str = BIND


@dataclass
class RegistryCredential:
    server: str  # host[:port] as in the image reference
    username: str | None
    password: str


@dataclass
class LaunchRequest:
    """One container to run: a job (the runtime runs its command) or a notebook server."""

    key: str  # e.g. training-12: names the container, its folders and its cgroups
    kind: str  # training | inference | preprocessing | notebook
    job_id: int
    tenant: str
    user: str
    image: str | None  # full reference (registry/image:tag); None: the backend's default image
    spec: dict  # the runtime's spec.json
    env: dict[str, str]  # plain variables
    secret_env: dict[str, str] = field(default_factory=dict)  # KQI_TOKEN, git token, ...: never on a command line
    cpu: float = 1.0
    memory_gib: float = 1.0
    gpu: int = 0
    partition: str | None = None
    registry: RegistryCredential | None = None
    mounts: list[Mount] = field(default_factory=list)
    network: str = "host"  # the job environment's network mode (local backend)
    ports: list[int] = field(default_factory=list)  # container ports to publish (notebook server)
    timeout_seconds: int | None = None  # the container ends after this long (a notebook's lifetime)

    def mount(self, target: str) -> Mount | None:
        return next((m for m in self.mounts if m.target == target), None)

    @property
    def output_dir(self) -> str:
        return self.mount("/kqi/output").source

    @property
    def attach_dir(self) -> str | None:
        found = self.mount("/kqi/attach")
        return found.source if found else None


@dataclass
class JobResult:
    exit_code: int | None
    message: str | None
    oom_killed: bool = False
    #: the container's own start and end (naive UTC), when the backend knows them: the usage ledger's times
    started_at: datetime | None = field(default=None, compare=False)
    finished_at: datetime | None = field(default=None, compare=False)


def parse_container_time(value) -> datetime | None:
    """A container runtime's time stamp (RFC 3339, nanoseconds allowed) as naive UTC; None when unset."""
    if not value or not isinstance(value, str) or value.startswith("0001-"):
        return None
    text = value.strip().replace("Z", "+00:00")
    main, _, rest = text.partition(".")
    if rest:  # at most microseconds
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{main}.{digits[:6]}{rest[len(digits):]}"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(timezone.utc).replace(tzinfo=None)
    return stamp


def run_times(data: dict | None, container_started=None, container_finished=None) -> tuple:
    """(start, end) of a job's run for the usage ledger: its command's, as the runtime reported them
    (epoch seconds in its result), else the container's own (naive UTC datetimes or RFC 3339 texts)."""
    data = data or {}
    try:
        if data.get("startedAt") is not None and data.get("endedAt") is not None:
            return (datetime.fromtimestamp(float(data["startedAt"]), timezone.utc).replace(tzinfo=None),
                    datetime.fromtimestamp(float(data["endedAt"]), timezone.utc).replace(tzinfo=None))
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    return parse_container_time(container_started), parse_container_time(container_finished)


class JobBackend(Protocol):
    """What the engine calls; implemented by PodmanBackend, BubblewrapBackend and KubernetesBackend."""

    name: str
    capacity_cpu: float
    capacity_memory_gib: float
    capacity_gpu: int
    #: called with a job's key (from any thread) when a job the backend started ends; None: polled only
    on_exit: Callable[[str], None] | None
    #: whether the backend's jobs end with the service (False: they outlive it and are reconciled)
    jobs_end_with_service: bool

    def job_dir(self, key: str) -> str: ...
    def launch(self, req: LaunchRequest) -> str: ...
    def is_running(self, key: str) -> bool: ...
    def result(self, key: str) -> JobResult | None: ...
    def halt(self, key: str) -> None: ...
    def cleanup(self, key: str) -> None: ...
    def remove_orphans(self, active_keys: set[str]) -> None: ...
    def status_note(self, key: str) -> str | None: ...  # what a running job is doing now (pulling its image)
    #: an interactive root shell in the running job's container, on the caller's event loop (jobs/shell.py)
    async def open_shell(self, key: str, rows: int = 24, cols: int = 80): ...


def kqi_mounts(*, output_dir: str, attach_dir: str | None = None, raw_data_dir: str | None = None,
               parent_dirs: dict[int, str] | None = None, inference_dirs: dict[int, str] | None = None,
               extra_ro_paths: list[str] = (), home: bool = True) -> list[Mount]:
    """The /kqi of a job or a notebook, as the guide lays it out.

    /kqi/output is the job's output (a notebook's persistent home); /kqi/attach (jobs only)
    holds the log and output.zip; /kqi/raw/Data the tenant's stored data that the dataset
    links point into; /kqi/parent (one parent) or /kqi/parent/<id> (several) and
    /kqi/inference/<id> the outputs of mounted jobs, read-only; /kqi/tmp, /kqi/git and
    /kqi/input are the job's own scratch folders; extra_ro_paths are host folders seen
    read-only at the same path (a local git repository to clone from).
    """
    mounts = [
        Mount("/kqi/tmp", kind=SCRATCH, writable=True),
        Mount("/kqi/git", kind=SCRATCH, writable=True),
        Mount("/kqi/input", kind=SCRATCH, writable=True),
        Mount(RUNTIME_DIR, kind=RUNTIME),
        Mount("/kqi/output", output_dir, writable=True),
    ]
    if home:
        mounts.append(Mount("/kqi/home", kind=SCRATCH, writable=True))
    if attach_dir:
        mounts.append(Mount("/kqi/attach", attach_dir, writable=True))
    if raw_data_dir:
        mounts.append(Mount("/kqi/raw/Data", raw_data_dir))
    parent_dirs = parent_dirs or {}
    if len(parent_dirs) == 1:
        (only,) = parent_dirs.values()
        mounts.append(Mount("/kqi/parent", only))
    else:
        for parent_id, path in sorted(parent_dirs.items()):
            mounts.append(Mount(f"/kqi/parent/{parent_id}", path))
    for inference_id, path in sorted((inference_dirs or {}).items()):
        mounts.append(Mount(f"/kqi/inference/{inference_id}", path))
    for path in extra_ro_paths:
        mounts.append(Mount(path, path))
    return mounts


def scratch_name(target: str) -> str:
    """The job-folder name of a scratch mount: /kqi/tmp -> tmp."""
    return target.rstrip("/").rsplit("/", 1)[-1]


def registry_server(host: str, port: int | None = None) -> str:
    """host[:port] as it appears in image references and in a registry auth file."""
    host = re.sub(r"^[a-z]+://", "", (host or "").strip()).rstrip("/")
    if port and port not in (80, 443) and ":" not in host:
        host = f"{host}:{port}"
    return host


DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def image_reference(server: str | None, image: str, tag: str | None) -> str:
    """KAMONOHASHI names an image by registry + image + tag: the full reference of the three."""
    server = (server or "").strip().rstrip("/")
    ref = image.strip()
    if tag:
        ref += ("@" if tag.startswith("sha256:") else ":") + tag
    if server and server not in DOCKER_HUB_ALIASES:
        return f"{server}/{ref}"
    return normalize_image(ref, ref)


def normalize_image(image: str | None, default: str) -> str:
    """A full image reference as podman and Kubernetes resolve it alike: registry/path:tag.

    "python:3.11" -> "docker.io/library/python:3.11"; "user/img" -> "docker.io/user/img:latest";
    "localhost/kqi/x:1" and "registry.example.com:5000/a/b:2" stay as they are (with :latest
    added when no tag or digest is named).
    """
    ref = (image or default).strip()
    if "@" not in ref.rsplit("/", 1)[-1] and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    first, _, rest = ref.partition("/")
    if not rest:  # a bare name: Docker Hub's official images
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"
