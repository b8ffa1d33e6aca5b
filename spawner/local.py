"""The local twin: a KQI notebook as a podman container of the requested image on this machine.

Same launch contract and container rules as local jobs (kqi_services/jobs/launch.py and
podman.py): the image the user asked for (the spawner's default otherwise), root in a user
namespace with the least capabilities, /kqi from the one mount plan, the runtime's
notebook mode (JupyterLab installed into the container when the image lacks it). The
container uses the host's network (the job environment setting may say otherwise), so the
server listens on a loopback port that the hub's proxy reaches. The hub's API token for the
server is a secret variable: it never appears on a command line.

Folders of a notebook live in <notebooks dir>/<user>/<server>/: input, git and tmp are made
anew at every start (as the guide says, only /kqi/output is kept); output is the persistent
home unless the kqi service's plan names the tenant's store folder for it. The container
runs with podman's --timeout, so it ends when its lifetime does even while the hub is down.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from importlib.metadata import version

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Unicode, default

from kqi_services.jobs.launch import SCRATCH, LaunchRequest, Mount, kqi_mounts, scratch_name
from kqi_services.jobs.podman import NOTEBOOK_NAME, PodmanBackend, platform_tag

from .base import LAB_ARGS, KqiSpawnerMixin, lab_env

#: variables of the hub's environment for the server that are credentials
SECRET_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_OAUTH_CLIENT_SECRET")


def container_safe(name: str) -> str:
    """A user name as container names allow it ([a-zA-Z0-9_.-]), told apart by a hash when changed."""
    import hashlib
    import re

    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", name)
    return safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


class KqiLocalSpawner(KqiSpawnerMixin, Spawner):
    notebooks_dir = Unicode(
        help="Folder of the notebooks' own folders (<dir>/<user>/<server>/...). Default: <KQI_DATA_DIR>/notebooks.",
    ).tag(config=True)

    key: str | None = None

    @default("env_keep")
    def _env_keep_default(self):
        return []  # the hub's PATH, PYTHONPATH or VIRTUAL_ENV mean nothing in the notebook's image

    def _data_dir(self) -> str:
        return os.path.abspath(os.environ.get("KQI_DATA_DIR") or "kqi-data")

    @property
    def base_dir(self) -> str:
        return self.notebooks_dir or os.path.join(self._data_dir(), "notebooks")

    @property
    def folder(self) -> str:
        return os.path.join(self.base_dir, self.user.name, self.name or "default")

    @property
    def containers(self) -> PodmanBackend:
        """The podman runner, with c.PodmanBackend settings (shared with local jobs)."""
        if getattr(self, "_containers", None) is None:
            root = os.path.join(self.base_dir, self.user.name)
            tag = platform_tag(self._data_dir())
            prefix = f"kqi-{tag}-{NOTEBOOK_NAME}{container_safe(self.user.name)}-"
            self._containers = PodmanBackend(root, tag, name_prefix=prefix, parent=self, log=self.log)
        return self._containers

    def container_key(self) -> str:
        return self.name or "default"

    # ------------------------------------------------------------------ state
    def get_state(self):
        state = self.kqi_state(super().get_state())
        if self.key:
            state["kqi_key"] = self.key
        return state

    def load_state(self, state):
        super().load_state(state)
        self.load_kqi_state(state)
        self.key = state.get("kqi_key")

    def clear_state(self):
        super().clear_state()
        self.clear_kqi_state()
        self.key = None

    # ------------------------------------------------------------------ start
    def launch_request(self, port: int, remaining: float | None) -> LaunchRequest:
        o, plan = self.kqi_options, self.kqi_options.plan
        env = self.get_env()
        env.update(self.kqi_env())
        env["HOME"] = "/kqi/output"
        environment = plan.get("environment") or {}
        env = {**(environment.get("env") or {}), **env}
        # the lab extension: its package and front-end bound read-only (nothing to install, no network
        # needed, and the same files as the hub's, whatever Python the image has)
        lab_binds = self.lab_binds()
        if lab_binds:
            env = {**lab_env(), **env}
        secret_env = {name: env.pop(name) for name in SECRET_ENV if name in env}
        git = plan.get("git") or {}
        extra = [git["url"][len("file://"):]] if git.get("url", "").startswith("file://") else []
        mounts = kqi_mounts(
            output_dir=plan.get("outputDir") or os.path.join(self.folder, "output"),
            raw_data_dir=plan["rawDataDir"] if plan.get("rawDataDir") and os.path.isdir(plan["rawDataDir"]) else None,
            parent_dirs={int(k): v for k, v in (plan.get("parentDirs") or {}).items()},
            inference_dirs={int(k): v for k, v in (plan.get("inferenceDirs") or {}).items()},
            extra_ro_paths=extra, home=False)
        mounts += [Mount(target, source=source) for source, target in lab_binds]
        server = self.cmd + self.get_args() + (list(LAB_ARGS) if lab_binds else []) + ["--allow-root", f"--port={port}", "--ip=127.0.0.1", "--notebook-dir=/kqi/output"]
        spec = self.notebook_spec(server)
        spec["jupyterhubVersion"] = version("jupyterhub")  # the singleuser server speaks to this hub
        return LaunchRequest(
            key=self.container_key(), kind="notebook", job_id=o.notebook_id or 0, tenant="", user=self.user.name,
            image=o.image or self.default_image, spec=spec, env=env,
            secret_env=secret_env, cpu=o.cpu, memory_gib=o.memory, gpu=o.gpu, mounts=mounts,
            network=environment.get("network") or "host",
            timeout_seconds=int(remaining) + 1 if remaining is not None else None,
        )

    async def start(self):
        self.take_admission()  # only the start the hub admitted (the kqi service's plan), once
        self.load_kqi_options()
        remaining = self.start_lifetime()
        if remaining is not None and self.expired():
            raise ValueError("The notebook's lifetime has ended: start it again with a new lifetime.")
        self.port = random_port()
        req = self.launch_request(self.port, remaining)
        folder = self.folder
        for m in req.mounts:  # made anew at every start: only /kqi/output is kept
            if m.kind == SCRATCH:
                shutil.rmtree(os.path.join(folder, scratch_name(m.target)), ignore_errors=True)
        self.key = req.key
        self.log.info("Starting KQI notebook %s/%s in %s (lifetime %s)", self.user.name, self.name,
                      req.image, f"{int(remaining)} s" if remaining else "unlimited")
        await asyncio.get_running_loop().run_in_executor(None, self.containers.launch, req)
        await self._wait_listening("127.0.0.1")
        return ("127.0.0.1", self.port)

    async def _wait_listening(self, ip: str) -> None:
        """Return once the server listens; fail with the runtime's reason when it ends first.

        The hub only looks for the server after start() returns and, while it waits, does not see
        a container that ended (a failed clone, a lifetime that ran out): it would wait for its whole
        http_timeout. Looking here also tells the hub the server is up as soon as it is.
        """
        loop = asyncio.get_running_loop()
        while True:
            running = await loop.run_in_executor(None, self.containers.is_running, self.key)
            if not running:
                result = await loop.run_in_executor(None, self.containers.result, self.key)
                why = self._failure() or (result.message if result and result.message else "the container ended")
                if self.expired():
                    why = "its lifetime ended while it started"
                error = RuntimeError(f"The notebook {self.name} stopped while starting: {why}")
                error.jupyterhub_message = str(error)  # what the hub's API answers
                raise error
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, self.port), 2)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
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
        if not self.key:
            return 0
        running = await asyncio.get_running_loop().run_in_executor(None, self.containers.is_running, self.key)
        if running and self.expired():
            self.log.info("KQI notebook %s/%s reached the end of its lifetime", self.user.name, self.name)
            await self.stop(now=True)
            return 0
        return None if running else 0

    async def stop(self, now=False):
        if not self.key:
            return
        key = self.key

        def end():
            self.containers.halt(key)
            self.containers.cleanup(key)

        await asyncio.get_running_loop().run_in_executor(None, end)
