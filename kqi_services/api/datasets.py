"""Datasets: /datasets, /datasets/{id}, files, pathpairs, copy; /datatypes."""
from __future__ import annotations

from ..domain.datasets import DataSetManager, data_types, dataset_index
from ..permissions import Access
from ..storage.factory import tenant_key
from .base import BaseAPIHandler
from .schemas.core import contract
from .schemas.datasets import (
    DataSetCopyInput,
    DataSetCreateInput,
    DataSetDetailsOutput,
    DataSetEditEntriesInput,
    DataSetEditInput,
    DataSetFilesOutput,
    DataSetFilesQuery,
    DataSetIndexOutput,
    DataSetPathPairOutput,
    DataSetSearchQuery,
    DataTypeOutput,
)


class DataSetHandlerBase(BaseAPIHandler):
    access = Access.TENANT_USER

    def manager(self) -> DataSetManager:
        return DataSetManager(self.db, self.tenant)


class DataSetListHandler(DataSetHandlerBase):
    @contract(query=DataSetSearchQuery, response=list[DataSetIndexOutput], paged=True)
    def get(self):
        args = {k: getattr(self.query, k) for k in ("id", "name", "memo", "createdAt")}
        page = self.manager().search_page(args, self.page_request().or_per_page())
        self.write_json([dataset_index(d) for d in self.paginate(page)])

    @contract(body=DataSetCreateInput, response=DataSetIndexOutput, status=201)
    def post(self):
        dataset = self.manager().create(self.json_body(), self.identity.name)
        self.write_json(dataset_index(dataset), status=201)


class DataSetHandler(DataSetHandlerBase):
    @contract(response=DataSetDetailsOutput)
    def get(self, dataset_id):
        manager = self.manager()
        self.write_json(manager.details(manager.get(self.int_path(dataset_id))))

    @contract(body=DataSetEditEntriesInput, response=DataSetIndexOutput, errors=(409,))
    def put(self, dataset_id):
        manager = self.manager()
        dataset = manager.update_entries(manager.get(self.int_path(dataset_id)), self.json_body(),
                                         self.identity.name)
        self.write_json(dataset_index(dataset))

    @contract(body=DataSetEditInput, response=DataSetIndexOutput)
    def patch(self, dataset_id):
        manager = self.manager()
        dataset = manager.update_meta(manager.get(self.int_path(dataset_id)), self.json_body(), self.identity.name)
        self.write_json(dataset_index(dataset))

    @contract(response=None, status=204, errors=(409,))
    def delete(self, dataset_id):
        manager = self.manager()
        manager.delete(manager.get(self.int_path(dataset_id)))
        self.no_content()


class DataSetCopyHandler(DataSetHandlerBase):
    """POST /datasets/{id}/copy {name?, memo?} (KQI addition): a new dataset with the same data."""

    @contract(body=DataSetCopyInput, body_required=False, response=DataSetIndexOutput, status=201)
    def post(self, dataset_id):
        manager = self.manager()
        new = manager.copy(manager.get(self.int_path(dataset_id)), self.json_body(required=False),
                           self.identity.name)
        self.write_json(dataset_index(new), status=201)


class DataSetFilesHandler(DataSetHandlerBase):
    @contract(query=DataSetFilesQuery, response=DataSetFilesOutput)
    def get(self, dataset_id):
        manager = self.manager()
        dataset = manager.get(self.int_path(dataset_id))
        url_for = None
        if self.query.withUrl:
            store, base_url = self.tenant_store(), self.base_url()

            def url_for(f):
                return store.download_url(tenant_key(self.tenant, f.stored_path), f.file_name, base_url,
                                          self.kqi.download_url_expiry_seconds)

        self.write_json(manager.files(dataset, url_for))


class DataSetPathPairsHandler(DataSetHandlerBase):
    @contract(response=list[DataSetPathPairOutput])
    def get(self, dataset_id):
        manager = self.manager()
        self.write_json(manager.path_pairs(manager.get(self.int_path(dataset_id))))


class DataTypesHandler(DataSetHandlerBase):
    @contract(response=list[DataTypeOutput])
    def get(self):
        self.write_json([{"id": t.id, "name": t.name} for t in data_types(self.db)])


default_handlers = [
    (r"/datasets", DataSetListHandler),
    (r"/datasets/([^/]+)", DataSetHandler),
    (r"/datasets/([^/]+)/copy", DataSetCopyHandler),
    (r"/datasets/([^/]+)/files", DataSetFilesHandler),
    (r"/datasets/([^/]+)/pathpairs", DataSetPathPairsHandler),
    (r"/datatypes", DataTypesHandler),
]
