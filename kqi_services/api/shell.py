"""The web shell: a terminal (WebSocket) into the running container of a job, and its record.

    GET /training/{id}/shell                              (WebSocket)
    GET /inferences/{id}/shell                            (WebSocket)
    GET /preprocessings/{id}/histories/{dataId}/shell     (WebSocket)
    GET /tenant/shell-sessions?jobId=&kind=               (tenant administrators)

The upgrade is checked like every API call (the hub token or the hub's OAuth cookie, the
current tenant, Access.TENANT_USER: members of the job's tenant), and more: a job token
never opens a shell (a job cannot open shells into other jobs), the Origin of a browser
must be this host (no cross-site use of the cookie), and the job must be running (409).
Messages are terminado's: the client sends ["stdin", text], ["set_size", rows, cols] and
["disconnect"]; the server sends ["setup", {}], ["stdout", text] and ["disconnect", 1]. The
shell is the backend's (`JobBackend.open_shell`): root in the container, ended when the
socket closes or the job ends. Every shell opened is recorded (models_shell.ShellSession).
"""
from __future__ import annotations

import asyncio
import codecs
import json
from urllib.parse import urlparse

from sqlalchemy import false, select
from tornado import websocket

from ..db.models_jobs import Job
from ..db.models_shell import ShellSession
from ..db.models import utcnow
from ..domain import job_status as st
from ..domain.jobs import JobQueries
from ..domain.paging import fetch_page
from ..domain.preprocessing import PreprocessingManager
from ..domain.validation import DB_MAX_INT, ConflictError
from ..permissions import Access
from .base import ApiError, BaseAPIHandler, iso
from .schemas.core import contract
from .schemas.shell import SHELL_CONTRACTS, ShellSessionOutput, ShellSessionQuery

#: how often an open shell checks that its job still runs
WATCH_SECONDS = 2.0


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a browser's Origin is the host it asks (no Origin: not a browser, nothing to check)."""
    if not origin:
        return True
    parsed = urlparse(origin.strip())
    return bool(parsed.netloc) and parsed.scheme in ("http", "https") and \
        parsed.netloc.lower() == (host or "").strip().lower()


def parse_message(raw) -> tuple[str, list] | None:
    """A terminado message: (kind, arguments), or None when it is not one."""
    try:
        msg = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
        return None
    return msg[0], msg[1:]


def session_row(s: ShellSession) -> dict:
    return {"id": s.id, "jobId": s.job_id, "jobKind": s.job_kind, "jobName": s.job_name, "userName": s.user_name,
            "ipAddress": s.remote_ip, "openedAt": iso(s.opened_at), "closedAt": iso(s.closed_at),
            "closeReason": s.close_reason}


class JobShellHandler(BaseAPIHandler, websocket.WebSocketHandler):
    """A root shell in the job's running container (WebSocket, terminado messages)."""

    access = {"GET": Access.TENANT_USER}
    kqi_contracts = SHELL_CONTRACTS
    kind = "training"

    shell = None
    session_id: int | None = None
    job_id: int | None = None
    job_key: str | None = None

    # ------------------------------------------------------------ the checks
    async def prepare(self):
        await super().prepare()  # 401 without valid credentials, 403 without the tenant's user scope
        if self.identity.kind != "user":  # a job's token (KQI_TOKEN): a job never opens shells
            raise ApiError(403, "A job token cannot open a shell: sign in as a user of the tenant.")
        job = self.find_job(*self.path_args)
        if not same_origin(self.request.headers.get("Origin"), self.request.host):
            raise ApiError(403, "A shell opens only from this site's own pages (cross-origin request refused).")
        if job.status != st.RUNNING or not await self.in_thread(self.kqi.jobs.backend.is_running, job.key):
            raise ConflictError(f"The {self.kind} {job.display_id} is not running ({job.status}): a shell opens only"
                                f" while it runs.")
        self.job_id, self.job_key, self.job_name = job.id, job.key, job.name
        self.shown_job_id = job.display_id  # what the session record keeps: the id the tenant sees
        self.tenant_id = self.tenant.id

    def find_job(self, job_id, *rest) -> Job:
        return JobQueries(self.db, self.tenant, self.kind).get(self.int_path(job_id))

    def check_origin(self, origin):
        return same_origin(origin, self.request.host)

    # ------------------------------------------------------------ the terminal
    async def open(self, *args):
        rows = self.get_query_argument("rows", "24")
        cols = self.get_query_argument("cols", "80")
        from ..jobs.shell import clamp_size

        rows, cols = clamp_size(rows, cols)
        try:
            self.shell = await self.kqi.jobs.backend.open_shell(self.job_key, rows, cols)
        except Exception as e:
            self.log.warning("No shell for %s: %s", self.job_key, e)
            self.write_message(json.dumps(["stdout", f"\r\nThe shell could not start: {e}\r\n"]))
            self.close(1011, "the shell could not start")
            return
        self.session_id = self._record_open()
        self.log.info("%s opened a shell into %s", self.identity.name, self.job_key)
        self.close_reason_text = "closed by the user"
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.write_message(json.dumps(["setup", {}]))
        self.tasks = [asyncio.ensure_future(self._pump()), asyncio.ensure_future(self._watch())]

    def _record_open(self) -> int:
        db = self.settings["session_factory"]()
        try:
            row = ShellSession(tenant_id=self.tenant_id, job_id=self.shown_job_id, job_kind=self.kind,
                               job_name=self.job_name,
                               user_name=self.identity.name, remote_ip=(self.request.remote_ip or "")[:64] or None)
            db.add(row)
            db.commit()
            return row.id
        finally:
            db.close()

    def _record_close(self, reason: str) -> None:
        if self.session_id is None:
            return
        db = self.settings["session_factory"]()
        try:
            row = db.get(ShellSession, self.session_id)
            if row is not None and row.closed_at is None:
                row.closed_at, row.close_reason = utcnow(), reason
                db.commit()
        finally:
            db.close()

    async def _pump(self):
        while True:
            data = await self.shell.read()
            if data is None:
                break
            text = self.decoder.decode(data)
            if text:
                try:
                    await self.write_message(json.dumps(["stdout", text]))
                except websocket.WebSocketClosedError:
                    return
        if self.close_reason_text == "closed by the user":
            self.close_reason_text = "the shell ended"
        self._end(self.close_reason_text)

    async def _watch(self):
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            db = self.settings["session_factory"]()
            try:
                job = db.get(Job, self.job_id)
                running = job is not None and job.status == st.RUNNING
            finally:
                db.close()
            if not running:
                self.close_reason_text = "the job ended"
                self._end(self.close_reason_text)
                return

    def _end(self, reason: str) -> None:
        try:
            self.write_message(json.dumps(["stdout", f"\r\n[{reason}]\r\n"]))
            self.write_message(json.dumps(["disconnect", 1]))
        except websocket.WebSocketClosedError:
            pass
        self.close(1000, reason)

    def on_message(self, message):
        parsed = parse_message(message)
        if parsed is None or self.shell is None:
            return
        kind, args = parsed
        if kind == "stdin" and args and isinstance(args[0], str):
            self.shell.write(args[0].encode("utf-8", "replace"))
        elif kind == "set_size" and len(args) >= 2:
            self.shell.resize(args[0], args[1])
        elif kind == "disconnect":
            self.close(1000, "closed by the user")

    def on_close(self):
        for task in getattr(self, "tasks", ()):
            if task is not asyncio.current_task():
                task.cancel()
        if self.shell is not None:
            shell, self.shell = self.shell, None
            asyncio.ensure_future(shell.close())
            reason = getattr(self, "close_reason_text", None) or "closed by the user"
            self._record_close(reason)
            self.log.info("%s closed the shell into %s (%s)", self.identity.name, self.job_key, reason)


class InferenceShellHandler(JobShellHandler):
    """A root shell in the inference's running container (WebSocket, terminado messages)."""

    kind = "inference"


class PreprocessingShellHandler(JobShellHandler):
    """A root shell in the preprocessing run's running container (WebSocket, terminado messages)."""

    kind = "preprocessing"
    path_params = ("preprocessId", "dataId")

    def find_job(self, preprocess_id, data_id) -> Job:
        manager = PreprocessingManager(self.db, self.tenant, self.identity.name, self.kqi.secret_box)
        h = manager.history(manager.get(self.int_path(preprocess_id)), self.int_path(data_id, "data id"))
        job = self.db.get(Job, h.job_id) if h.job_id is not None else None
        if job is None:
            raise ConflictError("This preprocessing history has no running container (it was opened by hand).")
        return job


class ShellSessionListHandler(BaseAPIHandler):
    """GET /tenant/shell-sessions?jobId=&kind= : the shells opened into the tenant's jobs, newest first."""

    access = {"GET": Access.TENANT_ADMIN}

    @contract(query=ShellSessionQuery, response=list[ShellSessionOutput], paged=True)
    def get(self):
        q = select(ShellSession).where(ShellSession.tenant_id == self.tenant.id)
        job_id = self.query.jobId
        if job_id is not None:  # an id beyond the database's range names no job
            q = q.where(ShellSession.job_id == job_id if job_id <= DB_MAX_INT else false())
        kind = self.query.kind
        if kind:
            q = q.where(ShellSession.job_kind == kind)
        page = fetch_page(self.db, q, [ShellSession.id.desc()], self.page_request())
        self.write_json([session_row(s) for s in self.paginate(page)])


default_handlers = [
    (r"/training/([0-9]+)/shell", JobShellHandler),
    (r"/inferences/([0-9]+)/shell", InferenceShellHandler),
    (r"/preprocessings/([0-9]+)/histories/([0-9]+)/shell", PreprocessingShellHandler),
    (r"/tenant/shell-sessions", ShellSessionListHandler),
]
