"""Inference: the guide's 推論管理 over the job engine (/inferences/...).

The training flow with the guide's differences: parents are trainings mounted read-only at
/kqi/parent, parent inferences at /kqi/inference/<id>; the number a job writes to
/kqi/output/value.txt is shown as its output value; the container is named
inference-<name>-<id>; no TensorBoard.
"""
from __future__ import annotations

from sqlalchemy.orm.attributes import flag_modified

from ..db.models import Tenant
from ..db.models_jobs import Job
from ..domain import job_status as st
from ..domain.ids import find_jobs
from ..domain.jobs import INDEX_COLUMNS, JobSubmission, create_job, job_index, job_indexes
from ..domain.validation import Fields, ValidationError
from ..jobs.engine import OUTPUT_FOLDER
from ..storage.factory import tenant_key
from .jobs_common import JobHandler, JobListHandler, JobRunHandler, job_routes, kind_classes
from .schemas.core import answering, contract
from .schemas.jobs import InferenceCreateInput, InferenceDetailsOutput, InferenceIndexOutput, JobIndexOutput

VALUE_FILE = "value.txt"
MAX_VALUE_BYTES = 256
#: the key of Job.extra that keeps an ended inference's output value
OUTPUT_VALUE_KEY = "outputValue"


def read_output_value(store, tenant, job: Job) -> str | None:
    """The first line of /kqi/output/value.txt (at most 256 bytes), None when there is no such
    file; the store's errors are raised."""
    key = tenant_key(tenant, f"{OUTPUT_FOLDER['inference']}/{job.id}/{VALUE_FILE}")
    if store.stat(key) is None:
        return None
    data = b""
    for chunk in store.read(key, 1024):
        data += chunk
        if len(data) >= MAX_VALUE_BYTES:
            break
    text = data[:MAX_VALUE_BYTES].decode("utf-8", "replace").strip()
    return text.splitlines()[0].strip() if text else None


def output_value(store, tenant, job: Job) -> str | None:
    """read_output_value, None when the store cannot be read."""
    try:
        return read_output_value(store, tenant, job)
    except Exception:
        return None


def record_output_value(db, app, job: Job) -> None:
    """A finish hook: an inference's output value is kept in its row when it ends (its outputs are
    stored by then and nothing writes them afterwards), so a list page reads no file for it."""
    if job.kind != "inference":
        return
    tenant = db.get(Tenant, job.tenant_id)
    try:
        value = read_output_value(app.stores.for_tenant(tenant), tenant, job)
    except Exception:
        return  # the store cannot be read now: the list reads the file later (and keeps it then)
    job.extra = {**(job.extra or {}), OUTPUT_VALUE_KEY: value}
    flag_modified(job, "extra")


def page_output_values(store, tenant, rows, db=None) -> dict[int, str | None]:
    """The output value of each inference of a page (Jobs, or rows with `id` and `extra` whose
    Jobs `db` reads when needed): the one kept
    in its row when it ended; the file's first line for the running ones (it may still change)
    and for those that ended before values were kept (their value is then kept, so the file is
    read once; the caller commits once the page is made)."""
    values = {}
    for row in rows:
        extra = row.extra or {}
        if OUTPUT_VALUE_KEY in extra:
            values[row.id] = extra[OUTPUT_VALUE_KEY]
            continue
        job = row if isinstance(row, Job) else db.get(Job, row.id)
        try:
            values[row.id] = read_output_value(store, tenant, job)
        except Exception:
            values[row.id] = None  # the store cannot be read now: shown as none, kept later
            continue
        if job.status not in st.ACTIVE:
            job.extra = {**(job.extra or {}), OUTPUT_VALUE_KEY: values[row.id]}
            flag_modified(job, "extra")
    return values


class InferenceRunHandler(JobRunHandler):
    kind = "inference"

    def read_submission(self, body: dict) -> dict:
        values = JobSubmission(self.db, self.tenant, self.identity.name, "inference", self.kqi.secret_box).read(body)
        f = Fields(body)
        inference_ids = f.int_list("inferenceIds")
        f.done()
        found = find_jobs(self.db, self.tenant.id, "inference", inference_ids)
        missing = [i for i in inference_ids if i not in found]
        if missing:
            raise ValidationError({"inferenceIds": ["no inference in this tenant has the id(s) " +
                                                    ", ".join(map(str, missing))]})
        # kept as the parents' table ids (the engine mounts by them); shown by the tenant's ids
        values["extra"] = {"inferenceIds": list(dict.fromkeys(found[i].id for i in inference_ids))}
        return values

    @contract(body=InferenceCreateInput, response=JobIndexOutput, status=201)
    async def post(self):
        body = self.json_body()
        values = await self.in_thread(self.read_submission, body)
        job = create_job(self.db, self.tenant, self.identity.name, values)
        job.extra = {**job.extra, "key": f"inference-{job.name}-{job.id}"}
        flag_modified(job, "extra")
        self.db.commit()
        self.kqi.jobs.wake()
        self.write_json(job_index(self.db, job), status=201)


class InferenceListHandler(JobListHandler):
    kind = "inference"
    kqi_contracts = {"GET": answering(JobListHandler, "GET", list[InferenceIndexOutput])}

    list_columns = INDEX_COLUMNS + (Job.extra,)  # (where an ended inference's output value is kept)

    def page_rows(self, jobs: list) -> list[dict]:
        values = page_output_values(self.tenant_store(), self.tenant, jobs, self.db)
        if self.db.dirty:  # (before any other query: its autoflush would leave nothing dirty, and the
            self.db.commit()  # values kept for inferences that ended before values were kept be lost)
        return [{**index, "outputValue": values[job.id]} for job, index in zip(jobs, job_indexes(self.db, jobs))]


CLASSES = kind_classes("inference", run_class=InferenceRunHandler)
CLASSES["list"] = InferenceListHandler
CLASSES["one"].kqi_contracts = {"GET": answering(JobHandler, "GET", InferenceDetailsOutput)}

default_handlers = job_routes("inferences", CLASSES)
