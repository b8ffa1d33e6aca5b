"""Notebooks: /notebook/... in KAMONOHASHI's v2 shapes; each one is its owner's hub named server."""
from __future__ import annotations

import os

from ..domain.notebooks import OUTPUT_FOLDER, NotebookManager, hub_base_url, notebook_output, notebook_url
from ..domain.validation import NotFoundError
from ..permissions import Access
from ..storage.factory import tenant_key
from ..storage.local import LocalObjectStore
from .base import BaseAPIHandler
from .jobs_common import MAX_DIR_ENTRIES, clean_path
from .schemas.core import contract
from .schemas.notebooks import (
    NotebookContainerFilesOutput,
    NotebookContainerFilesQuery,
    NotebookEditInput,
    NotebookEndpointOutput,
    NotebookListQuery,
    NotebookOutput,
    NotebookRunInput,
)


class NotebookHandlerBase(BaseAPIHandler):
    access = Access.TENANT_USER

    def manager(self) -> NotebookManager:
        return NotebookManager(self.db, self.tenant, self.identity.name, self.kqi)

    def notebook(self, notebook_id):
        return self.manager().get(self.int_path(notebook_id))

    def output(self, nb) -> dict:
        return notebook_output(nb, hub_base_url(self.kqi.hub_prefix))


class NotebookListHandler(NotebookHandlerBase):
    @contract(query=NotebookListQuery, response=list[NotebookOutput], paged=True)
    async def get(self):
        manager = self.manager()
        # the statuses the filter reads are current: the notebooks recorded Running or Pending (as
        # many as servers are up) are brought up to date from one hub request before the database
        # filters and pages; as KAMONOHASHI's list, which asks the cluster only about the rows whose
        # status says a container exists, the others are not asked about (no request when none is)
        active = manager.active()
        if active:
            await manager.refresh_many(active, await manager.active_servers())
        args = {k: getattr(self.query, k) for k in ("id", "name", "createdAt", "createdBy", "memo", "status")}
        page = manager.search_page(args, self.page_request().or_per_page())
        self.write_json([self.output(nb) for nb in self.paginate(page)])


class NotebookRunHandler(NotebookHandlerBase):
    """POST /notebook/run: check the options, record the notebook and start its server."""

    @contract(body=NotebookRunInput, response=NotebookOutput, status=201, errors=(409,))
    async def post(self):
        nb = await self.manager().run(self.json_body())
        self.write_json(self.output(nb), status=201)


class NotebookHandler(NotebookHandlerBase):
    @contract(response=NotebookOutput)
    async def get(self, notebook_id):
        nb = await self.manager().refresh(self.notebook(notebook_id))
        self.write_json(self.output(nb))

    @contract(body=NotebookEditInput, response=NotebookOutput)
    def put(self, notebook_id):
        nb = self.notebook(notebook_id)
        body = self.json_body()
        if "memo" in body:
            nb.memo = body.get("memo")
        if body.get("name"):
            nb.name = str(body["name"])[:64]
        nb.modified_by = self.identity.name
        self.db.commit()
        self.write_json(self.output(nb))

    @contract(response=None, status=204, errors=(409,))
    async def delete(self, notebook_id):
        await self.manager().delete(self.notebook(notebook_id))
        self.no_content()


class NotebookHaltHandler(NotebookHandlerBase):
    @contract(response=NotebookOutput, errors=(409,))
    async def post(self, notebook_id):
        nb = await self.manager().halt(self.notebook(notebook_id))
        self.write_json(self.output(nb))


class NotebookRerunHandler(NotebookHandlerBase):
    """POST /notebook/{id}/rerun: start it again with the same conditions (changes in the body win);
    dataset changes are picked up, /kqi/output is kept."""

    @contract(body=NotebookRunInput, body_required=False, response=NotebookOutput, errors=(409,))
    async def post(self, notebook_id):
        nb = await self.manager().rerun(self.notebook(notebook_id), self.json_body(required=False))
        self.write_json(self.output(nb))


class NotebookEndpointHandler(NotebookHandlerBase):
    @contract(response=NotebookEndpointOutput)
    async def get(self, notebook_id):
        nb = await self.manager().refresh(self.notebook(notebook_id))
        if nb.status != "Running":
            raise NotFoundError(f"The notebook {nb.name} is not running ({nb.status}).")
        self.write_json({"url": notebook_url(nb, hub_base_url(self.kqi.hub_prefix)), "nodePort": None,
                         "token": None})


class NotebookContainerFilesHandler(NotebookHandlerBase):
    """GET /notebook/{id}/container-files?path=/&withUrl= : browse the notebook's /kqi/output."""

    @contract(query=NotebookContainerFilesQuery, response=NotebookContainerFilesOutput)
    async def get(self, notebook_id):
        nb = self.notebook(notebook_id)
        rel = clean_path(self.query.path)
        with_url = self.query.withUrl
        store = self.tenant_store()
        base_url = self.base_url()
        prefix = f"{OUTPUT_FOLDER}/{nb.id}" + (f"/{rel}" if rel else "")
        result = await self.in_thread(self._list, store, prefix, rel, with_url, base_url)
        self.write_json(result)

    def _list(self, store, prefix, rel, with_url, base_url):
        dirs, files = {}, []

        def url(key, name):
            return store.download_url(key, name, base_url, self.kqi.download_url_expiry_seconds) if with_url else None

        if isinstance(store, LocalObjectStore):
            # the folder is the notebook's home: symlinks in it (the runtime's links to /kqi/input,
            # /kqi/git, ... or the user's own) point into the sandbox, never to files of this host
            folder = store.folder(tenant_key(self.tenant, prefix))  # no links followed; a file: 400
            entries = sorted(os.scandir(folder), key=lambda e: e.name) if folder else []
            for entry in entries[:MAX_DIR_ENTRIES + 1]:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    dirs[entry.name] = {"dirName": entry.name, "dirPath": "/" + (f"{rel}/" if rel else "") + entry.name}
                elif entry.is_file(follow_symlinks=False):
                    key = tenant_key(self.tenant, f"{prefix}/{entry.name}")
                    files.append({"key": key, "fileName": entry.name, "size": entry.stat(follow_symlinks=False).st_size,
                                  "url": url(key, entry.name)})
        else:
            base = tenant_key(self.tenant, prefix) + "/"
            for info in store.list(base):
                rest = info.key[len(base):]
                if "/" in rest:
                    name = rest.split("/", 1)[0]
                    dirs[name] = {"dirName": name, "dirPath": "/" + (f"{rel}/" if rel else "") + name}
                else:
                    files.append({"key": info.key, "fileName": rest, "size": info.size, "url": url(info.key, rest)})
        entries = list(dirs.values())
        return {"dirs": entries[:MAX_DIR_ENTRIES], "files": files[:MAX_DIR_ENTRIES],
                "exceeded": len(entries) + len(files) > MAX_DIR_ENTRIES}


class AvailableInfiniteTimeHandler(NotebookHandlerBase):
    @contract(response=bool)
    def get(self):
        self.write_json(self.tenant.available_infinite_time_notebook)


default_handlers = [
    (r"/notebook", NotebookListHandler),
    (r"/notebook/run", NotebookRunHandler),
    (r"/notebook/available-infinite-time", AvailableInfiniteTimeHandler),
    (r"/notebook/([0-9]+)", NotebookHandler),
    (r"/notebook/([0-9]+)/halt", NotebookHaltHandler),
    (r"/notebook/([0-9]+)/rerun", NotebookRerunHandler),
    (r"/notebook/([0-9]+)/endpoint", NotebookEndpointHandler),
    (r"/notebook/([0-9]+)/container-files", NotebookContainerFilesHandler),
]
