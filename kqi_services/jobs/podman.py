"""The local job backend: each job is a podman container of the image the user asked for.

`podman_run_args` renders a LaunchRequest as a `podman run` command line (pure, tested
without running it); `PodmanBackend` runs it, watches it and cleans up after it.

Least privilege, as a cluster's restricted pod policy would have it: root in the container
(the guide says jobs run as root) in a user namespace (container root is an unprivileged
host uid, `uid_base`), every capability dropped but `CONTAINER_CAPABILITIES`,
no-new-privileges, the default seccomp profile, its own PID/IPC/UTS/mount namespaces, and
nothing of the host but the job's own `/kqi` folders. Secrets (job token, git token) reach
the container through podman's environment (`--env NAME` without a value), never on a
command line; a registry password through an auth file only root can read, deleted after
the pull.

A job's folder (<data dir>/jobs/<key>/) holds its scratch folders (tmp, git, input, home),
the runtime, `state.json` (the container's name and the pid of its monitor, conmon) and,
once the runtime ends, tmp/result.json. A watcher thread per running job waits on conmon's
pidfd (no polling, no extra process); after a restart of the service the engine's tick
finds jobs that ended meanwhile, and `remove_orphans` removes containers of jobs that no
longer run.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import threading
import time
from typing import Callable

from traitlets import Bool, Dict, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..runtime import RUNTIME_FILES
from .launch import run_times
from .launch import (BIND, CONTAINER_CAPABILITIES, RUNTIME, RUNTIME_DIR, SCRATCH, JobResult, LaunchRequest,
                     normalize_image, scratch_name)

LABEL = "kqi.platform"
NOTEBOOK_NAME = "notebook-"  # notebooks' containers: kqi-<platform>-notebook-<user>-<server>


def platform_tag(data_dir: str) -> str:
    """Names this platform's containers: two platforms on one machine (or a test's) never share them."""
    import hashlib

    return hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:10]


def write_runtime(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, source in RUNTIME_FILES.items():
        shutil.copy(source, os.path.join(folder, name))
        os.chmod(os.path.join(folder, name), 0o644)


def cgroup_v1() -> bool:
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


class PodmanSettings(LoggingConfigurable):
    """How local containers are run (jobs and notebooks alike)."""

    podman = Unicode("podman", help="The podman command.").tag(config=True)
    oci_runtime = Unicode(
        help="OCI runtime podman uses (--runtime). Default: runc on cgroups v1 hosts (crun refuses"
        " 'cgroups in hybrid mode'), podman's own default elsewhere.",
    ).tag(config=True)

    @default("oci_runtime")
    def _oci_runtime_default(self):
        return "runc" if cgroup_v1() and shutil.which("runc") else ""

    ulimits = List(
        Unicode(), ["nofile=1024:1024", "nproc=4096:4096"],
        help="--ulimit values of every container: at or below the host's hard limits (the runtime"
        " cannot raise them).",
    ).tag(config=True)
    user_namespace = Bool(
        True, help="Run containers in a user namespace: container root is host uid `uid_base`, no host"
        " privilege. Turn off only on hosts that do not allow user namespaces.",
    ).tag(config=True)
    uid_base = Integer(
        100000, help="First host uid (and gid) of the containers' user namespace (65536 ids from there).",
    ).tag(config=True)
    pids_limit = Integer(4096, help="Most processes a container may have.").tag(config=True)
    default_image = Unicode(
        help="Image of a job whose request names none. Default: KQI_JOB_IMAGE, else docker.io/library/python:3.11.",
    ).tag(config=True)

    @default("default_image")
    def _default_image_default(self):
        return os.environ.get("KQI_JOB_IMAGE") or "docker.io/library/python:3.11"

    pull_timeout = Float(1800.0, help="Seconds a pull of a missing image may take.").tag(config=True)
    ca_bundle = Unicode(
        help="A host file of CA certificates (PEM) mounted read-only at /etc/ssl/certs/kqi-host-ca.crt"
        " in every container, for a company's TLS-intercepting proxy or package index. The job"
        " environment setting then points PIP_CERT / REQUESTS_CA_BUNDLE / GIT_SSL_CAINFO at it."
        " Default: KQI_CONTAINER_CA_BUNDLE; empty: none.",
    ).tag(config=True)

    @default("ca_bundle")
    def _ca_bundle_default(self):
        return os.environ.get("KQI_CONTAINER_CA_BUNDLE", "")

    gpu_devices = List(
        Unicode(), help="CDI names of the GPUs jobs may get (e.g. nvidia.com/gpu=0). Empty: discovered"
        " from `nvidia-ctk cdi list` when the host has it, else none.",
    ).tag(config=True)
    extra_args = List(Unicode(), help="More `podman run` arguments for every container.").tag(config=True)
    labels = Dict(help="Labels every container gets.").tag(config=True)


CA_TARGET = "/etc/ssl/certs/kqi-host-ca.crt"


def podman_run_args(req: LaunchRequest, settings: PodmanSettings, *, name: str, platform_tag: str,
                    folder: str, command: list[str], gpu_devices: list[str] = (),
                    conmon_pidfile: str | None = None) -> list[str]:
    """The `podman run` command line of a LaunchRequest (pure: from the arguments only).

    Secret variables are named without their values: podman takes them from its own
    environment, so they never appear on a command line.
    """
    args = [settings.podman, "run", "--detach", "--name", name, "--pull", "never",
            "--label", f"{LABEL}={platform_tag}", "--label", f"kqi.key={req.key}",
            "--label", f"kqi.kind={req.kind}", "--label", f"kqi.tenant={req.tenant}"]
    for key, value in sorted(settings.labels.items()):
        args += ["--label", f"{key}={value}"]
    if settings.oci_runtime:
        args += ["--runtime", settings.oci_runtime]
    if conmon_pidfile:
        args += ["--conmon-pidfile", conmon_pidfile]
    args += ["--log-driver", "k8s-file", "--log-opt", f"path={os.path.join(folder, 'container.log')}"]
    # least privilege
    args += ["--cap-drop", "all"] + [a for cap in CONTAINER_CAPABILITIES for a in ("--cap-add", cap)]
    args += ["--security-opt", "no-new-privileges"]  # and podman's default seccomp profile
    if settings.user_namespace:
        base = settings.uid_base
        args += ["--uidmap", f"0:{base}:65536", "--gidmap", f"0:{base}:65536"]
    for limit in settings.ulimits:
        args += ["--ulimit", limit]
    # resources
    if req.cpu:
        args += ["--cpus", f"{req.cpu:g}"]
    if req.memory_gib:
        memory = f"{max(6, int(req.memory_gib * 1024))}m"
        args += ["--memory", memory, "--memory-swap", memory]
    args += ["--pids-limit", str(settings.pids_limit), "--shm-size", f"{max(64, int((req.memory_gib or 1) * 512))}m"]
    for device in gpu_devices:
        args += ["--device", device]
    if not gpu_devices:
        args += ["--env", "NVIDIA_VISIBLE_DEVICES=none"]
    if req.timeout_seconds:
        args += ["--timeout", str(int(req.timeout_seconds))]  # conmon ends it, with or without the platform
    # network and identity
    args += ["--network", req.network or "host", "--hostname", req.key[:63]]
    for port in req.ports:
        if req.network not in ("host", "none"):
            args += ["--publish", f"127.0.0.1:{port}:{port}"]
    # /kqi
    for m in sorted(req.mounts, key=lambda m: m.target.count("/")):
        if m.kind == SCRATCH:
            source = os.path.join(folder, scratch_name(m.target))
        elif m.kind == RUNTIME:
            source = os.path.join(folder, "runtime")
        else:
            source = m.source
        args += ["--volume", f"{source}:{m.target}:{'rw' if m.writable else 'ro'}"]
    if settings.ca_bundle:
        args += ["--volume", f"{settings.ca_bundle}:{CA_TARGET}:ro"]
    # environment
    for key, value in sorted(req.env.items()):
        args += ["--env", f"{key}={value}"]
    for key in sorted(req.secret_env):
        args += ["--env", key]
    args += ["--workdir", "/kqi"] + list(settings.extra_args)
    args += [normalize_image(req.image, settings.default_image)] + list(command)
    return args


def runtime_command(spec_path: str = "/kqi/tmp/spec.json") -> list[str]:
    """start.sh finds (or installs) a Python in the image, then runs the runtime."""
    return ["/bin/sh", f"{RUNTIME_DIR}/start.sh", spec_path]


class PodmanError(RuntimeError):
    pass


class Podman:
    """Small helpers around the podman command (I/O only)."""

    def __init__(self, settings: PodmanSettings):
        self.settings = settings

    def run(self, *args: str, env: dict | None = None, timeout: float = 120.0, check: bool = True
            ) -> subprocess.CompletedProcess:
        result = subprocess.run([self.settings.podman, *args], capture_output=True, text=True, timeout=timeout,
                                env=env, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise PodmanError((result.stderr or result.stdout).strip()[-2000:] or f"podman {args[0]} failed")
        return result

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def pull(self, ref: str, credential=None, workdir: str = "/tmp") -> None:
        """Pull with the user's registry credential in an auth file only root can read."""
        args = ["pull", "--quiet"]
        authfile = None
        if credential is not None:
            import base64

            authfile = os.path.join(workdir, ".pull-auth.json")
            fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                auth = base64.b64encode(f"{credential.username or ''}:{credential.password}".encode()).decode()
                json.dump({"auths": {credential.server: {"auth": auth}}}, f)
            args += ["--authfile", authfile]
        try:
            self.run(*args, ref, timeout=self.settings.pull_timeout)
        finally:
            if authfile:
                try:
                    os.remove(authfile)
                except OSError:
                    pass

    def inspect(self, name: str) -> dict | None:
        result = self.run("container", "inspect", name, check=False)
        if result.returncode != 0:
            return None
        try:
            data = json.loads(result.stdout)
        except ValueError:
            return None
        return data[0] if data else None

    def remove(self, name: str) -> None:
        self.run("rm", "--force", "--time", "0", "--ignore", name, check=False)

    def names(self, platform_tag: str) -> list[str]:
        result = self.run("ps", "--all", "--filter", f"label={LABEL}={platform_tag}", "--format", "{{.Names}}",
                          check=False)
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]


class PodmanBackend(PodmanSettings):
    """Jobs as podman containers on this machine."""

    name = "local"
    jobs_end_with_service = True

    capacity_cpu_cores = Float(0.0, help="CPU cores jobs may use in all (0: the machine's cores).").tag(config=True)
    capacity_memory = Float(0.0, help="Memory (GiB) jobs may use in all (0: the machine's memory).").tag(config=True)
    capacity_gpus = Integer(0, help="GPUs jobs may use in all (0: as many as `gpu_devices`).").tag(config=True)

    def __init__(self, jobs_dir: str, platform_tag: str, name_prefix: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.jobs_dir = jobs_dir
        self.platform_tag = platform_tag
        self.name_prefix = name_prefix or f"kqi-{platform_tag}-"
        self.podman_cli = Podman(self)
        self.on_exit: Callable[[str], None] | None = None
        self._pending: dict[str, threading.Thread] = {}  # pulls under way
        self._failed: dict[str, JobResult] = {}  # launches that failed before a container ran
        self._halted: set[str] = set()  # halted while being launched
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        if shutil.which(self.podman) is None:
            raise RuntimeError("podman is not installed: run `bash setup.sh`")

    def _key_lock(self, key: str) -> threading.Lock:
        """Serializes starting and halting one job's container."""
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    # ------------------------------------------------------------- capacity
    @property
    def capacity_cpu(self) -> float:
        return self.capacity_cpu_cores or float(os.cpu_count() or 1)

    @property
    def capacity_memory_gib(self) -> float:
        return self.capacity_memory or _memory_gib()

    @property
    def capacity_gpu(self) -> int:
        return self.capacity_gpus or len(self.devices())

    def devices(self) -> list[str]:
        if self.gpu_devices:
            return list(self.gpu_devices)
        if not hasattr(self, "_found_devices"):
            found = []
            if shutil.which("nvidia-ctk"):
                try:
                    out = subprocess.run(["nvidia-ctk", "cdi", "list"], capture_output=True, text=True, timeout=10)
                    found = [line.strip() for line in out.stdout.splitlines()
                             if line.strip().startswith("nvidia.com/gpu=") and not line.strip().endswith("=all")]
                except (OSError, subprocess.SubprocessError):
                    pass
            self._found_devices = found
        return self._found_devices

    def status_note(self, key: str) -> str | None:
        """'pulling the image …' while the job's image comes in."""
        with self._lock:
            pulling = key in self._pending
        if not pulling:
            return None
        return f"pulling the image {(self._state(key) or {}).get('image', '')}".rstrip()

    # ------------------------------------------------------------- names
    def job_dir(self, key: str) -> str:
        return os.path.join(self.jobs_dir, key)

    def container_name(self, key: str) -> str:
        return self.name_prefix + key

    # ------------------------------------------------------------- launching
    def prepare_folder(self, req: LaunchRequest, folder: str) -> None:
        """The job's own folders, owned by container root (the user namespace's first uid)."""
        owner = self.uid_base if self.user_namespace else 0
        for m in req.mounts:
            if m.kind == SCRATCH:
                path = os.path.join(folder, scratch_name(m.target))
                os.makedirs(path, exist_ok=True)
                os.chown(path, owner, owner)
            elif m.kind == BIND:
                if not os.path.exists(m.source):
                    os.makedirs(m.source, exist_ok=True)
                if m.writable:
                    os.chown(m.source, owner, owner)
        write_runtime(os.path.join(folder, "runtime"))

    def launch(self, req: LaunchRequest) -> str:
        folder = self.job_dir(req.key)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        self.prepare_folder(req, folder)
        spec_path = os.path.join(folder, "tmp", "spec.json")
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(req.spec, f)
        if self.user_namespace:
            os.chown(spec_path, self.uid_base, self.uid_base)
        for stale in ("result.json",):
            try:
                os.remove(os.path.join(folder, "tmp", stale))
            except FileNotFoundError:
                pass
        self._failed.pop(req.key, None)
        self._halted.discard(req.key)
        image = normalize_image(req.image, self.default_image)
        if self.podman_cli.image_exists(image):
            with self._key_lock(req.key):
                self._start(req, folder, image)
        else:
            # pull in the background: the job shows as running, its log tells the pull
            self._log(req, f"pulling the image {image}")
            thread = threading.Thread(target=self._pull_then_start, args=(req, folder, image),
                                      name=f"kqi-pull-{req.key}", daemon=True)
            with self._lock:
                self._pending[req.key] = thread
            self._write_state(req.key, {"name": self.container_name(req.key), "phase": "pulling", "image": image})
            thread.start()
        return folder

    def _log(self, req: LaunchRequest, text: str) -> None:
        """A platform line in the job's log (the runtime appends to the same file)."""
        log_name = req.spec.get("logName")
        attach = req.attach_dir
        if not log_name or not attach:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        path = os.path.join(attach, log_name)
        with open(path, "a") as f:
            f.write(f"[kqi {stamp}] {text}\n")
        if self.user_namespace:  # the runtime (container root) appends to the same file
            os.chown(path, self.uid_base, self.uid_base)

    def _pull_then_start(self, req: LaunchRequest, folder: str, image: str) -> None:
        try:
            self.podman_cli.pull(image, req.registry, workdir=folder)
            self._log(req, f"pulled the image {image}")
            with self._key_lock(req.key):
                if req.key in self._halted:  # halted while the image came in: nothing starts
                    self._failed[req.key] = JobResult(exit_code=None, message="halted before it started")
                else:
                    self._start(req, folder, image)
        except Exception as e:  # a failed pull ends the job Failed with the registry's message
            message = f"pulling the image {image} failed: {e}"
            self._log(req, message)
            self._failed[req.key] = JobResult(exit_code=None, message=message)
        finally:
            with self._lock:
                self._pending.pop(req.key, None)
            if self.on_exit is not None:
                if req.key in self._failed:
                    self.on_exit(req.key)

    def _start(self, req: LaunchRequest, folder: str, image: str) -> None:
        name = self.container_name(req.key)
        self.podman_cli.remove(name)  # a leftover of an earlier run of the same key
        pidfile = os.path.join(folder, "conmon.pid")
        gpus = self._gpu_devices(req)
        args = podman_run_args(req, self, name=name, platform_tag=self.platform_tag, folder=folder,
                               command=runtime_command(), gpu_devices=gpus, conmon_pidfile=pidfile)
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), **req.secret_env}
        for keep in ("XDG_RUNTIME_DIR", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TMPDIR"):
            if os.environ.get(keep):
                env[keep] = os.environ[keep]
        # (conmon leaves an empty file "oom" in its working directory when the kernel kills for memory
        # on cgroups v1: the job's folder, not wherever the service was started)
        result = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                                timeout=120, cwd=folder)
        if result.returncode != 0:
            self.podman_cli.remove(name)
            raise PodmanError(f"the container did not start: {result.stderr.strip()[-1000:]}")
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pid = None
        self._write_state(req.key, {"name": name, "phase": "running", "image": image, "conmon": pid,
                                    "start": _start_time(pid) if pid else None,
                                    "gpus": gpus})
        if pid:
            threading.Thread(target=self._watch, args=(req.key, pid), name=f"kqi-watch-{req.key}",
                             daemon=True).start()

    def _gpu_devices(self, req: LaunchRequest) -> list[str]:
        if not req.gpu:
            return []
        used = set()
        for key in os.listdir(self.jobs_dir) if os.path.isdir(self.jobs_dir) else ():
            if key != req.key and self.is_running(key):
                used.update((self._state(key) or {}).get("gpus") or [])
        free = [d for d in self.devices() if d not in used]
        if len(free) < req.gpu:
            raise PodmanError(f"{req.gpu} GPU(s) asked for, {len(free)} free on this machine")
        return free[:req.gpu]

    # ------------------------------------------------------------- watching
    def _watch(self, key: str, pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            fd = None
        if fd is not None:
            try:
                select.select([fd], [], [])
            finally:
                os.close(fd)
        else:
            while _start_time(pid) is not None:
                time.sleep(0.2)
        if self.on_exit is not None:
            try:
                self.on_exit(key)
            except Exception:
                pass

    def _state(self, key: str) -> dict | None:
        try:
            with open(os.path.join(self.job_dir(key), "state.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _write_state(self, key: str, state: dict) -> None:
        path = os.path.join(self.job_dir(key), "state.json")
        with open(path + ".partial", "w") as f:
            json.dump(state, f)
        os.replace(path + ".partial", path)

    def is_running(self, key: str) -> bool:
        with self._lock:
            if key in self._pending:
                return True
        state = self._state(key)
        if not state or not state.get("conmon") or state.get("start") is None:
            return False
        return _start_time(state["conmon"]) == state["start"]

    def result(self, key: str) -> JobResult | None:
        """None while the job runs; its result once it ended."""
        if self.is_running(key):
            return None
        if key in self._failed:
            return self._failed[key]
        state = self._state(key) or {}
        info = self.podman_cli.inspect(state.get("name") or self.container_name(key)) or {}
        container_state = info.get("State") or {}
        oom = bool(container_state.get("OOMKilled"))
        try:
            with open(os.path.join(self.job_dir(key), "tmp", "result.json")) as f:
                data = json.load(f)
        except (OSError, ValueError):
            code = container_state.get("ExitCode")
            message = "the job's process ended without a result"
            if code:
                message += f" (container exit status {code})"
            if container_state.get("Error"):
                message += f": {container_state['Error']}"
            return JobResult(exit_code=None, message=message, oom_killed=oom)
        oom = oom or bool(data.get("oomKilled"))
        times = run_times(data, container_state.get("StartedAt"), container_state.get("FinishedAt"))
        return JobResult(exit_code=data.get("exitCode"), message=data.get("message"), oom_killed=oom,
                         started_at=times[0], finished_at=times[1])

    def halt(self, key: str) -> None:
        self._halted.add(key)
        with self._key_lock(key):  # a container being started is killed once it exists, not missed
            state = self._state(key) or {}
            self.podman_cli.run("kill", "--signal", "KILL", state.get("name") or self.container_name(key),
                                check=False)
        deadline = time.monotonic() + 10
        while self.is_running(key) and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self, key: str) -> None:
        """Remove the container (and with it its environment, the job's secrets) once its result is taken."""
        self.podman_cli.remove((self._state(key) or {}).get("name") or self.container_name(key))
        self._failed.pop(key, None)
        self._halted.discard(key)
        with self._lock:
            self._key_locks.pop(key, None)

    def remove_orphans(self, active_keys: set[str]) -> None:
        """Containers of this platform whose job is not running any more (after a kill -9 of the service)."""
        for name in self.podman_cli.names(self.platform_tag):
            key = name[len(self.name_prefix):] if name.startswith(self.name_prefix) else None
            # (notebooks belong to the hub's spawner, TensorBoards to kqi_services.tensorboard)
            if key and key not in active_keys and not key.startswith((NOTEBOOK_NAME, "tensorboard-")):
                self.podman_cli.remove(name)

    async def open_shell(self, key: str, rows: int = 24, cols: int = 80):
        """`podman exec -it <container> sh` (bash when the image has it) under a pseudo-terminal."""
        from .shell import PtyShell, end_command, new_marker, podman_exec_args, shell_command

        name = (self._state(key) or {}).get("name") or self.container_name(key)
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "TERM": "xterm-256color"}
        for keep in ("XDG_RUNTIME_DIR", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TMPDIR", "HOME"):
            if os.environ.get(keep):
                env[keep] = os.environ[keep]
        marker = new_marker()

        def end():  # the exec session outlives its client: end the shell's processes in the container
            subprocess.run(podman_exec_args(self.podman, name, end_command(marker)), env=env, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=30)

        return PtyShell(podman_exec_args(self.podman, name, shell_command(marker)), env, rows, cols, on_close=end)

    def log_path(self, attach_dir: str, log_name: str) -> str:
        return os.path.join(attach_dir, log_name)


def _start_time(pid: int | None) -> str | None:
    """The start time of a process (field 22 of /proc/<pid>/stat): tells a pid that was reused."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    if fields and fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else None


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 1.0
