"""Handlers shared by the job kinds (training, inference): list, run, details, update, delete,
halt, complete, files, container files and the live log. A kind's module subclasses these
with its `kind` and its own create rules.
"""
from __future__ import annotations

import asyncio
import os
import posixpath

from sqlalchemy import select

from ..db.models_jobs import Job, JobFile, JobTag
from ..domain import job_status as st
from ..domain.ids import shown_job_ids
from ..domain.job_status import ended_message
from ..domain.jobs import INDEX_COLUMNS, JobQueries, JobSubmission, create_job, job_details, job_index, job_indexes
from ..domain.uploads import Uploads, check_file_name
from ..domain.validation import ConflictError, NotFoundError, ValidationError
from ..jobs.engine import ATTACH_FOLDER, OUTPUT_FOLDER, log_name
from ..permissions import Access
from ..storage.factory import tenant_key
from ..storage.local import LocalObjectStore
from ..proxy import node_ports
from .base import BaseAPIHandler
from .schemas.core import contract
from .schemas.jobs import (
    ContainerFilesOutput,
    ContainerFilesQuery,
    JobAddFileInput,
    JobAddFileOutput,
    JobCreateInput,
    JobDetailsOutput,
    JobEditInput,
    JobFileOutput,
    JobFilesQuery,
    JobIndexOutput,
    JobLogQuery,
    JobSearchQuery,
    JobSimpleOutput,
    JobSimpleQuery,
)

MAX_DIR_ENTRIES = 10000
UPLOAD_TYPE = {"training": "TrainingHistoryAttachedFiles", "inference": "InferenceHistoryAttachedFiles"}


class JobHandlerBase(BaseAPIHandler):
    access = Access.TENANT_USER
    kind = "training"

    def queries(self) -> JobQueries:
        return JobQueries(self.db, self.tenant, self.kind)

    def job(self, job_id) -> Job:
        return self.queries().get(self.int_path(job_id))

    def details(self, job: Job) -> dict:
        out = job_details(self.db, job, self.kqi.jobs.queue_info.get(job.id))
        ports_for = self.kqi.job_ports_for  # (the addresses the caller may open)
        out["nodePorts"] = node_ports(self.kqi.service_prefix, job, ports_for == "tenant" or (
            ports_for == "owner" and self.identity is not None and job.created_by == self.identity.name))
        if job.kind == "inference":  # (kept as table ids; shown by the ids the tenant sees)
            out["inferenceIds"] = shown_job_ids(self.db, (job.extra or {}).get("inferenceIds", []))
            out["containerName"] = job.key
        return out

    def index(self, job: Job) -> dict:
        out = job_index(self.db, job)
        return out


class JobListHandler(JobHandlerBase):
    @contract(query=JobSearchQuery, response=list[JobIndexOutput], paged=True)
    def get(self):
        keys = ("id", "name", "parentId", "parentName", "startedAt", "startedBy", "dataSet", "memo", "status",
                "entryPoint")
        args = {k: getattr(self.query, k) for k in keys}
        args["tags"] = [t for t in self.query.tag + self.query.tags if t.strip()]
        page = self.queries().search_page(args, self.page_request().or_per_page(), self.list_columns)
        self.write_json(self.page_rows(self.paginate(page)))

    #: the columns of each job the list reads (a kind whose list shows more adds its own)
    list_columns = INDEX_COLUMNS

    def page_rows(self, jobs: list) -> list[dict]:
        return job_indexes(self.db, jobs)


class JobRunHandler(JobHandlerBase):
    """POST /<kind>/run: validate, resolve the commit, store as Queued; the engine admits it."""

    def read_submission(self, body: dict) -> dict:
        return JobSubmission(self.db, self.tenant, self.identity.name, self.kind, self.kqi.secret_box).read(body)

    @contract(body=JobCreateInput, response=JobIndexOutput, status=201)
    async def post(self):
        body = self.json_body()
        values = await self.in_thread(self.read_submission, body)
        job = create_job(self.db, self.tenant, self.identity.name, values)
        self.log.info("%s submitted %s", self.identity.name, job.key)
        self.kqi.jobs.wake()
        out = job_index(self.db, job)
        self.write_json(out, status=201)


class JobHandler(JobHandlerBase):
    @contract(response=JobDetailsOutput)
    def get(self, job_id):
        self.write_json(self.details(self.job(job_id)))

    @contract(body=JobEditInput, response=JobIndexOutput)
    def put(self, job_id):
        job = self.queries().update(self.job(job_id), self.json_body(), self.identity.name)
        self.write_json(self.index(job))

    @contract(response=None, status=204, errors=(409,))
    async def delete(self, job_id):
        job = self.job(job_id)
        self.queries().check_deletable(job)
        store = self.tenant_store()
        prefixes = [tenant_key(self.tenant, f"{OUTPUT_FOLDER[job.kind]}/{job.id}/"),
                    tenant_key(self.tenant, f"{ATTACH_FOLDER[job.kind]}/{job.id}/")]
        user_files = [tenant_key(self.tenant, f.stored_path) for f in job.files if not f.is_locked]
        self.db.delete(job)
        self.db.commit()

        def remove():
            for prefix in prefixes:
                store.delete_prefix(prefix)
            for key in user_files:
                store.delete(key)

        await self.in_thread(remove)
        self.no_content()


class JobHaltHandler(JobHandlerBase):
    """POST /<kind>/{id}/halt: the user stops it; it ends Killed."""

    end_status = st.KILLED
    reason = "halted by the user"

    @contract(response=JobIndexOutput, errors=(409,))
    async def post(self, job_id):
        job = self.job(job_id)
        if job.status not in st.ACTIVE:
            raise ConflictError(ended_message(f"{self.kind} {job.display_id}", job.status))
        async with self.kqi.jobs._lock:
            await self.in_thread(self.kqi.jobs.halt, self.db, job, self.end_status, self.reason)
        self.db.refresh(job)
        self.write_json(self.index(job))


class JobCompleteHandler(JobHaltHandler):
    """POST /<kind>/{id}/complete: ends it as Completed (what the job itself calls when done)."""

    end_status = st.COMPLETED
    reason = None


class JobFilesHandler(JobHandlerBase):
    """GET /<kind>/{id}/files (log, output.zip, attached files), POST to attach an uploaded file."""

    @contract(query=JobFilesQuery, response=list[JobFileOutput])
    def get(self, job_id):
        job = self.job(job_id)
        with_url = self.query.withUrl
        store = self.tenant_store() if with_url else None
        base_url = self.base_url()
        out = []
        for f in job.files:
            url = (store.download_url(tenant_key(self.tenant, f.stored_path), f.file_name, base_url,
                                      self.kqi.download_url_expiry_seconds) if with_url else None)
            out.append({"id": job.display_id, "fileId": f.id, "fileName": f.file_name, "isLocked": f.is_locked,
                        "url": url, "size": f.size})
        self.write_json(out)

    @contract(body=JobAddFileInput, response=JobAddFileOutput, status=201, errors=(409,))
    def post(self, job_id):
        job = self.job(job_id)
        body = self.json_body()
        name = check_file_name(body.get("fileName"))
        stored_path = body.get("storedPath")
        if not isinstance(stored_path, str) or not stored_path:
            raise ValidationError({"storedPath": ["is required"]})
        if any(f.file_name == name for f in job.files):
            raise ConflictError(f"The {self.kind} {job.display_id} has a file named {name} already.")
        upload = Uploads(self.db, self.tenant_store(), self.tenant).claim(stored_path, UPLOAD_TYPE[self.kind])
        new = JobFile(job_id=job.id, file_name=name, stored_path=stored_path, size=upload.size or 0,
                      created_by=self.identity.name)
        self.db.add(new)
        self.db.commit()
        self.write_json({"id": job.display_id, "fileId": new.id, "fileName": name, "isLocked": False}, status=201)


class JobFileHandler(JobHandlerBase):
    @contract(response=None, status=204, errors=(409,))
    async def delete(self, job_id, file_id):
        job = self.job(job_id)
        file_id = self.int_path(file_id, "file id")
        target = next((f for f in job.files if f.id == file_id), None)
        if target is None:
            raise NotFoundError(f"The {self.kind} {job.display_id} has no file with the id {file_id}.")
        if target.is_locked:
            raise ConflictError(f"{target.file_name} was made by the platform and cannot be deleted.")
        key = tenant_key(self.tenant, target.stored_path)
        job.files.remove(target)
        self.db.commit()
        await self.in_thread(self.tenant_store().delete, key)
        self.no_content()


def clean_path(path: str) -> str:
    path = posixpath.normpath("/" + (path or "/").strip())
    if "\x00" in path or ".." in path.split("/"):
        raise ValidationError({"path": ["must be a path inside /kqi/output"]})
    return path.strip("/")


class JobContainerFilesHandler(JobHandlerBase):
    """GET /<kind>/{id}/container-files?path=/&withUrl= : browse /kqi/output, also while it runs."""

    @contract(query=ContainerFilesQuery, response=ContainerFilesOutput)
    async def get(self, job_id):
        job = self.job(job_id)
        rel = clean_path(self.query.path)
        with_url = self.query.withUrl
        store = self.tenant_store()
        base_url = self.base_url()
        prefix = f"{OUTPUT_FOLDER[job.kind]}/{job.id}" + (f"/{rel}" if rel else "")
        result = await self.in_thread(self._list, store, prefix, job, with_url, base_url)
        self.write_json(result)

    def _list(self, store, prefix, job, with_url, base_url):
        dirs, files = [], []
        if isinstance(store, LocalObjectStore):
            folder = store.folder(tenant_key(self.tenant, prefix))  # no links followed; a file: 400
            entries = sorted(os.scandir(folder), key=lambda e: e.name) if folder else []
            for entry in entries[:MAX_DIR_ENTRIES + 1]:
                if entry.is_symlink():
                    continue  # never list or serve what a link left by the job points at
                if entry.is_dir():
                    dirs.append({"dirName": entry.name,
                                 "dirPath": "/" + posixpath.relpath(f"{prefix}/{entry.name}",
                                                                    f"{OUTPUT_FOLDER[job.kind]}/{job.id}")})
                elif entry.is_file():
                    key = tenant_key(self.tenant, f"{prefix}/{entry.name}")
                    st_ = entry.stat()
                    files.append({"key": key, "fileName": entry.name, "size": st_.st_size,
                                  "lastModified": _iso(st_.st_mtime),
                                  "url": store.download_url(key, entry.name, base_url,
                                                            self.kqi.download_url_expiry_seconds)
                                  if with_url else None})
        else:
            base = tenant_key(self.tenant, prefix) + "/"
            seen_dirs = set()
            for info in store.list(base):
                rest = info.key[len(base):]
                if "/" in rest:
                    name = rest.split("/", 1)[0]
                    if name not in seen_dirs:
                        seen_dirs.add(name)
                        dirs.append({"dirName": name, "dirPath": "/" + posixpath.relpath(
                            f"{prefix}/{name}", f"{OUTPUT_FOLDER[job.kind]}/{job.id}")})
                else:
                    files.append({"key": info.key, "fileName": rest, "size": info.size,
                                  "lastModified": _iso(info.last_modified),
                                  "url": store.download_url(info.key, rest, base_url,
                                                            self.kqi.download_url_expiry_seconds)
                                  if with_url else None})
        exceeded = len(dirs) + len(files) > MAX_DIR_ENTRIES
        return {"dirs": dirs[:MAX_DIR_ENTRIES], "files": files[:MAX_DIR_ENTRIES], "exceeded": exceeded}


def _iso(timestamp):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat() if timestamp else None


class JobLogHandler(JobHandlerBase):
    """GET /<kind>/{id}/log?follow=true&offset=N (KQI addition): the log, live while it runs.

    Without follow: the log from `offset` as text. With follow: keeps the response open and
    streams new lines until the job ends (the web UI's live log).
    """

    @contract(query=JobLogQuery, response=str, content_type="text/plain",
              headers={"X-Log-Offset": "The byte after the last one sent: the offset to ask for next."})
    async def get(self, job_id):
        job = self.job(job_id)
        offset = self.query.offset
        follow = self.query.follow
        store = self.tenant_store()
        key = tenant_key(self.tenant, f"{ATTACH_FOLDER[job.kind]}/{job.id}/{log_name(job)}")
        path = None
        if isinstance(store, LocalObjectStore):
            path = store.path(key)
        else:
            path = os.path.join(self.kqi.jobs.backend.job_dir(job.key), "attach", log_name(job))
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        while True:
            chunk = b""
            if path and os.path.exists(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read(1 << 20)
            elif not isinstance(store, LocalObjectStore) and store.stat(key) is not None:
                chunk = b"".join(store.read(key))[offset:offset + (1 << 20)]
            if chunk:
                offset += len(chunk)
                self.write(chunk)
                await self.flush()
                continue
            self.db.refresh(job)
            if not follow or job.status not in st.ACTIVE or self.request.connection.stream.closed():
                break
            await asyncio.sleep(0.5)
        self.set_header("X-Log-Offset", str(offset))
        self.finish()


class JobTagsHandler(JobHandlerBase):
    @contract(response=list[str])
    def get(self):
        names = self.db.scalars(select(JobTag.name).join(Job, Job.id == JobTag.job_id)
                                .where(Job.tenant_id == self.tenant.id, Job.kind == self.kind)
                                .distinct().order_by(JobTag.name)).all()
        self.write_json(list(names))


class JobSimpleListHandler(JobHandlerBase):
    """GET /<kind>/simple and /<kind>/mount: id and name of every job (mount: the ones that can be parents)."""

    only_mountable = False

    @contract(query=JobSimpleQuery, response=list[JobSimpleOutput])
    def get(self):
        rows = self.queries().search({})
        status = self.query.status
        if self.only_mountable:
            rows = [j for j in rows if j.status in (status.split(",") if status else st.FINISHED + (st.RUNNING,))]
        self.write_json([{"id": j.display_id, "displayId": j.display_id, "name": j.name,
                          "fullName": f"{j.display_id}:{j.name}",
                          "status": j.status, "memo": j.memo, "favorite": j.favorite, "createdBy": j.created_by,
                          "createdAt": j.created_at, "modifiedBy": j.modified_by, "modifiedAt": j.modified_at}
                         for j in rows])


class JobMountListHandler(JobSimpleListHandler):
    only_mountable = True


def job_routes(base: str, classes: dict) -> list:
    """The routes of a job kind under /<base>, with the kind's handler classes."""
    return [
        (rf"/{base}", classes["list"]),
        (rf"/{base}/run", classes["run"]),
        (rf"/{base}/simple", classes["simple"]),
        (rf"/{base}/mount", classes["mount"]),
        (rf"/{base}/tags", classes["tags"]),
        (rf"/{base}/([0-9]+)", classes["one"]),
        (rf"/{base}/([0-9]+)/halt", classes["halt"]),
        (rf"/{base}/([0-9]+)/user-cancel", classes["cancel"]),
        (rf"/{base}/([0-9]+)/complete", classes["complete"]),
        (rf"/{base}/([0-9]+)/files", classes["files"]),
        (rf"/{base}/([0-9]+)/files/([^/]+)", classes["file"]),
        (rf"/{base}/([0-9]+)/container-files", classes["container_files"]),
        (rf"/{base}/([0-9]+)/log", classes["log"]),
    ]


def kind_classes(kind: str, run_class=JobRunHandler) -> dict:
    """Subclasses of the shared handlers bound to one job kind."""
    def sub(cls, name, **attrs):
        return type(f"{kind.title()}{name}", (cls,), {"kind": kind, "__doc__": cls.__doc__, **attrs})

    return {
        "list": sub(JobListHandler, "ListHandler"),
        "run": sub(run_class, "RunHandler"),
        "simple": sub(JobSimpleListHandler, "SimpleListHandler"),
        "mount": sub(JobMountListHandler, "MountListHandler"),
        "tags": sub(JobTagsHandler, "TagsHandler"),
        "one": sub(JobHandler, "Handler"),
        "halt": sub(JobHaltHandler, "HaltHandler"),
        "cancel": sub(JobHaltHandler, "UserCancelHandler", reason="cancelled by the user"),
        "complete": sub(JobCompleteHandler, "CompleteHandler"),
        "files": sub(JobFilesHandler, "FilesHandler"),
        "file": sub(JobFileHandler, "FileHandler"),
        "container_files": sub(JobContainerFilesHandler, "ContainerFilesHandler"),
        "log": sub(JobLogHandler, "LogHandler"),
    }
