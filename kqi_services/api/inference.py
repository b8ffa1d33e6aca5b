"""Inference: the guide's 推論管理 over the job engine (/inferences/...).

The training flow with the guide's differences: parents are trainings mounted read-only at
/kqi/parent, parent inferences at /kqi/inference/<id>; the number a job writes to
/kqi/output/value.txt is shown as its output value; the container is named
inference-<name>-<id>; no TensorBoard.
"""
from __future__ import annotations

from sqlalchemy.orm.attributes import flag_modified

from ..db.models_jobs import Job
from ..domain import job_status as st
from ..domain.ids import find_jobs
from ..domain.jobs import JobSubmission, create_job, job_index
from ..domain.validation import Fields, ValidationError
from ..jobs.engine import OUTPUT_FOLDER
from ..storage.factory import tenant_key
from .jobs_common import JobHandler, JobListHandler, JobRunHandler, job_routes, kind_classes
from .schemas.core import answering, contract
from .schemas.jobs import InferenceCreateInput, InferenceDetailsOutput, InferenceIndexOutput, JobIndexOutput

VALUE_FILE = "value.txt"
MAX_VALUE_BYTES = 256


def output_value(store, tenant, job: Job) -> str | None:
    """The first line of /kqi/output/value.txt (at most 256 bytes), or None."""
    key = tenant_key(tenant, f"{OUTPUT_FOLDER['inference']}/{job.id}/{VALUE_FILE}")
    try:
        if store.stat(key) is None:
            return None
        data = b""
        for chunk in store.read(key, 1024):
            data += chunk
            if len(data) >= MAX_VALUE_BYTES:
                break
    except Exception:
        return None
    text = data[:MAX_VALUE_BYTES].decode("utf-8", "replace").strip()
    return text.splitlines()[0].strip() if text else None


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

    def index(self, job: Job) -> dict:
        out = job_index(self.db, job)
        out["outputValue"] = output_value(self.tenant_store(), self.tenant, job)
        return out


CLASSES = kind_classes("inference", run_class=InferenceRunHandler)
CLASSES["list"] = InferenceListHandler
CLASSES["one"].kqi_contracts = {"GET": answering(JobHandler, "GET", InferenceDetailsOutput)}

default_handlers = job_routes("inferences", CLASSES)
