"""The local job backend: each job is the runtime in a bubblewrap sandbox on this machine.

A job's folder (<data dir>/jobs/<kind>-<id>/) holds its tmp, git and input folders, the
runtime, `state.json` (pid and start time, so that a restarted service finds the job
again) and, once the runtime ends, tmp/result.json. With a local object store, /kqi/output,
/kqi/attach and /kqi/raw are bound straight from the store, so outputs are stored as they
are written; with S3, they are job-folder folders that the engine uploads at the end.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..domain import layout as layout_module
from ..runtime import kqi_runtime
from .sandbox import CgroupLimiter, Limits, Mount, SandboxSpec, bwrap_args, bwrap_path, launcher_command


@dataclass
class LaunchRequest:
    key: str  # e.g. training-12
    spec: dict  # the runtime's spec.json
    env: dict[str, str]
    cpu: float
    memory_gib: float
    output_dir: str  # host folder bound at /kqi/output
    attach_dir: str  # host folder bound at /kqi/attach
    raw_data_dir: str | None  # host folder bound at /kqi/raw/Data
    parent_dirs: dict[int, str]  # parent id -> host output folder (read-only)
    inference_dirs: dict[int, str]  # parent inference id -> host output folder (read-only)
    extra_ro_paths: list[str] = field(default_factory=list)  # host paths seen read-only at the same path


@dataclass
class JobResult:
    exit_code: int | None
    message: str | None
    oom_killed: bool = False


class LocalBackend:
    name = "local"

    def __init__(self, jobs_dir: str, hidden_dirs: list[str], python: str = sys.executable,
                 capacity_cpu: float | None = None, capacity_memory_gib: float | None = None,
                 capacity_gpu: int = 0, use_cgroups: bool = True):
        self.jobs_dir = jobs_dir
        self.hidden_dirs = hidden_dirs
        self.python = python
        self.cgroups = CgroupLimiter() if use_cgroups else None
        # cgroups are machine-wide: a job's group is named after this jobs folder too, so that two
        # platforms on one machine (or a test's) never share, kill or remove each other's groups
        self._group_tag = hashlib.sha256(os.path.abspath(jobs_dir).encode()).hexdigest()[:10]
        self.capacity_cpu = capacity_cpu if capacity_cpu is not None else float(os.cpu_count() or 1)
        self.capacity_memory_gib = capacity_memory_gib if capacity_memory_gib is not None else _memory_gib()
        self.capacity_gpu = capacity_gpu
        self._children: dict[str, subprocess.Popen] = {}
        # called (in a watcher thread) with a job's key when a job this process started ends,
        # so that the engine finishes it at once instead of at its next tick
        self.on_exit: Callable[[str], None] | None = None
        if bwrap_path() is None:
            raise RuntimeError("bubblewrap (bwrap) is not installed: run `bash setup.sh`")

    def job_dir(self, key: str) -> str:
        return os.path.join(self.jobs_dir, key)

    def cgroup_name(self, key: str) -> str:
        return f"{self._group_tag}-{key}"

    # ---------------------------------------------------------------- launching
    def launch(self, req: LaunchRequest) -> str:
        job_dir = self.job_dir(req.key)
        for sub in ("tmp", "git", "input", "runtime", "home"):
            os.makedirs(os.path.join(job_dir, sub), exist_ok=True)
        for d in (req.output_dir, req.attach_dir):
            os.makedirs(d, exist_ok=True)
        shutil.copy(kqi_runtime.__file__, os.path.join(job_dir, "runtime", "kqi_runtime.py"))
        shutil.copy(layout_module.__file__, os.path.join(job_dir, "runtime", "layout.py"))
        with open(os.path.join(job_dir, "tmp", "spec.json"), "w") as f:
            json.dump(req.spec, f)
        try:
            os.remove(os.path.join(job_dir, "tmp", "result.json"))
        except FileNotFoundError:
            pass

        mounts = [
            Mount(os.path.join(job_dir, "tmp"), "/kqi/tmp", writable=True),
            Mount(os.path.join(job_dir, "git"), "/kqi/git", writable=True),
            Mount(os.path.join(job_dir, "input"), "/kqi/input", writable=True),
            Mount(os.path.join(job_dir, "home"), "/kqi/home", writable=True),
            Mount(os.path.join(job_dir, "runtime"), "/kqi/runtime"),
            Mount(req.output_dir, "/kqi/output", writable=True),
            Mount(req.attach_dir, "/kqi/attach", writable=True),
        ]
        if req.raw_data_dir and os.path.isdir(req.raw_data_dir):
            mounts.append(Mount(req.raw_data_dir, "/kqi/raw/Data"))
        if len(req.parent_dirs) == 1:
            (only,) = req.parent_dirs.values()
            os.makedirs(only, exist_ok=True)
            mounts.append(Mount(only, "/kqi/parent"))
        else:
            for parent_id, d in req.parent_dirs.items():
                os.makedirs(d, exist_ok=True)
                mounts.append(Mount(d, f"/kqi/parent/{parent_id}"))
        for inference_id, d in req.inference_dirs.items():
            os.makedirs(d, exist_ok=True)
            mounts.append(Mount(d, f"/kqi/inference/{inference_id}"))
        for path in req.extra_ro_paths:
            mounts.append(Mount(path, path))
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": "/kqi/home",
               **req.env}
        # the runtime is stdlib only: -S skips site-packages (~0.1 s of every job start)
        sandbox = SandboxSpec(mounts=mounts, env=env, cwd="/kqi",
                              command=[self.python, "-S", "/kqi/runtime/kqi_runtime.py", "/kqi/tmp/spec.json"],
                              hide=self.hidden_dirs, die_with_parent=False)
        limits = Limits(cpu=req.cpu, memory_bytes=int(req.memory_gib * 1024**3) if req.memory_gib else None)
        procs = self.cgroups.create(self.cgroup_name(req.key), limits) if self.cgroups and self.cgroups.version else []
        command = launcher_command(procs, limits, bwrap_args(sandbox))
        log = open(os.path.join(job_dir, "sandbox.log"), "ab")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
        start = _start_time(process.pid)  # (None if it ended already: then it is never taken for running)
        log.close()
        with open(os.path.join(job_dir, "state.json"), "w") as f:
            json.dump({"pid": process.pid, "start": start, "cgroups": bool(procs)}, f)
        self._children[req.key] = process
        threading.Thread(target=self._watch, args=(req.key, process), name=f"kqi-watch-{req.key}",
                         daemon=True).start()
        return job_dir

    # ---------------------------------------------------------------- watching
    def _watch(self, key: str, process: subprocess.Popen) -> None:
        process.wait()
        if self.on_exit is not None:
            try:
                self.on_exit(key)
            except Exception:  # the engine's tick finds the job anyway
                pass

    def _state(self, key: str) -> dict | None:
        try:
            with open(os.path.join(self.job_dir(key), "state.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def is_running(self, key: str) -> bool:
        child = self._children.get(key)
        if child is not None:
            return child.poll() is None
        state = self._state(key)
        return bool(state) and state.get("start") is not None and _start_time(state["pid"]) == state["start"]

    def result(self, key: str) -> JobResult | None:
        """None while the job runs; its result once it ended."""
        if self.is_running(key):
            return None
        child = self._children.pop(key, None)
        path = os.path.join(self.job_dir(key), "tmp", "result.json")
        oom = bool(self.cgroups and self.cgroups.oom_killed(self.cgroup_name(key)))
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            code = child.returncode if child is not None else None
            message = "the job's process ended without a result"
            if code is not None and code < 0:
                message += f" (signal {-code})"
            return JobResult(exit_code=None, message=message, oom_killed=oom)
        return JobResult(exit_code=data.get("exitCode"), message=data.get("message"), oom_killed=oom)

    def cleanup(self, key: str) -> None:
        if self.cgroups:
            self.cgroups.remove(self.cgroup_name(key))

    def halt(self, key: str) -> None:
        state = self._state(key)
        child = self._children.get(key)
        pid = child.pid if child is not None else (state or {}).get("pid")
        same = bool(state) and state.get("start") is not None and _start_time(pid) == state["start"]
        if pid and (child is not None or same):  # never a pid that another process has now
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.cgroups:
            self.cgroups.kill(self.cgroup_name(key))
        if child is not None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log_path(self, attach_dir: str, log_name: str) -> str:
        return os.path.join(attach_dir, log_name)


def _start_time(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/<pid>/stat): tells a pid that was reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    if fields and fields[0] == "Z":
        return None  # a zombie has ended
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
