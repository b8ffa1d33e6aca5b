"""The job engine: queue → admission → backend → end state, and reconciliation on start.

One asyncio task ticks (every `tick_seconds`, and at once after a submit or a halt):
  1. running jobs whose process ended are finished: status from the runtime's result,
     the log and output.zip registered as the job's files, outputs stored, the job token
     revoked, the owner notified on Slack;
  2. queued jobs are admitted by the scheduler (quota, capacity, FIFO, fairness) and
     launched; the others get their queue position and the reason they wait.
On start, running jobs are looked up in the backend: those still running are watched
again, those that ended meanwhile are finished. Nothing is lost and nothing runs twice.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import threading
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import object_session

from ..db.models import GitServer, Registry, Tenant, utcnow
from ..db.models_data import Data, DataSet
from ..db.models_jobs import Job, JobFile
from ..domain import job_status as st
from ..domain.datasets import DataSetManager
from ..domain import usage
from ..domain.git_models import local_path, repository_url
from ..domain.job_environment import effective_job_environment
from ..domain.ids import shown_job_ids
from ..domain.jobs import git_token
from ..domain.user_settings import registry_credential_for
from ..storage.factory import tenant_key
from ..storage.local import LocalObjectStore
from .launch import (JobResult, LaunchRequest, RegistryCredential, image_reference, kqi_mounts,
                     registry_server)
from .scheduler import Capacity, Quota, Request, admit, node_wait_note

OUTPUT_FOLDER = {"training": "TrainingContainerOutputFiles", "inference": "InferenceContainerOutputFiles",
                 "preprocessing": "PreprocContainerOutputFiles"}
ATTACH_FOLDER = {"training": "TrainingContainerAttachedFiles", "inference": "InferenceContainerAttachedFiles",
                 "preprocessing": "PreprocContainerAttachedFiles"}
ID_ENV = {"training": "TRAINING_ID", "inference": "INFERENCE_ID", "preprocessing": "PREPROCESSING_ID"}


def log_name(job: Job) -> str:
    return f"{job.kind}_stdout_stderr_{job.display_id}.log"  # (the id the tenant sees)


def _shown_parent_ids(job: Job) -> list[int]:
    """The parents' ids as the tenant sees them (PARENT_ID), from the job's session."""
    db = object_session(job)
    return shown_job_ids(db, job.parent_ids) if db is not None else list(job.parent_ids)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class JobEngine:
    def __init__(self, app, backend):
        self.app = app
        self.backend = backend
        self.log = app.log
        self.queue_info: dict[int, dict] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._launching = threading.Lock()  # starting a job and halting one never interleave
        self._task = None
        self.finish_hooks: list[Callable] = []  # (db, job) called after a job ended (e.g. preprocessing outputs)
        backend.on_exit = lambda key: self.wake()  # backends that know when a job ends say so at once

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        await self.run_in_thread(self.reconcile)
        while True:
            try:
                async with self._lock:
                    await self.run_in_thread(self.tick)
            except Exception:
                self.log.exception("The job engine's tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.app.job_tick_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    _loop = None

    def wake(self) -> None:
        """Tick at once; callable from the event loop and from worker threads (halt runs in one)."""
        loop = self._loop
        if loop is None:
            return
        try:
            in_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def run_in_thread(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self.app.io_executor, func, *args)

    def stop_all(self) -> None:
        """On a clean stop of the platform: end running jobs so that nothing keeps running."""
        if not self.backend.jobs_end_with_service:
            return
        with self.app.session_factory() as db:
            for job in db.scalars(select(Job).where(Job.status == st.RUNNING)).all():
                self.backend.halt(job.key)
                self._finish(db, job, JobResult(exit_code=None, message=None), forced=st.ERROR,
                             reason="the platform was stopped while the job ran")

    # ---------------------------------------------------------------- the tick
    def tick(self) -> None:
        with self.app.session_factory() as db:
            for job in db.scalars(select(Job).where(Job.status == st.RUNNING, Job.backend == self.backend.name)).all():
                result = self.backend.result(job.key)
                if result is not None:
                    self._finish(db, job, result)
                else:
                    note = self.backend.status_note(job.key)
                    if note != job.status_reason:
                        job.status_reason = note
                        db.commit()
                    placement = getattr(self.backend, "placement", None)  # the node a pod landed on
                    node = placement(job.key) if placement is not None else None
                    if node and node != job.node:
                        job.node = node
                        usage.set_node(db, job.kind, job.id, node)
                        db.commit()
            self._admit(db)

    def _admit(self, db) -> None:
        """Start what fits. Reads only what admission needs (ids, tenants, sizes, queue order) of
        the Queued and Running jobs, through the (status, id) index, whatever number of finished
        jobs the table holds; a job's whole row is read only when it starts."""
        needs = (Job.id, Job.tenant_id, Job.cpu, Job.memory, Job.gpu, Job.queued_at, Job.partition)
        queued = db.execute(select(*needs).where(Job.status == st.QUEUED)).all()
        if not queued:
            self.queue_info = {}
            return
        running = db.execute(select(*needs, Job.node).where(Job.status == st.RUNNING)).all()
        tenant_ids = {j.tenant_id for j in queued} | {j.tenant_id for j in running}
        tenants = {t.id: t for t in db.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids))).all()}

        def request(job):
            return Request(job.id, tenants[job.tenant_id].name, job.cpu, job.memory, job.gpu,
                           (job.queued_at, job.id), job.partition or None)

        from ..domain.resources import node_rooms, wait_advices  # the nodes a capacity wait names
        by_name = {t.name: t for t in tenants.values()}
        rooms_of: dict = {}  # read only when a job waits for capacity, once per tenant

        def node_note(req: Request) -> str | None:
            tenant = by_name[req.tenant]
            if tenant.id not in rooms_of:
                rooms_of[tenant.id] = node_rooms(db, self.backend, tenant, running)
            return node_wait_note(req.cpu, req.memory, req.gpu, rooms_of[tenant.id], req.partition)

        quotas = {t.name: Quota(t.limit_cpu, t.limit_memory, t.limit_gpu) for t in tenants.values()}
        capacity = Capacity(self.backend.capacity_cpu, self.backend.capacity_memory_gib, self.backend.capacity_gpu)
        decision = admit([request(j) for j in queued], [request(j) for j in running], quotas, capacity,
                         node_note)
        self.queue_info = {job_id: {"position": pos, "reason": reason}
                           for job_id, (pos, reason) in decision.waiting.items()}
        for job_id, advice in wait_advices(decision.waiting, queued, running, tenants, capacity).items():
            self.queue_info[job_id]["advice"] = advice
        for job_id in decision.start:
            job = db.get(Job, job_id)
            if job is not None:
                self._launch(db, job, tenants[job.tenant_id])

    # ---------------------------------------------------------------- launching
    def _launch(self, db, job: Job, tenant: Tenant) -> None:
        with self._launching:  # a halt waits until the job is either still queued or really started
            self._launch_one(db, job, tenant)

    def _launch_one(self, db, job: Job, tenant: Tenant) -> None:
        try:
            request = self._launch_request(db, job, tenant)
            token = f"kqi-job.{job.id}.{secrets.token_urlsafe(24)}"
            request.secret_env["KQI_TOKEN"] = token
            # claimed only while still queued: a halt that came in meanwhile wins, nothing starts
            claimed = db.execute(
                update(Job).where(Job.id == job.id, Job.status == st.QUEUED)
                .values(status=st.RUNNING, token_hash=token_hash(token), started_at=utcnow(),
                        backend=self.backend.name, node=os.uname().nodename)
                .execution_options(synchronize_session=False)).rowcount
            db.commit()
            if not claimed:
                db.refresh(job)
                return
            db.refresh(job)
            job.backend_ref = self.backend.launch(request)
            usage.job_started(db, job, tenant)  # the usage ledger's run, from now until it ends
            db.commit()
            self.log.info("Started %s for %s in tenant %s", job.key, job.created_by, tenant.name)
        except Exception as e:
            db.rollback()
            self.log.exception("Could not start %s", job.key)
            job = db.get(Job, job.id)
            job.status = st.ERROR
            job.status_reason = f"the job could not be started: {e}"
            job.completed_at = utcnow()
            job.token_hash = None
            usage.job_ended(db, job)
            db.commit()

    def _launch_request(self, db, job: Job, tenant: Tenant) -> LaunchRequest:
        app = self.app
        store = app.stores.for_tenant(tenant)
        local = isinstance(store, LocalObjectStore)
        tenant_root = os.path.join(store.root, *tenant.storage_path.split("/")) if local else None
        job_dir = self.backend.job_dir(job.key)
        if local:
            output_dir = os.path.join(tenant_root, OUTPUT_FOLDER[job.kind], str(job.id))
            attach_dir = os.path.join(tenant_root, ATTACH_FOLDER[job.kind], str(job.id))
        else:
            output_dir = os.path.join(job_dir, "output")
            attach_dir = os.path.join(job_dir, "attach")

        # mounted at /kqi/parent/<id> and /kqi/inference/<id> by the ids the tenant sees
        parent_dirs, inference_dirs = {}, {}
        for parent_id in job.parent_ids:
            parent = db.get(Job, parent_id)
            parent_dirs[parent.display_id] = self._output_dir_for_mount(store, tenant, parent, job_dir)
        for inference_id in (job.extra or {}).get("inferenceIds", []):
            parent = db.get(Job, inference_id)
            inference_dirs[parent.display_id] = self._output_dir_for_mount(store, tenant, parent, job_dir)

        spec = {"kind": job.kind, "id": job.id, "entryPoint": job.entry_point, "zip": job.zip,
                "logName": log_name(job), "datasetId": job.dataset_id, "env": {},
                "tools": ["git", "zip", "pip", "kqi"]}
        extra_mounts = []
        git_env, secret_env = {}, {}
        if job.git_id:
            server = db.get(GitServer, job.git_id)
            url = repository_url(server, job.repository_owner, job.repository_name, tenant=tenant.name)
            token = git_token(db, job.created_by, server.id, app.secret_box)
            spec["git"] = {"url": url, "commit": job.commit_id, "token": token}
            path = local_path(url)
            if path:
                extra_mounts.append(path)
            git_env = {"MODEL_REPOSITORY": url, "MODEL_REPOSITORY_URL": url, "COMMIT_ID": job.commit_id or ""}
            if token:
                secret_env["MODEL_REPOSITORY_TOKEN"] = token
        pairs = None
        if job.dataset_id:
            pairs = DataSetManager(db, tenant).path_pairs(dataset=db.get(DataSet, job.dataset_id))
        elif job.kind == "preprocessing":
            # the input data, flat: /kqi/input/<dataId>/<file>
            data = db.get(Data, job.extra["dataId"])
            pairs = [{"dataPath": f"{data.id}/{f.file_name}", "storedPath": f.stored_path} for f in data.files]
            spec["dataId"] = data.id
        if pairs is not None:
            method = "copy" if job.local_dataset else "symlink"
            spec["dataset"] = {"method": method, "pairs": pairs, "rawDir": "/kqi/raw"}
            if not local:
                spec["dataset"]["method"] = "copy"  # no data mount: files are fetched
                spec["dataset"]["urls"] = {
                    p["storedPath"]: store.download_url(tenant_key(tenant, p["storedPath"]), "f", "",
                                                        app.download_url_expiry_seconds)
                    for p in pairs}
        job_environment = effective_job_environment(db, tenant)
        env = self.environment(job, tenant, git_env, job_environment.env)
        raw_data_dir = os.path.join(tenant_root, "Data") if local else None
        mounts = kqi_mounts(output_dir=output_dir, attach_dir=attach_dir,
                            raw_data_dir=raw_data_dir if raw_data_dir and os.path.isdir(raw_data_dir) else None,
                            parent_dirs=parent_dirs, inference_dirs=inference_dirs, extra_ro_paths=extra_mounts)
        image, registry = self.image_for(db, job)
        return LaunchRequest(
            key=job.key, kind=job.kind, job_id=job.id, tenant=tenant.name, user=job.created_by or "",
            image=image, spec=spec, env=env, secret_env=secret_env, cpu=job.cpu, memory_gib=job.memory,
            gpu=int(job.gpu or 0), partition=job.partition or None, registry=registry, mounts=mounts,
            network=job_environment.network, ports=list(job.ports or []),
        )

    def image_for(self, db, job: Job) -> tuple[str | None, RegistryCredential | None]:
        """The job's image as KAMONOHASHI names it (registry + image + tag), and the owner's credential."""
        if not job.image:
            return None, None
        registry = db.get(Registry, job.registry_id) if job.registry_id else None
        server = registry_server(registry.host, registry.port_no) if registry else None
        credential = None
        if registry is not None:
            found = registry_credential_for(db, self.app.secret_box, job.created_by, registry.id)
            if found is not None:
                credential = RegistryCredential(server=server, username=found[0], password=found[1])
        return image_reference(server, job.image, job.tag), credential

    def _output_dir_for_mount(self, store, tenant, parent: Job, job_dir: str) -> str:
        folder = f"{OUTPUT_FOLDER[parent.kind]}/{parent.id}"
        if isinstance(store, LocalObjectStore):
            return os.path.join(store.root, *tenant.storage_path.split("/"), *folder.split("/"))
        target = os.path.join(job_dir, "parents", str(parent.id))
        prefix = tenant_key(tenant, folder) + "/"
        for info in store.list(prefix):
            path = os.path.join(target, *info.key[len(prefix):].split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                for chunk in store.read(info.key):
                    f.write(chunk)
        os.makedirs(target, exist_ok=True)
        return target

    def environment(self, job: Job, tenant: Tenant, git_env: dict, platform_env: dict) -> dict:
        """The job's plain variables: the job environment setting's, the user's, then the guide's."""
        app = self.app
        env = {"COLUMNS": "120"}
        env.update(platform_env)  # a company's package index or proxy (the job environment setting)
        env["HOME"] = "/kqi/home"  # (the runtime writes the kqi CLI's configuration there)
        env.update(job.options or {})  # the user's values (reserved names were refused at submit)
        if job.kind == "preprocessing":
            env.update({"DATA_ID": str(job.extra.get("dataId", "")), "DATA_NAME": job.extra.get("dataName", ""),
                        "PREPROCESSING_ID": str(job.extra.get("preprocessId", ""))})
        env.update({
            "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "true",
            ID_ENV[job.kind]: str(job.extra.get("preprocessId", job.display_id)) if job.kind == "preprocessing"
            else str(job.display_id),  # the id the API shows and takes (kqi training complete $TRAINING_ID)
            "DATASET_ID": str(job.dataset_id or ""),
            "PARENT_ID": ",".join(str(i) for i in _shown_parent_ids(job)),
            "KQI_SERVER": app.public_url.rstrip("/") + app.service_prefix.rstrip("/"),
            "KQI_VERSION": app.version,
            "ENTRY_POINT": job.entry_point or "",
            "ZIP_FILE_CREATED": str(bool(job.zip)).lower(),
            "LOCAL_DATASET": str(bool(job.local_dataset)).lower(),
            "TENANT_NAME": tenant.name,
            **git_env,
        })
        return env

    # ---------------------------------------------------------------- ending
    def _finish(self, db, job: Job, result: JobResult, forced: str | None = None, reason: str | None = None):
        if job.status not in st.ACTIVE:
            return
        if forced:
            status = forced
        elif result.exit_code == 0:
            status, reason = st.COMPLETED, None
        elif result.exit_code is not None:
            status = st.FAILED
            reason = f"the command exited with status {result.exit_code}"
            if result.oom_killed:
                reason += " (killed for using more memory than its limit: OOMKilled)"
        elif result.message and "ended without a result" not in result.message:
            status, reason = st.FAILED, result.message
        else:
            status = st.ERROR
            reason = result.message or "the job ended without a result"
            if result.oom_killed:
                reason += " (OOMKilled)"
        st.check_move(job.status, status)
        tenant = db.get(Tenant, job.tenant_id)
        try:
            self._store_outputs(db, job, tenant)
        except Exception as e:
            self.log.exception("Storing the outputs of %s failed", job.key)
            if status == st.COMPLETED:
                status, reason = st.ERROR, f"the outputs could not be stored: {e}"
        completed_at = utcnow()

        def end_state():
            job.status, job.status_reason, job.exit_code = status, reason, result.exit_code
            job.completed_at, job.token_hash = completed_at, None

        end_state()
        # the hooks (a preprocessing's outputs becoming data) commit with the end state: no one sees
        # the job ended before what it made exists
        for hook in self.finish_hooks:
            try:
                hook(db, job)
            except Exception:
                self.log.exception("A finish hook failed for %s", job.key)
                db.rollback()
                try:  # the job's own files again (they are in the store: registering is idempotent)
                    self._store_outputs(db, job, tenant)
                except Exception:
                    self.log.exception("Registering the files of %s failed", job.key)
                end_state()
        usage.job_ended(db, job, result)  # the ledger's run ends (at the container's own times when known)
        db.commit()
        self.backend.cleanup(job.key)
        self.log.info("%s ended: %s%s", job.key, job.status, f" ({job.status_reason})" if job.status_reason else "")
        self.app.notify_job_end(job, tenant)

    def _store_outputs(self, db, job: Job, tenant: Tenant) -> None:
        store = self.app.stores.for_tenant(tenant)
        attach_prefix = f"{ATTACH_FOLDER[job.kind]}/{job.id}"
        if not isinstance(store, LocalObjectStore):
            job_dir = self.backend.job_dir(job.key)
            for folder, prefix in (("output", f"{OUTPUT_FOLDER[job.kind]}/{job.id}"), ("attach", attach_prefix)):
                base = os.path.join(job_dir, folder)
                for dirpath, _dirs, files in os.walk(base):
                    for name in files:
                        full = os.path.join(dirpath, name)
                        if os.path.islink(full):
                            continue  # a link left by the job: never upload what it points at
                        rel = os.path.relpath(full, base).replace(os.sep, "/")
                        with open(full, "rb") as f:
                            store.write(tenant_key(tenant, f"{prefix}/{rel}"), iter(lambda: f.read(1 << 20), b""))
        existing = {f.file_name for f in job.files}
        for name in (log_name(job), "output.zip"):
            info = store.stat(tenant_key(tenant, f"{attach_prefix}/{name}"))
            if info is not None and name not in existing:
                db.add(JobFile(job_id=job.id, file_name=name, stored_path=f"{attach_prefix}/{name}",
                               size=info.size, is_locked=True, created_by="system"))
        if not isinstance(store, LocalObjectStore):
            shutil.rmtree(self.backend.job_dir(job.key), ignore_errors=True)

    # ---------------------------------------------------------------- user actions
    def halt(self, db, job: Job, status: str = st.KILLED, reason: str = "halted by the user") -> None:
        with self._launching:
            db.refresh(job)  # it may have been started meanwhile
            self._halt(db, job, status, reason)
        self.wake()

    def _halt(self, db, job: Job, status: str, reason: str) -> None:
        if job.status == st.QUEUED:
            job.status, job.status_reason, job.completed_at = status, reason, utcnow()
            db.commit()
        elif job.status == st.RUNNING:
            self.backend.halt(job.key)
            result = self.backend.result(job.key) or JobResult(exit_code=None, message=None)
            self._finish(db, job, result, forced=status, reason=reason)

    def reconcile(self) -> None:
        with self.app.session_factory() as db:
            running = db.scalars(select(Job).where(Job.status == st.RUNNING)).all()
            self.backend.remove_orphans({job.key for job in running if job.backend == self.backend.name})
            for job in running:
                if job.backend != self.backend.name:
                    continue
                if self.backend.is_running(job.key):
                    self.log.info("%s is still running: watching it again", job.key)
                else:
                    result = self.backend.result(job.key)
                    self._finish(db, job, result or JobResult(None, "the job's process ended without a result"))

    def job_for_token(self, db, token: str) -> Job | None:
        try:
            _, job_id, _ = token.split(".", 2)
            job = db.get(Job, int(job_id))
        except (ValueError, TypeError):
            return None
        if job is None or not job.token_hash or job.status != st.RUNNING:
            return None
        return job if secrets.compare_digest(job.token_hash, token_hash(token)) else None
