"""TensorBoard over a training's output (the guide's "TensorBoard の起動").

One TensorBoard per training at most, started by a member of its tenant over the training's
`/kqi/output` and, when asked, the outputs of other trainings of the same tenant
(`--logdir_spec <id>:/kqi/logs/<id>,...`, every folder read-only). It runs as a container
through the same launch contract as jobs (a LaunchRequest of kind "tensorboard", rendered by
the job backend: `podman run` locally), its server bound to 127.0.0.1 on a port the service
chose, and is reached only through the authenticated proxy at
`/services/kqi/proxy/tensorboard/<trainingId>/` (TensorBoard's --path_prefix).

It ends by itself when its time runs out: the container carries its own deadline (podman's
--timeout: conmon ends it with or without the service), and the service clears the record
(the training's `extra["tensorboard"]`) at start and on a timer, so a restart loses nothing.
The record's port is also the training's `tensorboard_port` column, set and cleared with the
record (set_state): every TensorBoard is found through that column's index, not by reading
every training's `extra`.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import object_session
from traitlets import Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from .db.models import Tenant
from .db.models_jobs import Job
from .domain.ids import find_job, shown_job_ids
from .domain.validation import NotFoundError, ValidationError
from .jobs.launch import BIND, RUNTIME, RUNTIME_DIR, SCRATCH, LaunchRequest, Mount

KEY_PREFIX = "tensorboard-"
STATE = "tensorboard"  # the key of a training's extra that holds its TensorBoard
LOG_ROOT = "/kqi/logs"


def set_state(job: Job, state: dict | None) -> None:
    """Record (or, with None, clear) the training's TensorBoard: its `extra["tensorboard"]` and its
    indexed `tensorboard_port` together (the only writer of either)."""
    extra = {k: v for k, v in (job.extra or {}).items() if k != STATE}
    if state is not None:
        extra[STATE] = state
    job.extra = extra
    job.tensorboard_port = None if state is None else int(state["port"])


def with_tensorboard():
    """The jobs that have a TensorBoard: a read of the partial index ix_jobs_tensorboard_port only
    (no other condition, no ORDER BY id, either of which SQLite's planner may answer with a
    scan of the table instead). Only trainings ever have one."""
    return select(Job).where(Job.tensorboard_port.is_not(None))


def taken_ports(db) -> set[int]:
    """The ports TensorBoards hold (from the index alone)."""
    return set(db.scalars(select(Job.tensorboard_port).where(Job.tensorboard_port.is_not(None))))


def tensorboard_key(training_id: int) -> str:
    return f"{KEY_PREFIX}{training_id}"


def proxy_prefix(service_prefix: str, training_id: int) -> str:
    return f"{service_prefix.rstrip('/')}/proxy/tensorboard/{training_id}/"


def tensorboard_command(training_ids: list[int], port: int, path_prefix: str, host: str = "127.0.0.1") -> list[str]:
    """The TensorBoard server's command line (pure). Locally it listens on the loopback only (no
    --bind_all); in a Kubernetes pod on the pod's address, behind its ClusterIP Service."""
    spec = ",".join(f"{i}:{LOG_ROOT}/{i}" for i in training_ids)
    return ["tensorboard", "--logdir_spec", spec, "--host", host, "--port", str(port),
            "--path_prefix", path_prefix.rstrip("/"), "--reload_interval", "5"]


def tensorboard_request(*, training_id: int, tenant: str, user: str, image: str, log_dirs: dict[int, str],
                        port: int, expires: int, path_prefix: str, host: str = "127.0.0.1", cpu: float = 1.0,
                        memory_gib: float = 2.0) -> LaunchRequest:
    """The launch request of a TensorBoard (pure): the runtime's serve mode runs the server; the
    first of `log_dirs` is the training's own output; the container ends after `expires` seconds."""
    ids = list(log_dirs)
    return LaunchRequest(
        key=tensorboard_key(training_id), kind="tensorboard", job_id=training_id, tenant=tenant, user=user,
        image=image, spec={"mode": "serve", "kind": "tensorboard", "id": training_id,
                           "serverCommand": tensorboard_command(ids, port, path_prefix, host)},
        env={"HOME": "/kqi/tmp", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        cpu=cpu, memory_gib=memory_gib, mounts=tensorboard_mounts(log_dirs),
        network="host", ports=[port], timeout_seconds=int(expires),
    )


def tensorboard_mounts(log_dirs: dict[int, str]) -> list[Mount]:
    """What a TensorBoard container sees: its scratch /kqi/tmp, the runtime, each log folder read-only."""
    mounts = [Mount("/kqi/tmp", kind=SCRATCH, writable=True), Mount(RUNTIME_DIR, kind=RUNTIME)]
    for training_id, path in sorted(log_dirs.items()):
        mounts.append(Mount(f"{LOG_ROOT}/{training_id}", path, writable=False, kind=BIND))
    return mounts


def free_port(taken: set[int] = frozenset()) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port
    raise RuntimeError("no free port for a TensorBoard")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class TensorBoards(LoggingConfigurable):
    """Starts, lists, stops and expires TensorBoards (config: c.TensorBoards.*)."""

    image = Unicode(
        help="Image TensorBoards run in: it must have the `tensorboard` command (TensorFlow is not needed)."
        " Default: KQI_TENSORBOARD_IMAGE, else docker.io/tensorflow/tensorflow:2.18.0.",
    ).tag(config=True)

    @default("image")
    def _image_default(self):
        return os.environ.get("KQI_TENSORBOARD_IMAGE") or "docker.io/tensorflow/tensorflow:2.18.0"

    cpu = Float(1.0, help="CPU cores of a TensorBoard container.").tag(config=True)
    memory_gib = Float(2.0, help="Memory (GiB) of a TensorBoard container.").tag(config=True)
    default_expires_seconds = Integer(
        3 * 3600, help="How long a TensorBoard runs when the request names no time (KAMONOHASHI: 3 hours)."
    ).tag(config=True)
    max_expires_seconds = Integer(
        7 * 24 * 3600, help="The longest a TensorBoard may be asked to run."
    ).tag(config=True)
    reconcile_seconds = Float(
        15.0, help="How often ended and expired TensorBoards are looked for (also at every start)."
    ).tag(config=True)

    def __init__(self, app, **kwargs):
        super().__init__(parent=app, log=app.log, **kwargs)
        self.app = app
        self._lock = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    def _lock_for(self, training_id: int) -> threading.Lock:
        """Serializes starting and stopping one training's TensorBoard (two PUTs at once, a PUT and the
        reconciler)."""
        with self._lock:
            return self._locks.setdefault(training_id, threading.Lock())

    @property
    def backend(self):
        return self.app.jobs.backend

    # ---------------------------------------------------------------- views
    def host(self, training_id: int) -> str:
        address = getattr(self.backend, "port_host", None)
        return address(tensorboard_key(training_id)) if address is not None else "127.0.0.1"

    def view(self, job: Job) -> dict:
        """KAMONOHASHI's TensorBoard model of a training (status "None" when it has none)."""
        state = (job.extra or {}).get(STATE)
        if not state:
            return {"name": None, "status": "None", "statusType": "None", "nodePort": None, "remainingTime": None,
                    "mountedTrainingHistoryIds": [], "url": None, "expiresAt": None, "startedAt": None,
                    "startedBy": None}
        running = self.backend.is_running(state["key"])
        if running and _answers(self.host(job.id), state["port"]):
            status = "Running"
        elif running:
            status = "Pending"
        else:
            status = "Error"  # ended (the next reconcile clears it)
        return {
            "name": state["key"],
            "status": status,
            "statusType": status,
            "nodePort": state["port"],
            "remainingTime": max(0, int(state["expiresAt"] - time.time())),
            # (kept as table ids; shown by the ids the tenant sees)
            "mountedTrainingHistoryIds": shown_job_ids(object_session(job),
                                                       [i for i in state["trainingIds"] if i != job.id]),
            # KQI additions
            "url": proxy_prefix(self.app.service_prefix, job.display_id),  # (the id the tenant sees)
            "expiresAt": datetime.fromtimestamp(state["expiresAt"], timezone.utc).isoformat(),
            "startedAt": datetime.fromtimestamp(state["startedAt"], timezone.utc).isoformat(),
            "startedBy": state.get("startedBy"),
        }

    def state(self, job: Job) -> dict | None:
        return (job.extra or {}).get(STATE)

    # ---------------------------------------------------------------- start / stop
    def check_request(self, db, tenant: Tenant, job: Job, body: dict) -> tuple[int, list[int]]:
        """expiresIn (seconds) and the other trainings' ids from a PUT body, checked."""
        errors: dict[str, list[str]] = {}
        expires = body.get("expiresIn")
        if expires in (None, "", 0):
            expires = self.default_expires_seconds
        if isinstance(expires, bool) or not isinstance(expires, (int, float)) or expires < 1:
            errors["expiresIn"] = ["must be a number of seconds of at least 1"]
        elif expires > self.max_expires_seconds:
            errors["expiresIn"] = [f"must be at most {self.max_expires_seconds} seconds"]
        selected = body.get("selectedHistoryIds") or []
        if not isinstance(selected, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in selected):
            errors["selectedHistoryIds"] = ["must be a list of training ids"]
            selected = []
        if errors:
            raise ValidationError(errors)
        ids = [job.id]
        for other_id in selected:  # the ids the tenant sees → the trainings' table ids
            other = find_job(db, tenant.id, "training", other_id)
            if other is None:
                raise NotFoundError(f"No training has the id {other_id} in this tenant.")
            if other.id not in ids:
                ids.append(other.id)
        return int(expires), ids

    def log_dirs(self, db, tenant: Tenant, training_ids: list[int]) -> dict[int, str]:
        """The host folders of the trainings' outputs (fetched from the object store when it is not local)."""
        store = self.app.stores.for_tenant(tenant)
        folder = self.backend.job_dir(tensorboard_key(training_ids[0]))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return {i: self.app.jobs._output_dir_for_mount(store, tenant, db.get(Job, i), folder) for i in training_ids}

    def start(self, db, tenant: Tenant, job: Job, expires: int, training_ids: list[int], user: str) -> None:
        """(Re)start the training's TensorBoard (blocking: run it off the event loop)."""
        with self._lock_for(job.id):
            db.refresh(job)
            self._start(db, tenant, job, expires, training_ids, user)

    def _start(self, db, tenant: Tenant, job: Job, expires: int, training_ids: list[int], user: str) -> None:
        if self.state(job):
            self._stop(db, job, "stopped for a restart")
        port = free_port(taken_ports(db))
        key = tensorboard_key(job.id)
        log_dirs = self.log_dirs(db, tenant, training_ids)
        request = tensorboard_request(
            training_id=job.id, tenant=tenant.name, user=user, image=self.image,
            # each run named by the id the tenant sees
            log_dirs={db.get(Job, i).display_id: log_dirs[i] for i in training_ids}, port=port, expires=expires,
            path_prefix=proxy_prefix(self.app.service_prefix, job.display_id),
            host=getattr(self.backend, "listen_host", "127.0.0.1"), cpu=self.cpu, memory_gib=self.memory_gib)
        now = time.time()
        state = {"key": key, "port": port, "trainingIds": training_ids, "startedAt": now, "expiresAt": now + expires,
                 "expiresIn": expires, "startedBy": user, "image": self.image}
        set_state(job, state)
        db.commit()
        try:
            self.backend.launch(request)
        except Exception:
            set_state(job, None)
            db.commit()
            raise
        self.log.info("Started the TensorBoard of training %d for %s (%ds, trainings %s)", job.id, user, expires,
                      training_ids)
        from .domain import usage  # the usage ledger's run of the TensorBoard

        usage.open_run(db, kind="tensorboard", ref_id=job.id, name=key, tenant=tenant, user=user, cpu=self.cpu,
                       memory=self.memory_gib, gpu=0, node=None if self.backend.name == "kubernetes" else os.uname().nodename,
                       started_at=datetime.fromtimestamp(now, timezone.utc).replace(tzinfo=None))
        db.commit()

    def stop(self, db, job: Job, reason: str = "stopped") -> bool:
        """Stop the training's TensorBoard (blocking); False when it had none."""
        with self._lock_for(job.id):
            db.refresh(job)
            return self._stop(db, job, reason)

    def _stop(self, db, job: Job, reason: str) -> bool:
        state = self.state(job)
        if not state:
            return False
        self._remove(state["key"])
        set_state(job, None)
        from .domain import usage

        usage.close_run(db, "tensorboard", job.id)
        db.commit()
        self.log.info("The TensorBoard of training %d %s", job.id, reason)
        return True

    def _remove(self, key: str) -> None:
        try:
            self.backend.halt(key)
        finally:
            self.backend.cleanup(key)

    # ---------------------------------------------------------------- all of them
    def all_states(self, db) -> dict[int, dict]:
        """Every training's TensorBoard record, by the training's table id."""
        return {j.id: j.extra[STATE] for j in self.all_jobs(db)}

    def all_jobs(self, db) -> list[Job]:
        """The trainings that have a TensorBoard, by table id."""
        rows = db.scalars(with_tensorboard()).all()
        return sorted((j for j in rows if (j.extra or {}).get(STATE)), key=lambda j: j.id)

    def reconcile(self) -> None:
        """Stop the expired, clear the ended, remove containers nobody knows (blocking). Each under
        its training's lock, re-read: a TensorBoard being started is neither ended nor unknown."""
        with self.app.session_factory() as db:
            for job in self.all_jobs(db):
                with self._lock_for(job.id):
                    db.refresh(job)
                    state = self.state(job)
                    if not state:
                        continue
                    if state["expiresAt"] <= time.time():
                        self._stop(db, job, "ran out of time")
                    elif not self.backend.is_running(state["key"]):
                        self._stop(db, job, "ended")
            names = getattr(getattr(self.backend, "podman_cli", None), "names", None)
            if names is None:
                return
            for name in names(self.backend.platform_tag):
                key = name[len(self.backend.name_prefix):]
                if not key.startswith(KEY_PREFIX) or not key[len(KEY_PREFIX):].isdigit():
                    continue
                training_id = int(key[len(KEY_PREFIX):])
                with self._lock_for(training_id):
                    db.expire_all()
                    job = db.get(Job, training_id)
                    if job is None or not self.state(job):
                        self._remove(key)
