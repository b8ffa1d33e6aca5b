"""Data: /data, /data/{id}, /data/{id}/files, tags."""
from __future__ import annotations

from sqlalchemy import select

from ..db.models_data import DataTag, Data
from ..domain.data import INDEX_COLUMNS, DataManager, data_index, data_indexes, file_output
from ..domain.preprocessing import PreprocessingManager
from ..permissions import Access
from ..storage.factory import tenant_key
from .base import BaseAPIHandler
from .schemas.core import contract
from .schemas.data import (
    DataAddFilesInput,
    DataCreateInput,
    DataDetailsOutput,
    DataEditInput,
    DataFileOutput,
    DataFilesOutput,
    DataFilesQuery,
    DataIndexOutput,
    DataSearchQuery,
)


class DataHandlerBase(BaseAPIHandler):
    access = Access.TENANT_USER

    def manager(self, with_store: bool = False) -> DataManager:
        return DataManager(self.db, self.tenant, self.tenant_store() if with_store else None)

    def details(self, data) -> dict:
        out = data_index(data)
        out["fileNames"] = [f.file_name for f in data.files]
        out["parent"] = data_index(data.parent) if data.parent is not None else None
        lineage = PreprocessingManager(self.db, self.tenant, self.identity.name)
        out["children"] = lineage.children_of_data(data)  # preprocessing histories that used this data
        out["preprocess"] = lineage.lineage_of_data(data)  # KQI addition: what made this data
        return out


class DataListHandler(DataHandlerBase):
    @contract(query=DataSearchQuery, response=list[DataIndexOutput], paged=True)
    def get(self):
        query = self.query
        args = {k: getattr(query, k) for k in ("id", "name", "memo", "createdAt", "createdBy")}
        # the SDK sends an empty "tag=" when no tag is asked for
        args["tags"] = [t for t in query.tag + query.tags if t.strip()]
        page = self.manager().search_page(args, self.page_request().or_per_page(), INDEX_COLUMNS)
        self.write_json(data_indexes(self.db, self.paginate(page)))

    @contract(body=DataCreateInput, response=DataIndexOutput, status=201)
    def post(self):
        data = self.manager().create(self.json_body(), self.identity.name)
        self.write_json(data_index(data), status=201)


class DataHandler(DataHandlerBase):
    @contract(response=DataDetailsOutput)
    def get(self, data_id):
        self.write_json(self.details(self.manager().get(self.int_path(data_id))))

    @contract(body=DataEditInput, response=DataIndexOutput)
    def put(self, data_id):
        manager = self.manager()
        data = manager.update(manager.get(self.int_path(data_id)), self.json_body(), self.identity.name)
        self.write_json(data_index(data))

    @contract(response=None, status=204, errors=(409,))
    async def delete(self, data_id):
        manager = self.manager(with_store=True)
        data = manager.get(self.int_path(data_id))
        await self.in_thread(manager.delete, data)
        self.no_content()


class DataFilesHandler(DataHandlerBase):
    @contract(query=DataFilesQuery, response=list[DataFileOutput])
    async def get(self, data_id):
        data = self.manager().get(self.int_path(data_id))
        with_url = self.query.withUrl
        store = self.tenant_store() if with_url else None
        base_url = self.base_url()

        def url(f):
            return store.download_url(tenant_key(self.tenant, f.stored_path), f.file_name, base_url,
                                      self.kqi.download_url_expiry_seconds)

        self.write_json([file_output(f, url(f) if with_url else None) for f in data.files])

    @contract(body=DataAddFilesInput, response=DataFilesOutput, status=201, errors=(409,))
    async def post(self, data_id):
        manager = self.manager(with_store=True)
        data = manager.get(self.int_path(data_id))
        added = manager.add_files(data, self.json_body(), self.identity.name, hasher=self.kqi.schedule_hash)
        self.write_json({"id": data.id, "files": [file_output(f) for f in added]}, status=201)


class DataFileHandler(DataHandlerBase):
    @contract(response=None, status=204, errors=(409,))
    async def delete(self, data_id, file_id):
        manager = self.manager(with_store=True)
        data = manager.get(self.int_path(data_id))
        await self.in_thread(manager.delete_file, data, self.int_path(file_id, "file id"))
        self.no_content()


class DataTagHandler(DataHandlerBase):
    """PUT/DELETE /data/{id}/tags/{tag}: attach or detach one tag."""

    @contract(response=DataIndexOutput)
    def put(self, data_id, tag):
        manager = self.manager()
        data = manager.get(self.int_path(data_id))
        tags = data.tag_names + ([tag] if tag not in data.tag_names else [])
        self.write_json(data_index(manager.update(data, {"tags": tags}, self.identity.name)))

    @contract(response=DataIndexOutput)
    def delete(self, data_id, tag):
        manager = self.manager()
        data = manager.get(self.int_path(data_id))
        tags = [t for t in data.tag_names if t != tag]
        self.write_json(data_index(manager.update(data, {"tags": tags}, self.identity.name)))


class DataTagListHandler(DataHandlerBase):
    """GET /data/datatags: every tag used in the tenant."""

    access = {"GET": Access.TENANT_USER}

    @contract(response=list[str])
    def get(self):
        names = self.db.scalars(
            select(DataTag.name).join(Data, Data.id == DataTag.data_id)
            .where(Data.tenant_id == self.tenant.id).distinct().order_by(DataTag.name)
        ).all()
        self.write_json(list(names))


default_handlers = [
    (r"/data", DataListHandler),
    (r"/data/datatags", DataTagListHandler),
    (r"/data/([^/]+)", DataHandler),
    (r"/data/([^/]+)/files", DataFilesHandler),
    (r"/data/([^/]+)/files/([^/]+)", DataFileHandler),
    (r"/data/([^/]+)/tags/([^/]+)", DataTagHandler),
]
