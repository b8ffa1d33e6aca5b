"""Preprocessing: /preprocessings, runs and histories (the guide's 前処理管理)."""
from __future__ import annotations

from ..db.models_jobs import Job
from ..domain import job_status as st
from ..domain.preprocessing import PreprocessingManager, preprocessing_index
from ..domain.job_status import ended_message
from ..domain.validation import ConflictError, ValidationError
from ..permissions import Access
from .base import BaseAPIHandler
from .schemas.core import contract
from .schemas.jobs import (
    PreprocessingAddOutputDataInput,
    PreprocessingCreateInput,
    PreprocessingDetailsOutput,
    PreprocessingEditInput,
    PreprocessingHistoryOutput,
    PreprocessingIndexOutput,
    PreprocessingOutputDataOutput,
    PreprocessingRunInput,
    PreprocessingSearchQuery,
)


class PreprocessingHandlerBase(BaseAPIHandler):
    access = Access.TENANT_USER

    def manager(self) -> PreprocessingManager:
        return PreprocessingManager(self.db, self.tenant, self.identity.name, self.kqi.secret_box)

    def definition(self, preprocess_id):
        return self.manager().get(self.int_path(preprocess_id))


class PreprocessingListHandler(PreprocessingHandlerBase):
    @contract(query=PreprocessingSearchQuery, response=list[PreprocessingIndexOutput], paged=True)
    def get(self):
        args = {k: getattr(self.query, k) for k in ("id", "name", "memo", "createdAt")}
        page = self.manager().search_page(args, self.page_request().or_per_page())
        self.write_json([preprocessing_index(p) for p in self.paginate(page)])

    @contract(body=PreprocessingCreateInput, response=PreprocessingIndexOutput, status=201)
    async def post(self):
        body = self.json_body()
        p = await self.in_thread(self.manager().create, body)
        self.write_json(preprocessing_index(p), status=201)


class PreprocessingHandler(PreprocessingHandlerBase):
    @contract(response=PreprocessingDetailsOutput)
    def get(self, preprocess_id):
        self.write_json(self.manager().details(self.definition(preprocess_id)))

    @contract(body=PreprocessingCreateInput, response=PreprocessingIndexOutput, errors=(409,))
    async def put(self, preprocess_id):
        p = self.definition(preprocess_id)
        body = self.json_body()
        await self.in_thread(self.manager().replace, p, body)
        self.write_json(preprocessing_index(p))

    @contract(body=PreprocessingEditInput, response=PreprocessingIndexOutput)
    def patch(self, preprocess_id):
        p = self.manager().patch(self.definition(preprocess_id), self.json_body())
        self.write_json(preprocessing_index(p))

    @contract(response=None, status=204, errors=(409,))
    def delete(self, preprocess_id):
        self.manager().delete(self.definition(preprocess_id))
        self.no_content()


class PreprocessingRunHandler(PreprocessingHandlerBase):
    """POST /preprocessings/{id}/run {dataId | dataIds, options, cpu, memory, gpu, partition}.

    `dataIds` (KQI addition) runs it over several data at once; every data is checked
    before any run starts, so a bad one starts nothing.
    """

    @contract(body=PreprocessingRunInput, response=PreprocessingHistoryOutput | list[PreprocessingHistoryOutput],
              status=201, errors=(409,))
    def post(self, preprocess_id):
        p = self.definition(preprocess_id)
        body = self.json_body()
        data_ids = body.get("dataIds")
        if data_ids is None:
            data_ids = [body.get("dataId")]
        if not isinstance(data_ids, list) or not data_ids:
            raise ValidationError({"dataIds": ["must be a non-empty list of data ids"]})
        if len(set(map(str, data_ids))) != len(data_ids):
            raise ValidationError({"dataIds": ["a data may be given once"]})
        manager = self.manager()
        for data_id in data_ids:  # check every run before starting any
            manager.run(p, {**body, "dataId": data_id}, dry_run=True)
        outputs = [manager.run(p, {**body, "dataId": data_id})[0] for data_id in data_ids]
        self.kqi.jobs.wake()
        result = [manager.history_output(h) for h in outputs]
        self.write_json(result[0] if body.get("dataIds") is None else result, status=201)


class HistoryListHandler(PreprocessingHandlerBase):
    @contract(response=list[PreprocessingHistoryOutput], paged=True)
    def get(self, preprocess_id):
        manager = self.manager()
        p = self.definition(preprocess_id)
        page = manager.history_page(p, self.page_request())
        self.write_json([manager.history_output(h) for h in self.paginate(page)])


class HistoryHandler(PreprocessingHandlerBase):
    """GET, POST (open an offline history) and DELETE /preprocessings/{id}/histories/{dataId}."""

    @contract(response=PreprocessingHistoryOutput)
    def get(self, preprocess_id, data_id):
        manager = self.manager()
        h = manager.history(self.definition(preprocess_id), self.int_path(data_id, "data id"))
        out = manager.history_output(h)
        self.write_json(out)

    @contract(response=PreprocessingHistoryOutput, status=201, errors=(409,))
    def post(self, preprocess_id, data_id):
        manager = self.manager()
        h = manager.open_history(self.definition(preprocess_id), self.int_path(data_id, "data id"))
        self.write_json(manager.history_output(h), status=201)

    @contract(response=None, status=204, errors=(409,))
    async def delete(self, preprocess_id, data_id):
        manager = self.manager()
        h = manager.history(self.definition(preprocess_id), self.int_path(data_id, "data id"))
        await self.in_thread(manager.delete_history, h, self.tenant_store())
        self.no_content()


class HistoryDataHandler(PreprocessingHandlerBase):
    """POST /preprocessings/{id}/histories/{dataId}/data {name, memo, tags, files}: a result data."""

    @contract(body=PreprocessingAddOutputDataInput, response=PreprocessingOutputDataOutput, status=201,
              errors=(409,))
    def post(self, preprocess_id, data_id):
        manager = self.manager()
        p = self.definition(preprocess_id)
        h = manager.history(p, self.int_path(data_id, "data id"))
        data = manager.add_output_data(p, h, self.json_body(), self.tenant_store())
        self.write_json({"id": data.id, "name": data.name}, status=201)


class HistoryEndHandler(PreprocessingHandlerBase):
    end_status = st.KILLED

    @contract(response=PreprocessingHistoryOutput, errors=(409,))
    async def post(self, preprocess_id, data_id):
        manager = self.manager()
        h = manager.history(self.definition(preprocess_id), self.int_path(data_id, "data id"))
        if h.job_id is None:
            manager.finish_offline(h, self.end_status)
        else:  # one rule for every kind: an ended history is a 409 (domain.job_status.ended_message)
            job = self.db.get(Job, h.job_id)
            if job.status not in st.ACTIVE:
                raise ConflictError(ended_message(manager.history_label(h), job.status))
            reason = "halted by the user" if self.end_status == st.KILLED else None
            async with self.kqi.jobs._lock:
                await self.in_thread(self.kqi.jobs.halt, self.db, job, self.end_status, reason)
        self.db.refresh(h)
        self.write_json(manager.history_output(h))


class HistoryCompleteHandler(HistoryEndHandler):
    end_status = st.COMPLETED


class HistoryLogHandler(PreprocessingHandlerBase):
    """GET /preprocessings/{id}/histories/{dataId}/log (KQI addition): the run's stdout_stderr log."""

    @contract(response=str, content_type="text/plain")
    async def get(self, preprocess_id, data_id):
        from ..jobs.engine import ATTACH_FOLDER, log_name
        from ..storage.factory import tenant_key

        manager = self.manager()
        h = manager.history(self.definition(preprocess_id), self.int_path(data_id, "data id"))
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        if h.job_id is None:
            return self.finish(b"")
        job = self.db.get(Job, h.job_id)
        key = tenant_key(self.tenant, f"{ATTACH_FOLDER['preprocessing']}/{job.id}/{log_name(job)}")
        store = self.tenant_store()
        if store.stat(key) is None:
            return self.finish(b"")
        for chunk in await self.in_thread(lambda: list(store.read(key))):
            self.write(chunk)
        self.finish()


default_handlers = [
    (r"/preprocessings", PreprocessingListHandler),
    (r"/preprocessings/([0-9]+)", PreprocessingHandler),
    (r"/preprocessings/([0-9]+)/run", PreprocessingRunHandler),
    (r"/preprocessings/([0-9]+)/histories", HistoryListHandler),
    (r"/preprocessings/([0-9]+)/histories/([0-9]+)", HistoryHandler),
    (r"/preprocessings/([0-9]+)/histories/([0-9]+)/data", HistoryDataHandler),
    (r"/preprocessings/([0-9]+)/histories/([0-9]+)/halt", HistoryEndHandler),
    (r"/preprocessings/([0-9]+)/histories/([0-9]+)/complete", HistoryCompleteHandler),
    (r"/preprocessings/([0-9]+)/histories/([0-9]+)/log", HistoryLogHandler),
]
