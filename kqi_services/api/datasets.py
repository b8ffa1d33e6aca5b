"""Datasets: /datasets, /datasets/{id}, files, pathpairs, copy; /datatypes."""
from __future__ import annotations

from ..domain.datasets import DataSetManager, data_types, dataset_index
from ..permissions import Access
from ..storage.factory import tenant_key
from .base import BaseAPIHandler


class DataSetHandlerBase(BaseAPIHandler):
    access = Access.TENANT_USER

    def manager(self) -> DataSetManager:
        return DataSetManager(self.db, self.tenant)


class DataSetListHandler(DataSetHandlerBase):
    def get(self):
        args = {k: self.get_query_argument(k, None) or self.get_query_argument(k[0].upper() + k[1:], None)
                for k in ("id", "name", "memo", "createdAt")}
        rows = self.manager().search(args)
        self.write_json([dataset_index(d) for d in self.paginate(rows)])

    def post(self):
        dataset = self.manager().create(self.json_body(), self.identity.name)
        self.write_json(dataset_index(dataset), status=201)


class DataSetHandler(DataSetHandlerBase):
    def get(self, dataset_id):
        manager = self.manager()
        self.write_json(manager.details(manager.get(self.int_path(dataset_id))))

    def put(self, dataset_id):
        manager = self.manager()
        dataset = manager.update_entries(manager.get(self.int_path(dataset_id)), self.json_body(),
                                         self.identity.name)
        self.write_json(dataset_index(dataset))

    def patch(self, dataset_id):
        manager = self.manager()
        dataset = manager.update_meta(manager.get(self.int_path(dataset_id)), self.json_body(), self.identity.name)
        self.write_json(dataset_index(dataset))

    def delete(self, dataset_id):
        manager = self.manager()
        manager.delete(manager.get(self.int_path(dataset_id)))
        self.no_content()


class DataSetCopyHandler(DataSetHandlerBase):
    """POST /datasets/{id}/copy {name?, memo?} (KQI addition): a new dataset with the same data."""

    def post(self, dataset_id):
        manager = self.manager()
        new = manager.copy(manager.get(self.int_path(dataset_id)), self.json_body(required=False),
                           self.identity.name)
        self.write_json(dataset_index(new), status=201)


class DataSetFilesHandler(DataSetHandlerBase):
    def get(self, dataset_id):
        manager = self.manager()
        dataset = manager.get(self.int_path(dataset_id))
        url_for = None
        if self.get_query_argument("withUrl", "false").lower() == "true":
            store, base_url = self.tenant_store(), self.base_url()

            def url_for(f):
                return store.download_url(tenant_key(self.tenant, f.stored_path), f.file_name, base_url,
                                          self.kqi.download_url_expiry_seconds)

        self.write_json(manager.files(dataset, url_for))


class DataSetPathPairsHandler(DataSetHandlerBase):
    def get(self, dataset_id):
        manager = self.manager()
        self.write_json(manager.path_pairs(manager.get(self.int_path(dataset_id))))


class DataTypesHandler(DataSetHandlerBase):
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
