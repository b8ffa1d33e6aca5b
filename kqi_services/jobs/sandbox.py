"""Process sandboxes for local jobs and notebooks: bubblewrap + resource limits.

The sandbox sees the host read-only (so the host's tools and Python work), a private
/tmp, its own /proc and PID namespace, and a /kqi assembled from bind mounts: only the
job's own folders are writable. The platform's data directory is hidden. Limits use
cgroups where the host allows (v2, else v1: memory, cpu, pids) and rlimits otherwise.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field

HIDDEN_TOP = {"proc", "dev", "sys", "tmp", "run", "kqi", "lost+found"}


@dataclass
class Mount:
    source: str
    target: str
    writable: bool = False


@dataclass
class Limits:
    cpu: float | None = None  # cores
    memory_bytes: int | None = None
    pids: int | None = 4096


@dataclass
class SandboxSpec:
    mounts: list[Mount]
    command: list[str]
    env: dict[str, str]
    cwd: str = "/kqi"
    hide: list[str] = field(default_factory=list)  # host paths replaced by an empty tmpfs
    share_net: bool = True
    # end the sandbox when the process that started it dies; jobs set False: they outlive a
    # crash or restart of the service (which reconciles them) and end by halt, stop_all or cgroups
    die_with_parent: bool = True


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def interpreter_paths() -> list[str]:
    """Folders the service's Python needs: its prefixes and the folder of its executable."""
    paths = []
    for path in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable),
                 os.path.dirname(os.path.realpath(sys.executable))):
        for candidate in (path, os.path.realpath(path)):
            if candidate and candidate not in paths:
                paths.append(candidate)
    # an inner folder is covered by an outer one
    return [p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths)]


def bwrap_args(spec: SandboxSpec, root: str = "/") -> list[str]:
    """The bubblewrap command line (pure: tested without running it)."""
    args = ["bwrap"] + (["--die-with-parent"] if spec.die_with_parent else []) + [
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "kqi-job"]
    if not spec.share_net:
        args.append("--unshare-net")
    for name in sorted(os.listdir(root)):
        if name in HIDDEN_TOP:
            continue
        path = os.path.join(root, name)
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), "/" + name]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, "/" + name]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    # the platform's Python (and its virtual environment) may live under a folder the sandbox
    # replaces, e.g. a checkout in /tmp: keep those visible, read-only, at the same path
    for path in interpreter_paths():
        top = path.strip("/").split("/")[0]
        if top in HIDDEN_TOP and os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for hidden in spec.hide:
        if os.path.exists(hidden):
            args += ["--tmpfs", hidden]
    args += ["--dir", "/kqi"]
    for m in sorted(spec.mounts, key=lambda m: m.target.count("/")):
        args += ["--bind" if m.writable else "--ro-bind", m.source, m.target]
    args += ["--chdir", spec.cwd, "--clearenv"]
    for key, value in sorted(spec.env.items()):
        args += ["--setenv", key, value]
    return args + ["--"] + spec.command


# ------------------------------------------------------------------------- cgroups
class CgroupLimiter:
    """Puts a process tree under memory/cpu/pids limits (cgroup v2, else v1), if writable."""

    def __init__(self, base: str = "/sys/fs/cgroup", group_prefix: str = "kqi"):
        self.base = base
        self.prefix = group_prefix
        self.version = self._detect()

    def _detect(self) -> int | None:
        controllers = os.path.join(self.base, "cgroup.controllers")
        if os.path.exists(controllers):
            with open(controllers) as f:
                available = f.read().split()
            if {"memory", "pids"} <= set(available) and os.access(self.base, os.W_OK):
                return 2
        if all(os.access(os.path.join(self.base, c), os.W_OK) for c in ("memory", "cpu", "pids")):
            return 1
        return None

    @staticmethod
    def _own_v1_path(controller: str) -> str:
        try:
            with open("/proc/self/cgroup") as f:
                for line in f:
                    _, controllers, path = line.strip().split(":", 2)
                    if controller in controllers.split(","):
                        return path
        except OSError:
            pass
        return "/"

    def group_dirs(self, name: str) -> dict[str, str]:
        if self.version == 2:
            return {"unified": os.path.join(self.base, self.prefix, name)}
        if self.version == 1:
            return {c: os.path.join(self.base, c, self._own_v1_path(c).lstrip("/"), self.prefix, name)
                    for c in ("memory", "cpu", "pids")}
        return {}

    def create(self, name: str, limits: Limits) -> list[str]:
        """Make the groups; returns the cgroup.procs files a launcher writes its pid into."""
        dirs = self.group_dirs(name)
        procs = []
        try:
            if self.version == 2:
                parent = os.path.dirname(dirs["unified"])
                os.makedirs(parent, exist_ok=True)
                self._write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids +cpu", ignore=True)
                os.makedirs(dirs["unified"], exist_ok=True)
                d = dirs["unified"]
                if limits.memory_bytes:
                    self._write(os.path.join(d, "memory.max"), str(limits.memory_bytes))
                    self._write(os.path.join(d, "memory.swap.max"), "0", ignore=True)
                if limits.cpu:
                    self._write(os.path.join(d, "cpu.max"), f"{int(limits.cpu * 100000)} 100000", ignore=True)
                if limits.pids:
                    self._write(os.path.join(d, "pids.max"), str(limits.pids))
                procs.append(os.path.join(d, "cgroup.procs"))
            elif self.version == 1:
                for controller, d in dirs.items():
                    os.makedirs(d, exist_ok=True)
                    procs.append(os.path.join(d, "cgroup.procs"))
                if limits.memory_bytes:
                    self._write(os.path.join(dirs["memory"], "memory.limit_in_bytes"), str(limits.memory_bytes))
                    self._write(os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes"),
                                str(limits.memory_bytes), ignore=True)
                if limits.cpu:
                    self._write(os.path.join(dirs["cpu"], "cpu.cfs_period_us"), "100000")
                    self._write(os.path.join(dirs["cpu"], "cpu.cfs_quota_us"), str(int(limits.cpu * 100000)))
                if limits.pids:
                    self._write(os.path.join(dirs["pids"], "pids.max"), str(limits.pids))
        except OSError:
            self.remove(name)
            return []
        return procs

    def pids(self, name: str) -> list[int]:
        found = set()
        for d in self.group_dirs(name).values():
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    found.update(int(x) for x in f.read().split())
            except OSError:
                pass
        return sorted(found)

    def kill(self, name: str) -> None:
        dirs = self.group_dirs(name)
        if self.version == 2 and os.path.exists(os.path.join(dirs["unified"], "cgroup.kill")):
            self._write(os.path.join(dirs["unified"], "cgroup.kill"), "1", ignore=True)
        import signal

        for pid in self.pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def oom_killed(self, name: str) -> bool:
        dirs = self.group_dirs(name)
        path = (os.path.join(dirs["unified"], "memory.events") if self.version == 2
                else os.path.join(dirs.get("memory", ""), "memory.oom_control"))
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self, name: str, wait: float = 2.0) -> None:
        """Delete the groups; a killed tree may take a moment to leave them, so wait for that."""
        deadline = time.monotonic() + wait
        while self.pids(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        for d in self.group_dirs(name).values():
            try:
                os.rmdir(d)
            except OSError:
                pass

    @staticmethod
    def _write(path: str, value: str, ignore: bool = False) -> None:
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            if not ignore:
                raise


def launcher_command(procs_files: list[str], limits: Limits, inner: list[str]) -> list[str]:
    """A shell line that joins the cgroups (or sets rlimits), then execs `inner`."""
    steps = [f"echo $$ > {shlex.quote(p)}" for p in procs_files]
    if not procs_files:
        if limits.memory_bytes:
            steps.append(f"ulimit -v {limits.memory_bytes // 1024 * 2} 2>/dev/null || true")
        if limits.pids:
            steps.append(f"ulimit -u {limits.pids} 2>/dev/null || true")
    steps.append("exec " + " ".join(shlex.quote(a) for a in inner))
    return ["/bin/sh", "-c", " && ".join(steps)]
