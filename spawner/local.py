"""The local twin: a KQI notebook as a process in a bubblewrap sandbox on this machine.

Same sandbox as local jobs (kqi_services/jobs/sandbox.py): the host read-only, /kqi built
from bind mounts, the platform's data directory hidden. Folders of a notebook live in
<notebooks dir>/<user>/<server>/: input, git and tmp are made anew at every start (as
the guide says, only /kqi/output is kept); output is the persistent home unless the kqi
service's plan names the tenant's store folder for it. The server runs under `timeout`,
so it ends when its lifetime does even while the hub is down.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from subprocess import Popen

from jupyterhub.spawner import SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Unicode

from kqi_services.domain import layout as layout_module
from kqi_services.jobs.sandbox import CgroupLimiter, Limits, Mount, SandboxSpec, bwrap_args, launcher_command
from kqi_services.runtime import kqi_runtime

from .base import KqiSpawnerMixin


class KqiLocalSpawner(KqiSpawnerMixin, SimpleLocalProcessSpawner):
    notebooks_dir = Unicode(
        help="Folder of the notebooks' own folders (<dir>/<user>/<server>/...). Default: <KQI_DATA_DIR>/notebooks.",
    ).tag(config=True)

    hidden_dir = Unicode(
        help="A host folder the notebook must not see (the platform's data directory). Default: KQI_DATA_DIR.",
    ).tag(config=True)

    def _data_dir(self) -> str:
        return os.path.abspath(os.environ.get("KQI_DATA_DIR") or "kqi-data")

    @property
    def folder(self) -> str:
        base = self.notebooks_dir or os.path.join(self._data_dir(), "notebooks")
        return os.path.join(base, self.user.name, self.name or "default")

    # ------------------------------------------------------------------ state
    def get_state(self):
        return self.kqi_state(super().get_state())

    def load_state(self, state):
        super().load_state(state)
        self.load_kqi_state(state)

    def clear_state(self):
        super().clear_state()
        self.clear_kqi_state()

    # ------------------------------------------------------------------ start
    def _mounts(self) -> list[Mount]:
        o, plan = self.kqi_options, self.kqi_options.plan
        folder = self.folder
        for sub in ("input", "git", "tmp"):  # made anew at every start
            shutil.rmtree(os.path.join(folder, sub), ignore_errors=True)
            os.makedirs(os.path.join(folder, sub))
        output = plan.get("outputDir") or os.path.join(folder, "output")
        os.makedirs(output, exist_ok=True)
        runtime = os.path.join(folder, "runtime")
        os.makedirs(runtime, exist_ok=True)
        shutil.copy(kqi_runtime.__file__, os.path.join(runtime, "kqi_runtime.py"))
        shutil.copy(layout_module.__file__, os.path.join(runtime, "layout.py"))
        mounts = [
            Mount(os.path.join(folder, "input"), "/kqi/input", writable=True),
            Mount(os.path.join(folder, "git"), "/kqi/git", writable=True),
            Mount(os.path.join(folder, "tmp"), "/kqi/tmp", writable=True),
            Mount(output, "/kqi/output", writable=True),
            Mount(runtime, "/kqi/runtime"),
        ]
        if plan.get("rawDataDir") and os.path.isdir(plan["rawDataDir"]):
            mounts.append(Mount(plan["rawDataDir"], "/kqi/raw/Data"))
        parents = plan.get("parentDirs") or {}
        if len(parents) == 1:
            (only,) = parents.values()
            os.makedirs(only, exist_ok=True)
            mounts.append(Mount(only, "/kqi/parent"))
        else:
            for parent_id, d in parents.items():
                os.makedirs(d, exist_ok=True)
                mounts.append(Mount(d, f"/kqi/parent/{parent_id}"))
        for inference_id, d in (plan.get("inferenceDirs") or {}).items():
            os.makedirs(d, exist_ok=True)
            mounts.append(Mount(d, f"/kqi/inference/{inference_id}"))
        git = plan.get("git") or {}
        if git.get("url", "").startswith("file://"):
            path = git["url"][len("file://"):]
            mounts.append(Mount(path, path))
        return mounts

    async def start(self):
        self.load_kqi_options()
        if self.port == 0:
            self.port = random_port()
        remaining = self.start_lifetime()
        if remaining is not None and self.expired():
            raise ValueError("The notebook's lifetime has ended: start it again with a new lifetime.")
        env = self.get_env()
        env.update(self.kqi_env())
        env["HOME"] = "/kqi/output"
        server = self.cmd + self.get_args() + ["--notebook-dir=/kqi/output"]
        spec = self.notebook_spec(server, python=sys.executable)
        mounts = self._mounts()
        with open(os.path.join(self.folder, "tmp", "spec.json"), "w") as f:
            json.dump(spec, f)
        sandbox = SandboxSpec(
            mounts=mounts, env=env, cwd="/kqi",
            command=[sys.executable, "/kqi/runtime/kqi_runtime.py", "/kqi/tmp/spec.json"],
            hide=[self.hidden_dir or self._data_dir()],
        )
        inner = bwrap_args(sandbox)
        # /input, /git, /parent, /inference at the root, as the guide lists them
        at = inner.index("--dir")
        links = []
        for name in ("input", "git", "parent", "inference"):
            links += ["--symlink", f"/kqi/{name}", f"/{name}"]
        inner = inner[:at] + links + inner[at:]
        if remaining is not None:
            inner = ["timeout", "--signal=TERM", "--kill-after=10", str(int(remaining) + 1)] + inner
        limits = Limits(cpu=self.kqi_options.cpu, memory_bytes=int(self.kqi_options.memory * 1024**3))
        limiter = CgroupLimiter(group_prefix="kqi-notebooks")
        group = f"{self.user.name}-{self.name or 'default'}"
        procs = limiter.create(group, limits) if limiter.version else []
        command = launcher_command(procs, limits, inner)
        self.log.info("Starting KQI notebook %s/%s (lifetime %s)", self.user.name, self.name,
                      f"{int(remaining)} s" if remaining else "unlimited")
        log = open(os.path.join(self.folder, "server.log"), "ab")
        self.proc = Popen(command, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, stdout=log,
                          stderr=log, start_new_session=True, close_fds=True)
        log.close()
        self.pid = self.proc.pid
        ip = self.ip or "127.0.0.1"
        await self._wait_listening(ip)
        return (ip, self.port)

    async def _wait_listening(self, ip: str) -> None:
        """Return once the server listens; fail with the runtime's reason when it ends first.

        The hub only looks for the server after start() returns and, while it waits, does not see
        a process that ended (a failed clone, a lifetime that ran out): it would wait for its whole
        http_timeout. Looking here also tells the hub the server is up as soon as it is.
        """
        while True:
            code = self.proc.poll()
            if code is not None:
                why = self._failure() or f"exit status {code}"
                if self.expired():
                    why = "its lifetime ended while it started"
                error = RuntimeError(f"The notebook {self.name} stopped while starting: {why}")
                error.jupyterhub_message = str(error)  # what the hub's API answers
                raise error
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, self.port), 2)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    def _failure(self) -> str | None:
        """The runtime's last "failed: ..." line (a step that failed), if any."""
        try:
            with open(os.path.join(self.folder, "tmp", "notebook.log"), errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        failed = [line.split("] ", 1)[-1] for line in lines if "] failed: " in line]
        return failed[-1][len("failed: "):] if failed else None

    async def poll(self):
        status = await super().poll()
        if status is None and self.expired():
            self.log.info("KQI notebook %s/%s reached the end of its lifetime", self.user.name, self.name)
            await super().stop(now=True)
            return 0
        return status

    async def stop(self, now=False):
        await super().stop(now=now)
        CgroupLimiter(group_prefix="kqi-notebooks").remove(f"{self.user.name}-{self.name or 'default'}")
