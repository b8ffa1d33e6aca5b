"""Infrastructure: git servers, registries, storage endpoints, nodes, partitions, quotas
(/admin/*, system administrators), what the current tenant may use (/tenant/*), and
browsing the repositories of the tenant's git servers (/git/*).

The rules are in domain/infra.py; these handlers parse, call and answer.
"""
from __future__ import annotations

import functools

from ..domain import infra
from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .schemas import infra as models
from .schemas.core import contract


def _contracted(func, **declared):
    """A method of a shared base class with the contract of one subclass (its own models)."""

    @functools.wraps(func)
    def method(self, *args):
        return func(self, *args)

    return contract(**declared)(method)


def _catalog_contracts(output, create, edit) -> dict:
    """The contracts of a catalog's list route (get, post) and item route (get, put, delete)."""
    return {
        "list": {"get": {"query": models.CatalogListQuery, "response": list[output], "paged": True},
                 "post": {"body": create, "response": output, "status": 201, "errors": (409,)}},
        "item": {"get": {"response": output},
                 "put": {"body": edit, "response": output, "errors": (409,)},
                 "delete": {"response": None, "status": 204, "errors": (409,)}},
    }


# ------------------------------------------------------------------ admin CRUD
class _CatalogHandler(BaseAPIHandler):
    """Shared by the CRUD handlers: `catalog_class` names the domain catalog."""

    access = Access.SYSTEM_ADMIN
    catalog_class: type = infra.Catalog

    def catalog(self) -> infra.Catalog:
        return self.catalog_class(self.db)


class _CatalogListHandler(_CatalogHandler):
    def get(self):
        catalog = self.catalog()
        page = catalog.page(self.query.name, self.page_request())
        self.write_json([catalog.to_json(r) for r in self.paginate(page)])

    def post(self):
        catalog = self.catalog()
        row = catalog.create(self.json_body(), self.identity.name)
        self.log.info("%s created %s %d (%s)", self.identity.name, catalog.what, row.id, row.name)
        self.write_json(catalog.to_json(row), status=201)


class _CatalogItemHandler(_CatalogHandler):
    def get(self, row_id):
        catalog = self.catalog()
        self.write_json(catalog.to_json(catalog.get(self.int_path(row_id))))

    def put(self, row_id):
        catalog = self.catalog()
        row = catalog.get(self.int_path(row_id))
        catalog.update(row, self.json_body(), self.identity.name)
        self.log.info("%s edited %s %d (%s)", self.identity.name, catalog.what, row.id, row.name)
        self.write_json(catalog.to_json(row))

    def delete(self, row_id):
        catalog = self.catalog()
        row = catalog.get(self.int_path(row_id))
        catalog.delete(row)
        self.log.info("%s deleted %s %d (%s)", self.identity.name, catalog.what, row.id, row.name)
        self.no_content()


_GIT = _catalog_contracts(models.GitServerOutput, models.GitServerInput, models.GitServerEditInput)
_REGISTRY = _catalog_contracts(models.RegistryOutput, models.RegistryInput, models.RegistryEditInput)
_STORAGE = _catalog_contracts(models.StorageOutput, models.StorageInput, models.StorageEditInput)
_NODE = _catalog_contracts(models.NodeOutput, models.NodeInput, models.NodeEditInput)


class GitServerListHandler(_CatalogListHandler):
    catalog_class = infra.GitServers
    get = _contracted(_CatalogListHandler.get, **_GIT["list"]["get"])
    post = _contracted(_CatalogListHandler.post, **_GIT["list"]["post"])


class GitServerHandler(_CatalogItemHandler):
    catalog_class = infra.GitServers
    get = _contracted(_CatalogItemHandler.get, **_GIT["item"]["get"])
    put = _contracted(_CatalogItemHandler.put, **_GIT["item"]["put"])
    delete = _contracted(_CatalogItemHandler.delete, **_GIT["item"]["delete"])


class RegistryListHandler(_CatalogListHandler):
    catalog_class = infra.Registries
    get = _contracted(_CatalogListHandler.get, **_REGISTRY["list"]["get"])
    post = _contracted(_CatalogListHandler.post, **_REGISTRY["list"]["post"])


class RegistryHandler(_CatalogItemHandler):
    catalog_class = infra.Registries
    get = _contracted(_CatalogItemHandler.get, **_REGISTRY["item"]["get"])
    put = _contracted(_CatalogItemHandler.put, **_REGISTRY["item"]["put"])
    delete = _contracted(_CatalogItemHandler.delete, **_REGISTRY["item"]["delete"])


class _StorageCatalog:
    def catalog(self):
        return infra.Storages(self.db, self.kqi.secret_box)


class StorageListHandler(_StorageCatalog, _CatalogListHandler):
    get = _contracted(_CatalogListHandler.get, **_STORAGE["list"]["get"])
    post = _contracted(_CatalogListHandler.post, **_STORAGE["list"]["post"])


class StorageHandler(_StorageCatalog, _CatalogItemHandler):
    get = _contracted(_CatalogItemHandler.get, **_STORAGE["item"]["get"])
    put = _contracted(_CatalogItemHandler.put, **_STORAGE["item"]["put"])
    delete = _contracted(_CatalogItemHandler.delete, **_STORAGE["item"]["delete"])


class NodeListHandler(_CatalogListHandler):
    catalog_class = infra.Nodes
    get = _contracted(_CatalogListHandler.get, **_NODE["list"]["get"])
    post = _contracted(_CatalogListHandler.post, **_NODE["list"]["post"])


class NodeHandler(_CatalogItemHandler):
    catalog_class = infra.Nodes
    get = _contracted(_CatalogItemHandler.get, **_NODE["item"]["get"])
    put = _contracted(_CatalogItemHandler.put, **_NODE["item"]["put"])
    delete = _contracted(_CatalogItemHandler.delete, **_NODE["item"]["delete"])


class _EnumHandler(BaseAPIHandler):
    """GET of a fixed list of {id, name} (service types, access levels)."""

    access = Access.SYSTEM_ADMIN
    values: dict[int, str] = {}

    @contract(response=list[models.EnumItemOutput])
    def get(self):
        self.write_json(infra.enum_list(self.values))


class GitTypesHandler(_EnumHandler):
    values = infra.GIT_SERVICE_TYPES


class RegistryTypesHandler(_EnumHandler):
    values = infra.REGISTRY_SERVICE_TYPES


class NodeAccessLevelsHandler(_EnumHandler):
    values = infra.NODE_ACCESS_LEVELS


class AdminPartitionsHandler(BaseAPIHandler):
    access = Access.SYSTEM_ADMIN

    @contract(response=list[str])
    def get(self):
        self.write_json(infra.all_partitions(self.db))


class QuotasHandler(BaseAPIHandler):
    """GET/POST /admin/quotas: [{tenantId, tenantName, cpu, memory, gpu}]; 0 = no limit."""

    access = Access.SYSTEM_ADMIN

    @contract(response=list[models.QuotaOutput], paged=True)
    def get(self):
        self.write_json([infra.quota_json(t) for t in self.paginate(infra.quota_page(self.db, self.page_request()))])

    @contract(body=list[models.QuotaInput], response=list[models.QuotaOutput])
    def post(self):
        tenants = infra.set_quotas(self.db, self.body_data(), self.identity.name)
        self.log.info("%s set the quotas of tenants %s", self.identity.name, ", ".join(t.name for t in tenants))
        self.write_json([infra.quota_json(t) for t in tenants])


# ------------------------------------------------------------- current tenant
class TenantGitServersHandler(BaseAPIHandler):
    """The git servers of the current tenant; `isDefault` (KQI) marks the tenant's default."""

    access = Access.TENANT_USER

    @contract(response=list[models.TenantGitServerOutput])
    def get(self):
        servers = infra.GitServers(self.db)
        rows = []
        for g in self.tenant.git_servers:
            rows.append({**servers.to_json(g), "isDefault": g.id == self.tenant.default_git_id})
        self.write_json(rows)


class TenantRegistriesHandler(BaseAPIHandler):
    """The registries of the current tenant; `isDefault` (KQI) marks the tenant's default."""

    access = Access.TENANT_USER

    @contract(response=list[models.TenantRegistryOutput])
    def get(self):
        registries = infra.Registries(self.db)
        rows = []
        for r in self.tenant.registries:
            rows.append({**registries.to_json(r), "isDefault": r.id == self.tenant.default_registry_id})
        self.write_json(rows)


class TenantPartitionsHandler(BaseAPIHandler):
    access = Access.TENANT_USER

    @contract(response=list[str])
    def get(self):
        self.write_json(infra.tenant_partitions(self.db, self.tenant))


class TenantQuotaHandler(BaseAPIHandler):
    access = Access.TENANT_USER

    @contract(response=models.QuotaOutput)
    def get(self):
        self.write_json(infra.quota_json(self.tenant))


# --------------------------------------------------------------- git browsing
class _GitBrowseHandler(BaseAPIHandler):
    access = Access.TENANT_USER
    #: the document's schema of {gitId} (kqi_services/openapi.py): an id, or -1 for the tenant's default
    path_schemas = {"gitId": {"type": "integer", "minimum": -1, "maximum": 2**53,
                              "description": "The git server's id, or -1 for the current tenant's default git server."}}

    def browser(self, git_id: str) -> tuple:
        number = -1 if git_id == "-1" else self.int_path(git_id, "git id")
        server = infra.tenant_git_server(self.tenant, number)
        token = infra.user_git_token(self.db, self.kqi.secret_box, self.identity.name, server.id)
        return server, infra.git_browser(server, infra.BrowseContext(self.kqi.data_dir, token, self.tenant.name))

    def repo_names(self, server, owner: str, repository: str) -> tuple[str, str]:
        return infra.check_repo_names(owner, repository, nested_owner=infra.nested_owner_allowed(server))

    async def answer(self, call):
        try:
            self.write_json(await call)
        except infra.GitServiceError as e:
            raise ApiError(503, f"Failed to access the git service: {e}")


class GitReposHandler(_GitBrowseHandler):
    @contract(response=list[models.GitRepositoryOutput], errors=(503,))
    async def get(self, git_id):
        _, browser = self.browser(git_id)
        await self.answer(browser.repositories())


class GitBranchesHandler(_GitBrowseHandler):
    @contract(response=list[models.GitBranchOutput], errors=(503,))
    async def get(self, git_id, owner, repository):
        server, browser = self.browser(git_id)
        owner, repository = self.repo_names(server, owner, repository)
        await self.answer(browser.branches(owner, repository))


class GitCommitsHandler(_GitBrowseHandler):
    @contract(query=models.GitCommitsQuery, response=list[models.GitCommitOutput], errors=(503,))
    async def get(self, git_id, owner, repository):
        server, browser = self.browser(git_id)
        owner, repository = self.repo_names(server, owner, repository)
        branch = infra.check_branch(self.query.branch)
        page = self.query.page
        per_page = min(self.query.perPage, infra.COMMITS_PER_PAGE)
        await self.answer(browser.commits(owner, repository, branch, page, per_page))


class GitCommitHandler(_GitBrowseHandler):
    @contract(response=models.GitCommitOutput, errors=(503,))
    async def get(self, git_id, owner, repository, commit_id):
        server, browser = self.browser(git_id)
        owner, repository = self.repo_names(server, owner, repository)
        infra.check_branch(commit_id, "commitId")
        await self.answer(browser.commit(owner, repository, commit_id))


# owners may be nested (GitLab groups: a/b/c); the domain refuses '/' for other services
_REPO = r"/git/([^/]+)/repos/(.+)/([^/]+)"

default_handlers = [
    (r"/admin/git/endpoints", GitServerListHandler),
    (r"/admin/git/endpoints/([^/]+)", GitServerHandler),
    (r"/admin/git/types", GitTypesHandler),
    (r"/admin/registry/endpoints", RegistryListHandler),
    (r"/admin/registry/endpoints/([^/]+)", RegistryHandler),
    (r"/admin/registry/types", RegistryTypesHandler),
    (r"/admin/storage/endpoints", StorageListHandler),
    (r"/admin/storage/endpoints/([^/]+)", StorageHandler),
    (r"/admin/nodes", NodeListHandler),
    (r"/admin/nodes/([^/]+)", NodeHandler),
    (r"/admin/node-access-levels", NodeAccessLevelsHandler),
    (r"/admin/partitions", AdminPartitionsHandler),
    (r"/admin/quotas", QuotasHandler),
    (r"/tenant/git/endpoints", TenantGitServersHandler),
    (r"/tenant/registry/endpoints", TenantRegistriesHandler),
    (r"/tenant/partitions", TenantPartitionsHandler),
    (r"/tenant/quota", TenantQuotaHandler),
    (r"/git/([^/]+)/repos", GitReposHandler),
    (_REPO + r"/branches", GitBranchesHandler),
    (_REPO + r"/commits/([^/]+)", GitCommitHandler),
    (_REPO + r"/commits", GitCommitsHandler),
]
