"""Infrastructure rules: git servers, container registries, storage endpoints, nodes, quotas,
and browsing the repositories of a git server.

What a system administrator registers here is what tenants work with: a tenant is given
git servers, registries and a storage endpoint (see domain/tenants.py), and may run on the
nodes whose access level lets it. The rules:

- names are unique per kind (409 on a clash); ids must exist (404);
- URLs are http(s) URLs without credentials in them, except the two kinds of thing that
  live on this machine: git servers of service type 6 (bare repositories) and storage
  endpoints of kind "local", whose URLs are absolute file:// URLs;
- numbers (ports, cpu, memory, gpu) are non-negative;
- a git server, registry or storage endpoint that a tenant uses cannot be deleted (409,
  naming the tenants);
- a storage endpoint's secret key is stored encrypted and never returned
  (`secretKeySet` says whether one is stored);
- a bad request is refused as a whole (400 with every problem), before anything changes.

Quotas: a tenant limit of 0 or null means "no limit". It is stored as NULL and shown as 0,
as KAMONOHASHI does (`POST /admin/quotas` replaces all three limits of each tenant listed;
a limit left out is unlimited).

Git browsing: `git_browser()` picks, by service type, a browser with four operations
(repositories, branches, commits of a branch, one commit). Type 6 reads bare repositories
of the current tenant only, `<root>/<tenant name>/<owner>/<repository>.git` (see
`tenant_git_root`: repositories of the embedded git server belong to a tenant, and no
request of another tenant reaches that folder), with GitPython. Type 5
(plain git over HTTP(S)) asks the server with `git ls-remote` and fetches into a cache
to read history. GitHub/GitBucket (1, 4) and GitLab (2, 3) are asked through their REST APIs,
with the user's git token when one is stored. A server that cannot be reached raises
GitServiceError (the API answers 503).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urljoin, urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from ..db.models import (
    GitServer,
    Node,
    Registry,
    Storage,
    Tenant,
    UserGitToken,
    UserSetting,
    tenant_git_servers,
    tenant_registries,
    utcnow,
)
from .paging import Page, PageRequest, fetch_page
from .validation import ConflictError, Fields, NotFoundError, ValidationError

GIT_SERVICE_TYPES = {
    1: "GitHub",
    2: "GitLab",
    3: "GitLabCom",
    4: "GitBucket",
    5: "GitHttp",  # KQI: plain git over HTTP(S), <repositoryUrl>/<owner>/<repository>.git
    6: "Local",  # KQI: bare repositories on this machine, <repositoryUrl path>/<tenant>/<owner>/<repository>.git
}
GIT_GITHUB, GIT_GITLAB, GIT_GITLAB_COM, GIT_GITBUCKET, GIT_HTTP, GIT_LOCAL = 1, 2, 3, 4, 5, 6

REGISTRY_SERVICE_TYPES = {1: "DockerHub", 2: "GitLab", 3: "PrivateDockerRegistry", 4: "NvidiaGPUCloud"}

NODE_ACCESS_LEVELS = {0: "Disabled", 1: "Private", 2: "Public"}
ACCESS_DISABLED, ACCESS_PRIVATE, ACCESS_PUBLIC = 0, 1, 2

STORAGE_KINDS = ("local", "s3")

MAX_ID = 2**31 - 1  # the database's integer ids; a larger one names nothing

NAME_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9_])?"
NAME_HELP = "must be letters, digits, '.', '_' and '-', starting with a letter or digit"
HOST_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?"
NODE_NAME_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
PARTITION_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"  # a Kubernetes label value
BUCKET_PATTERN = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
REGION_PATTERN = r"[a-z0-9-]{1,64}"


def enum_list(mapping: dict[int, str]) -> list[dict]:
    return [{"id": k, "name": v} for k, v in mapping.items()]


def _audit(row) -> dict:
    return {
        "createdBy": row.created_by,
        "createdAt": row.created_at,
        "modifiedBy": row.modified_by,
        "modifiedAt": row.modified_at,
    }


def _number(value):
    """A stored float as JSON: whole numbers without '.0'."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ------------------------------------------------------------------------------ URLs
def check_url(f: Fields, name: str, value: str | None, *, schemes: tuple[str, ...]) -> None:
    """Record on `f` what is wrong with a URL (None is not checked: use required=)."""
    if not value:
        return
    if len(value) > 1024:
        return  # Fields.str reported it already
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        f.error(name, "must not contain control characters")
        return
    if " " in value and not value.lower().startswith("file:"):
        f.error(name, "must not contain spaces")
        return
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        f.error(name, "is not a valid URL")
        return
    scheme = parts.scheme.lower()
    wanted = " or ".join(f"{s}://" for s in schemes)
    if scheme not in schemes:
        f.error(name, f"must be a {wanted} URL")
        return
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            f.error(name, "must be file:///absolute/path (no host)")
        elif not parts.path.startswith("/"):
            f.error(name, "must name an absolute path")
        elif ".." in parts.path.split("/"):
            f.error(name, "must not contain '..'")
        elif parts.query or parts.fragment:
            f.error(name, "must not have a query or fragment")
        return
    if not parts.hostname:
        f.error(name, "must name a host")
    elif parts.username is not None or parts.password is not None:
        f.error(name, "must not carry a user name or password (users keep their tokens in their settings)")
    elif port == 0:
        f.error(name, "has an invalid port")


def file_url_path(url: str) -> str:
    return urlsplit(url).path


# ------------------------------------------------------------------------ catalogs
def holds_exactly(db: Session, column, text: str):
    """`column` holds `text` as written (case counts; no LIKE wildcards): instr() on SQLite,
    strpos() on PostgreSQL."""
    if db.get_bind().dialect.name == "sqlite":
        return func.instr(column, text) > 0
    return func.strpos(column, text) > 0


class Catalog:
    """Create, read, edit and delete one kind of infrastructure row, with the shared rules.

    A subclass says how to read a body (`read`), how a row looks in JSON (`to_json`) and
    which tenants use a row (`users`). Edits merge the body over the row's current JSON,
    so a PUT may send only what changes; the merged result is checked as a whole.
    """

    model: type
    what: str = "row"

    def __init__(self, db: Session):
        self.db = db

    # -- to override
    def read(self, body: dict, current=None) -> dict:
        raise NotImplementedError

    def to_json(self, row) -> dict:
        raise NotImplementedError

    def users(self, row) -> list[Tenant]:
        return []

    def order(self):
        return (self.model.id,)

    def loaders(self) -> tuple:
        """Loader options for what to_json reads of related rows (one query per page)."""
        return ()

    # -- shared
    def list(self) -> list:
        return self.page(None, None).rows

    def page(self, name: str | None, request: PageRequest | None) -> Page:
        """One page of the rows in this catalog's order, only those whose name holds `name` (as
        written: KAMONOHASHI's node list compares with string.Contains, case and all)."""
        q = select(self.model)
        if name:
            q = q.where(holds_exactly(self.db, self.model.name, name))
        return fetch_page(self.db, q, self.order(), request, self.loaders())

    def get(self, row_id: int):
        row = self.db.get(self.model, row_id) if 0 < row_id <= MAX_ID else None
        if row is None:
            raise NotFoundError(f"No {self.what} has the id {row_id}.")
        return row

    def _check_name_free(self, name: str, exclude_id: int | None = None) -> None:
        query = select(self.model).where(self.model.name == name)
        other = self.db.scalar(query)
        if other is not None and other.id != exclude_id:
            raise ConflictError(f"A {self.what} named {name} exists already (id {other.id}).")

    def _commit(self) -> None:
        try:
            self.db.commit()
        except IntegrityError as e:
            self.db.rollback()
            raise ConflictError(f"Another {self.what} has the same name (it was saved at the same time).") from e

    def _apply(self, row, values: dict) -> None:
        for key, value in values.items():
            setattr(row, key, value)

    def create(self, body: dict, actor: str):
        values = self.read(body, None)
        self._check_name_free(values["name"])
        row = self.model(created_by=actor, modified_by=actor)
        self._apply(row, values)
        self.db.add(row)
        self._commit()
        return row

    def _check_editable(self, row, doing: str) -> None:
        if getattr(row, "is_not_editable", False):
            raise ValidationError({"id": [f"the {self.what} {row.id} ({row.name}) is built in: it may not be {doing}"]})

    def update(self, row, body: dict, actor: str):
        self._check_editable(row, "edited")
        merged = {**self.to_json(row), **body}
        values = self.read(merged, row)
        self._check_name_free(values["name"], exclude_id=row.id)
        self._apply(row, values)
        row.modified_by = actor
        row.modified_at = utcnow()
        self._commit()
        return row

    def delete(self, row) -> None:
        self._check_editable(row, "deleted")
        users = self.users(row)
        if users:
            names = ", ".join(f"{t.id}:{t.name}" for t in users)
            raise ConflictError(f"The {self.what} {row.id}:{row.name} is used by the tenants {names};"
                                " take it out of their settings first.")
        self.db.delete(row)
        try:
            self.db.commit()
        except IntegrityError as e:
            self.db.rollback()
            raise ConflictError(f"The {self.what} {row.id}:{row.name} is still used by other records"
                                " (jobs or settings) and cannot be deleted.") from e


class GitServers(Catalog):
    model = GitServer
    what = "git server"

    def read(self, body: dict, current=None) -> dict:
        f = Fields(body)
        name = f.str("name", required=True, max_length=128, pattern=NAME_PATTERN, pattern_help=NAME_HELP)
        service_type = f.int("serviceType", required=True)
        if service_type is not None and service_type not in GIT_SERVICE_TYPES:
            f.error("serviceType", "must be one of " + ", ".join(f"{k} ({v})" for k, v in GIT_SERVICE_TYPES.items()))
            service_type = None
        api_url = f.str("apiUrl", max_length=1024)
        repository_url = f.str("repositoryUrl", required=True, max_length=1024)
        if service_type == GIT_LOCAL:
            check_url(f, "repositoryUrl", repository_url, schemes=("file",))
            check_url(f, "apiUrl", api_url, schemes=("file",))
        elif service_type is not None:
            check_url(f, "repositoryUrl", repository_url, schemes=("http", "https"))
            check_url(f, "apiUrl", api_url, schemes=("http", "https"))
            if service_type != GIT_HTTP and not api_url:
                f.error("apiUrl", f"is required for {GIT_SERVICE_TYPES[service_type]} (its REST API address)")
        f.done()
        return {"name": name, "service_type": service_type, "api_url": api_url or None,
                "repository_url": repository_url}

    def to_json(self, g: GitServer) -> dict:
        return {
            "id": g.id,
            "name": g.name,
            "serviceType": g.service_type,
            "serviceTypeName": GIT_SERVICE_TYPES.get(g.service_type, str(g.service_type)),
            "apiUrl": g.api_url,
            "repositoryUrl": g.repository_url,
            "isNotEditable": g.is_not_editable,
            **_audit(g),
        }

    def users(self, g: GitServer) -> list[Tenant]:
        return list(self.db.scalars(
            select(Tenant).where(
                Tenant.id.in_(select(tenant_git_servers.c.tenant_id).where(tenant_git_servers.c.git_server_id == g.id))
                | (Tenant.default_git_id == g.id)
            ).order_by(Tenant.id)
        ).all())


class Registries(Catalog):
    model = Registry
    what = "registry"

    def read(self, body: dict, current=None) -> dict:
        f = Fields(body)
        name = f.str("name", required=True, max_length=128, pattern=NAME_PATTERN, pattern_help=NAME_HELP)
        host = f.str("host", required=True, max_length=512, pattern=HOST_PATTERN,
                     pattern_help="must be a host name or address without scheme, port or path")
        port_no = f.int("portNo", minimum=1, maximum=65535)
        service_type = f.int("serviceType", required=True)
        if service_type is not None and service_type not in REGISTRY_SERVICE_TYPES:
            f.error("serviceType", "must be one of " + ", ".join(
                f"{k} ({v})" for k, v in REGISTRY_SERVICE_TYPES.items()))
        project_name = f.str("projectName", max_length=255)
        api_url = f.str("apiUrl", max_length=1024)
        registry_url = f.str("registryUrl", max_length=1024)
        check_url(f, "apiUrl", api_url, schemes=("http", "https"))
        check_url(f, "registryUrl", registry_url, schemes=("http", "https"))
        f.done()
        return {"name": name, "host": host, "port_no": port_no, "service_type": service_type,
                "project_name": project_name or None, "api_url": api_url or None,
                "registry_url": registry_url or None}

    def to_json(self, r: Registry) -> dict:
        return {
            "id": r.id,
            "name": r.name,
            "host": r.host,
            "portNo": r.port_no,
            "serviceType": r.service_type,
            "serviceTypeName": REGISTRY_SERVICE_TYPES.get(r.service_type, str(r.service_type)),
            "projectName": r.project_name,
            "apiUrl": r.api_url,
            "registryUrl": r.registry_url,
            "registryPath": f"{r.host}:{r.port_no}" if r.port_no else r.host,
            "isNotEditable": r.is_not_editable,
            **_audit(r),
        }

    def users(self, r: Registry) -> list[Tenant]:
        return list(self.db.scalars(
            select(Tenant).where(
                Tenant.id.in_(select(tenant_registries.c.tenant_id).where(tenant_registries.c.registry_id == r.id))
                | (Tenant.default_registry_id == r.id)
            ).order_by(Tenant.id)
        ).all())


class Storages(Catalog):
    """Storage endpoints. `secretKey` is write-only: absent or null keeps the stored one,
    "" removes it, any other string replaces it (encrypted with the service's secret box)."""

    model = Storage
    what = "storage endpoint"

    def __init__(self, db: Session, secret_box):
        super().__init__(db)
        self.secret_box = secret_box

    def read(self, body: dict, current=None) -> dict:
        f = Fields(body)
        name = f.str("name", required=True, max_length=128, pattern=NAME_PATTERN, pattern_help=NAME_HELP)
        server_url = f.str("serverUrl", required=True, max_length=1024)
        kind = f.str("kind", max_length=16)
        if kind is None and server_url:
            kind = "local" if server_url.lower().startswith("file:") else "s3"
        if kind is not None and kind not in STORAGE_KINDS:
            f.error("kind", "must be 'local' or 's3'")
        elif kind == "local":
            check_url(f, "serverUrl", server_url, schemes=("file",))
        elif kind == "s3":
            check_url(f, "serverUrl", server_url, schemes=("http", "https"))
        public_url = f.str("publicUrl", max_length=1024, allow_empty=True)
        if public_url and kind == "local":
            f.error("publicUrl", "is for S3 endpoints only (a local store's files go through the service)")
        elif public_url:
            check_url(f, "publicUrl", public_url, schemes=("http", "https"))
        bucket = f.str("bucket", max_length=63, pattern=BUCKET_PATTERN,
                       pattern_help="must be an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-'")
        region = f.str("region", max_length=64, pattern=REGION_PATTERN,
                       pattern_help="must be lower-case letters, digits and '-'")
        path_style = f.bool("pathStyle", default=True)
        access_key = f.str("accessKey", max_length=255)
        nfs_server = f.str("nfsServer", max_length=255)
        nfs_root = f.str("nfsRoot", max_length=1024)
        values = {"name": name, "kind": kind, "server_url": server_url, "public_url": public_url or None,
                  "bucket": bucket or None,
                  "region": region or None, "path_style": path_style, "access_key": access_key or None,
                  "nfs_server": nfs_server or None, "nfs_root": nfs_root or None}
        secret = body.get("secretKey")
        if secret is not None:
            if not isinstance(secret, str):
                f.error("secretKey", "must be a string")
            elif len(secret) > 1024:
                f.error("secretKey", "must have at most 1024 characters")
            elif "\x00" in secret:
                f.error("secretKey", "must not contain NUL characters")
        f.done()
        if isinstance(secret, str):
            values["secret_key_encrypted"] = self.secret_box.encrypt(secret) if secret else None
        return values

    def to_json(self, s: Storage) -> dict:
        return {
            "id": s.id,
            "name": s.name,
            "kind": s.kind,
            "serverUrl": s.server_url,
            "publicUrl": s.public_url,
            "bucket": s.bucket,
            "region": s.region,
            "pathStyle": s.path_style,
            "accessKey": s.access_key,
            "secretKeySet": bool(s.secret_key_encrypted),
            "nfsServer": s.nfs_server,
            "nfsRoot": s.nfs_root,
            **_audit(s),
        }

    def users(self, s: Storage) -> list[Tenant]:
        return list(self.db.scalars(select(Tenant).where(Tenant.storage_id == s.id).order_by(Tenant.id)).all())


class Nodes(Catalog):
    """Nodes. `assignedTenantIds` count only for private nodes (a public node serves every
    tenant, a disabled one none); unknown tenant ids are a 400."""

    model = Node
    what = "node"

    def order(self):
        return (Node.name, Node.id)

    def read(self, body: dict, current=None) -> dict:
        f = Fields(body)
        name = f.str("name", required=True, max_length=253, pattern=NODE_NAME_PATTERN,
                     pattern_help="must be a host name: letters, digits, '.', '_' and '-'")
        memo = f.str("memo", max_length=1024, allow_empty=True)
        partition = f.str("partition", max_length=63, pattern=PARTITION_PATTERN,
                          pattern_help="must be letters, digits, '.', '_' and '-' (a Kubernetes label value)")
        access_level = f.int("accessLevel", required=True)
        if access_level is not None and access_level not in NODE_ACCESS_LEVELS:
            f.error("accessLevel", "must be 0 (Disabled), 1 (Private) or 2 (Public)")
        tenant_ids = f.int_list("assignedTenantIds")
        tensorboard = f.bool("tensorBoardEnabled", default=False)
        notebook = f.bool("notebookEnabled", default=False)
        cpu = f.number("cpu", minimum=0)
        memory = f.number("memory", minimum=0)
        gpu = f.int("gpu", minimum=0)
        tenants = []
        if access_level == ACCESS_PRIVATE and tenant_ids:
            known = [i for i in tenant_ids if 0 < i <= MAX_ID]
            rows = {t.id: t for t in self.db.scalars(select(Tenant).where(Tenant.id.in_(known))).all()}
            missing = [i for i in tenant_ids if i not in rows]
            if missing:
                f.error("assignedTenantIds", "unknown tenant ids: " + ", ".join(map(str, missing)))
            tenants = [rows[i] for i in tenant_ids if i in rows]
        f.done()
        return {"name": name, "memo": memo or None, "partition": partition or None,
                "access_level": access_level, "tenants": tenants, "tensorboard_enabled": tensorboard,
                "notebook_enabled": notebook, "cpu": cpu, "memory": memory, "gpu": gpu}

    def loaders(self) -> tuple:
        return (selectinload(Node.tenants),)

    def to_json(self, n: Node) -> dict:
        return {
            "id": n.id,
            "name": n.name,
            "memo": n.memo,
            "partition": n.partition,
            "accessLevel": n.access_level,
            "accessLevelStr": NODE_ACCESS_LEVELS.get(n.access_level, str(n.access_level)),
            "assignedTenantIds": [t.id for t in n.tenants],
            "assignedTenants": [{"id": t.id, "name": t.name, "displayName": t.display_name} for t in n.tenants],
            "tensorBoardEnabled": n.tensorboard_enabled,
            "notebookEnabled": n.notebook_enabled,
            "cpu": _number(n.cpu),
            "memory": _number(n.memory),
            "gpu": n.gpu,
            **_audit(n),
        }


# ---------------------------------------------------------------------- partitions
def all_partitions(db: Session) -> list[str]:
    return sorted({p for p in db.scalars(select(Node.partition)).all() if p})


def tenant_nodes(db: Session, tenant: Tenant) -> list[Node]:
    """Nodes the tenant may run on: public ones, and private ones assigned to it."""
    nodes = db.scalars(select(Node).where(Node.access_level != ACCESS_DISABLED).order_by(Node.name)).all()
    return [n for n in nodes if n.access_level == ACCESS_PUBLIC
            or (n.access_level == ACCESS_PRIVATE and any(t.id == tenant.id for t in n.tenants))]


def tenant_partitions(db: Session, tenant: Tenant) -> list[str]:
    return sorted({n.partition for n in tenant_nodes(db, tenant) if n.partition})


# -------------------------------------------------------------------------- quotas
def quota_json(t: Tenant) -> dict:
    """KAMONOHASHI's QuotaOutputModel: 0 means no limit; tenantName is the display name."""
    return {
        "tenantId": t.id,
        "tenantName": t.display_name,
        "name": t.name,  # KQI: the tenant's (group) name
        "cpu": _number(t.limit_cpu) or 0,
        "memory": _number(t.limit_memory) or 0,
        "gpu": t.limit_gpu or 0,
    }


def list_quotas(db: Session) -> list[Tenant]:
    return quota_page(db, None).rows


def quota_page(db: Session, request: PageRequest | None) -> Page:
    """The tenants' quotas, by display name, one page of them."""
    return fetch_page(db, select(Tenant), (Tenant.display_name, Tenant.id), request)


def set_quotas(db: Session, items, actor: str) -> list[Tenant]:
    """Apply [{tenantId, cpu, memory, gpu}]: all or nothing. 0, null or absent = no limit."""
    if not isinstance(items, list):
        raise ValidationError({"body": ["must be a JSON list of {tenantId, cpu, memory, gpu}"]})
    errors: dict[str, list[str]] = {}
    wanted: list[tuple[int, dict]] = []
    seen = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.setdefault(f"[{index}]", []).append("must be an object {tenantId, cpu, memory, gpu}")
            continue
        f = Fields(item)
        tenant_id = f.int("tenantId", required=True, minimum=1, maximum=MAX_ID)
        cpu = f.number("cpu", minimum=0)
        memory = f.number("memory", minimum=0)
        gpu = f.int("gpu", minimum=0)
        if tenant_id is not None and tenant_id in seen:
            f.error("tenantId", f"tenant {tenant_id} is listed twice")
        seen.add(tenant_id)
        for field, messages in f.errors.items():
            errors.setdefault(f"[{index}].{field}", []).extend(messages)
        if not f.errors:
            wanted.append((tenant_id, {"limit_cpu": cpu or None, "limit_memory": memory or None,
                                       "limit_gpu": gpu or None}))
    if errors:
        raise ValidationError(errors)
    ids = [tenant_id for tenant_id, _ in wanted]
    rows = {t.id: t for t in db.scalars(select(Tenant).where(Tenant.id.in_(ids))).all()} if ids else {}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFoundError("No tenant has the id " + ", ".join(map(str, missing)) + ".")
    now = utcnow()
    for tenant_id, limits in wanted:
        tenant = rows[tenant_id]
        for key, value in limits.items():
            setattr(tenant, key, value)
        tenant.modified_by = actor
        tenant.modified_at = now
    db.commit()
    return [rows[i] for i in ids]


# ---------------------------------------------------------------- tenant's git servers
def tenant_git_server(tenant: Tenant, git_id: int) -> GitServer:
    """A git server the tenant may use; -1 stands for the tenant's default."""
    if git_id == -1:
        git_id = tenant.default_git_id
        if git_id is None:
            raise NotFoundError("Your tenant has no default git server: ask an administrator to assign one.")
    for g in tenant.git_servers:
        if g.id == git_id:
            return g
    raise NotFoundError(f"Your tenant has no git server with the id {git_id}.")


def user_git_token(db: Session, secret_box, user_name: str, git_id: int) -> str | None:
    """The user's token for a git server, decrypted, or None."""
    row = db.scalar(
        select(UserGitToken).join(UserSetting, UserSetting.id == UserGitToken.user_id)
        .where(UserSetting.name == user_name, UserGitToken.git_server_id == git_id)
    )
    if row is None:
        return None
    try:
        return secret_box.decrypt(row.token_encrypted)
    except ValueError:
        return None


# ------------------------------------------------------------------- git browsing
class GitServiceError(Exception):
    """The git service could not be reached or answered nonsense (HTTP 503)."""


REPO_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,64}")
COMMITS_PER_PAGE = 100
TENANT_FOLDER = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # a tenant's name (domain/tenants.py)


def check_branch(branch: str | None, field: str = "branch") -> str | None:
    """A branch name (or commit id) from a request: None or a plausible git ref name."""
    if branch is None or branch == "":
        return None
    if (len(branch) > 255 or branch.startswith(("-", "/")) or ".." in branch
            or any(ord(c) < 32 or c in " ~^:?*[\\\x7f" for c in branch)):
        raise ValidationError({field: ["is not a valid branch name or commit id"]})
    return branch


def check_repo_names(owner: str, repository: str, *, nested_owner: bool = False) -> tuple[str, str]:
    """Validate an owner and repository name from a URL; returns them (".git" dropped)."""
    errors: dict[str, list[str]] = {}
    segments = owner.split("/") if nested_owner else [owner]
    if not all(REPO_SEGMENT.fullmatch(s) and ".." not in s for s in segments):
        errors["owner"] = ["must be letters, digits, '.', '_' and '-' (no '..', '/' or control characters)"]
    if repository.endswith(".git"):
        repository = repository[:-4]
    if not (REPO_SEGMENT.fullmatch(repository) and ".." not in repository):
        errors["repository"] = ["must be letters, digits, '.', '_' and '-' (no '..', '/' or control characters)"]
    if errors:
        raise ValidationError(errors)
    return owner, repository


def _commit_json(commit_id: str, committer: str | None, at: str | None, message: str | None,
                 author: str | None = None, parents: list[str] | None = None) -> dict:
    """KAMONOHASHI's CommitModel {commitId, committerName, commitAt, comment, display} plus
    KQI's message (the same text as comment), authorName and parentIds."""
    message = message or ""
    return {
        "commitId": commit_id,
        "committerName": committer,
        "commitAt": at,
        "comment": message,
        "display": f"{committer or ''} {at or ''}\n{message}",
        "message": message,
        "authorName": author,
        "parentIds": parents or [],
    }


class GitBrowser:
    async def repositories(self) -> list[dict]:
        raise NotImplementedError

    async def branches(self, owner: str, repository: str) -> list[dict]:
        raise NotImplementedError

    async def commits(self, owner: str, repository: str, branch: str | None, page: int,
                      per_page: int = COMMITS_PER_PAGE) -> list[dict]:
        raise NotImplementedError

    async def commit(self, owner: str, repository: str, ref: str) -> dict:
        raise NotImplementedError


# -- bare repositories read with GitPython (type 6, and the cache of type 5)
def _open_bare(path: str, owner: str, repository: str):
    import git

    if not os.path.isdir(path):
        raise NotFoundError(f"Repository {owner}/{repository} is not found.")
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotFoundError(f"Repository {owner}/{repository} is not found.")


def _local_commit_json(c) -> dict:
    return _commit_json(c.hexsha, c.committer.name, c.committed_datetime.isoformat(), c.message,
                        c.author.name, [p.hexsha for p in c.parents])


def local_branches(path: str, owner: str, repository: str) -> list[dict]:
    repo = _open_bare(path, owner, repository)
    with repo:
        return sorted(({"branchName": h.name, "commitId": h.commit.hexsha} for h in repo.heads
                       if h.is_valid()), key=lambda b: b["branchName"])


def local_commits(path: str, owner: str, repository: str, branch: str | None, page: int, per_page: int) -> list[dict]:
    repo = _open_bare(path, owner, repository)
    with repo:
        if branch is None:
            if not repo.head.is_valid():
                return []
            rev = "HEAD"
        else:
            if branch not in {h.name for h in repo.heads}:
                raise NotFoundError(f"Branch {branch} of {owner}/{repository} is not found.")
            rev = f"refs/heads/{branch}"
        return [_local_commit_json(c) for c in repo.iter_commits(rev, max_count=per_page,
                                                                   skip=(page - 1) * per_page)]


def local_commit(path: str, owner: str, repository: str, ref: str) -> dict:
    import git
    from gitdb.exc import ODBError

    repo = _open_bare(path, owner, repository)
    with repo:
        heads = {h.name: h for h in repo.heads}
        if ref in heads and heads[ref].is_valid():
            return _local_commit_json(heads[ref].commit)
        if COMMIT_ID.fullmatch(ref):
            try:
                commit = repo.commit(ref.lower())
                return _local_commit_json(commit)
            except (ODBError, ValueError, git.GitCommandError):
                pass
        raise NotFoundError(f"Commit {ref} of {owner}/{repository} is not found.")


def local_repositories(root: str) -> list[dict]:
    result = []
    if not os.path.isdir(root):
        return result
    for owner in sorted(os.listdir(root)):
        owner_dir = os.path.join(root, owner)
        if not REPO_SEGMENT.fullmatch(owner) or not os.path.isdir(owner_dir):
            continue
        for entry in sorted(os.listdir(owner_dir)):
            name = entry[:-4] if entry.endswith(".git") else None
            path = os.path.join(owner_dir, entry)
            if (name and REPO_SEGMENT.fullmatch(name) and os.path.isfile(os.path.join(path, "HEAD"))
                    and os.path.isdir(os.path.join(path, "objects"))):
                result.append({"owner": owner, "name": name, "fullName": f"{owner}/{name}"})
    return result


def tenant_git_root(server_root: str, tenant: str | None) -> str:
    """The folder of one tenant's repositories on a type-6 git server: <root>/<tenant name>.

    Every reader of a type-6 server (browsing, a job's clone, the smart HTTP service) goes
    through this, so that no request reaches another tenant's folder. No tenant, no folder."""
    if not tenant or not TENANT_FOLDER.fullmatch(tenant):
        raise NotFoundError("Repositories of this git server belong to a tenant: no tenant is selected.")
    return os.path.join(server_root, tenant)


class LocalGitBrowser(GitBrowser):
    """Service type 6: one tenant's bare repositories, <root>/<tenant>/<owner>/<repository>.git
    (`root` is the tenant's folder)."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def path(self, owner: str, repository: str) -> str:
        owner, repository = check_repo_names(owner, repository)
        path = os.path.realpath(os.path.join(self.root, owner, repository + ".git"))
        if not path.startswith(self.root + os.sep):
            raise NotFoundError(f"Repository {owner}/{repository} is not found.")
        return path

    async def repositories(self):
        return await asyncio.to_thread(local_repositories, self.root)

    async def branches(self, owner, repository):
        path = self.path(owner, repository)
        return await asyncio.to_thread(local_branches, path, owner, repository)

    async def commits(self, owner, repository, branch, page, per_page=COMMITS_PER_PAGE):
        path = self.path(owner, repository)
        return await asyncio.to_thread(local_commits, path, owner, repository, branch, page, per_page)

    async def commit(self, owner, repository, ref):
        path = self.path(owner, repository)
        return await asyncio.to_thread(local_commit, path, owner, repository, ref)


# -- plain git over HTTP(S) (type 5)
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "http:https", "GIT_ASKPASS": "/bin/false",
            "GCM_INTERACTIVE": "never"}
_NOT_FOUND_HINTS = ("not found", "does not appear to be a git repository", "error: 404",
                    "repository not exported")


def _run_git(args: list[str], what: str, timeout: float = 120) -> str:
    env = {**os.environ, **_GIT_ENV}
    try:
        result = subprocess.run(["git", *args], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GitServiceError(f"The git server did not answer in {timeout:.0f}s ({what}).")
    except OSError as e:
        raise GitServiceError(f"git cannot run on the service host: {e}")
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"git exited with {result.returncode}"
        if any(h in result.stderr.lower() for h in _NOT_FOUND_HINTS):
            raise NotFoundError(f"{what.capitalize()} is not found on the git server ({last}).")
        raise GitServiceError(f"The git server cannot be reached ({what}): {last}")
    return result.stdout


def _mirror(url: str, path: str, label: str) -> None:
    """Bring the branches of `url` into the bare repository `path` (made on first use)."""
    if not os.path.isdir(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".fetch-", dir=os.path.dirname(path))
        try:
            _run_git(["clone", "--bare", "--quiet", "--no-tags", url, tmp], f"repository {label}")
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    _run_git(["-C", path, "fetch", "--quiet", "--prune", "--no-tags", url, "+refs/heads/*:refs/heads/*"],
             f"repository {label}")


_mirror_locks: dict[str, asyncio.Lock] = {}


class HttpGitBrowser(GitBrowser):
    """Service type 5: <repositoryUrl>/<owner>/<repository>.git over HTTP(S), anonymously.

    Branches come from `git ls-remote`; history is read from a bare copy in `cache_dir`,
    refreshed on each request. A plain git server cannot list its repositories, so the list
    holds the repositories this service has fetched before.
    """

    def __init__(self, base_url: str, cache_dir: str):
        self.base_url = base_url.rstrip("/")
        self.cache_dir = cache_dir

    def url(self, owner, repository):
        return f"{self.base_url}/{quote(owner)}/{quote(repository)}.git"

    async def repositories(self):
        return await asyncio.to_thread(local_repositories, self.cache_dir)

    async def branches(self, owner, repository):
        owner, repository = check_repo_names(owner, repository)
        out = await asyncio.to_thread(_run_git, ["ls-remote", "--heads", self.url(owner, repository)],
                                      f"repository {owner}/{repository}", 60)
        branches = []
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                branches.append({"branchName": ref[len("refs/heads/"):], "commitId": sha})
        return sorted(branches, key=lambda b: b["branchName"])

    async def _synced(self, owner, repository) -> str:
        owner, repository = check_repo_names(owner, repository)
        path = os.path.join(self.cache_dir, owner, repository + ".git")
        lock = _mirror_locks.setdefault(path, asyncio.Lock())
        async with lock:
            await asyncio.to_thread(_mirror, self.url(owner, repository), path, f"{owner}/{repository}")
        return path

    async def commits(self, owner, repository, branch, page, per_page=COMMITS_PER_PAGE):
        path = await self._synced(owner, repository)
        return await asyncio.to_thread(local_commits, path, owner, repository, branch, page, per_page)

    async def commit(self, owner, repository, ref):
        path = await self._synced(owner, repository)
        return await asyncio.to_thread(local_commit, path, owner, repository, ref)


# -- REST APIs (GitHub / GitBucket, GitLab)
class _RestBrowser(GitBrowser):
    timeout = 20

    def __init__(self, api_url: str, token: str | None):
        self.api_url = api_url.rstrip("/")
        self.token = token

    def headers(self) -> dict:
        return {"Accept": "application/json", "User-Agent": "kqi-hub"}

    async def get(self, path: str, params: dict | None = None, *, not_found: str = "The resource"):
        url = self.api_url + path + ("?" + urlencode(params) if params else "")
        response = await self._fetch(url, not_found)
        try:
            return json.loads(response.body)
        except ValueError:
            raise GitServiceError(f"The git server {self.api_url} did not answer with JSON.")

    async def _fetch(self, url: str, not_found: str):
        """GET with the user's token; redirects are followed only within the API's own origin,
        so that the token never goes to another host."""
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

        origin = urlsplit(self.api_url)[:2]
        for _ in range(5):
            request = HTTPRequest(url, headers=self.headers(), connect_timeout=10, request_timeout=self.timeout,
                                  follow_redirects=False)
            try:
                return await AsyncHTTPClient().fetch(request)
            except HTTPClientError as e:
                location = e.response.headers.get("Location") if e.response is not None else None
                if e.code in (301, 302, 303, 307, 308) and location:
                    target = urljoin(url, location)
                    if urlsplit(target)[:2] != origin:
                        raise GitServiceError(f"The git server {self.api_url} redirects to another host,"
                                              " which this service does not follow.")
                    url = target
                    continue
                self._raise(e, not_found)
            except (OSError, asyncio.TimeoutError) as e:
                raise GitServiceError(f"The git server {self.api_url} cannot be reached: {e}")
        raise GitServiceError(f"The git server {self.api_url} redirects too often.")

    def _raise(self, e, not_found: str):
        if e.code == 404:
            raise NotFoundError(f"{not_found} is not found on the git server.")
        if e.code == 599:
            raise GitServiceError(f"The git server {self.api_url} cannot be reached: {e.message}")
        hint = " (check your git token in your account settings)" if e.code in (401, 403) else ""
        raise GitServiceError(f"The git server {self.api_url} answered {e.code} {e.message}{hint}")


def _shape_error(api_url: str, e: Exception) -> GitServiceError:
    return GitServiceError(f"The git server {api_url} answered in an unexpected shape ({type(e).__name__}: {e}).")


class GitHubBrowser(_RestBrowser):
    """GitHub and GitBucket (the same REST API, v3)."""

    def headers(self):
        h = super().headers()
        h["Accept"] = "application/vnd.github+json"
        if self.token:
            h["Authorization"] = f"token {self.token}"
        return h

    async def repositories(self):
        if not self.token:
            return []  # as KAMONOHASHI: without a token the user's repositories cannot be listed
        result = []
        try:
            for page in range(1, 11):
                rows = await self.get("/user/repos", {"per_page": 100, "page": page})
                result += [{"owner": r["owner"]["login"], "name": r["name"], "fullName": r["full_name"]}
                           for r in rows]
                if len(rows) < 100:
                    break
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)
        return sorted(result, key=lambda r: r["fullName"])

    async def branches(self, owner, repository):
        owner, repository = check_repo_names(owner, repository)
        rows = await self.get(f"/repos/{quote(owner)}/{quote(repository)}/branches", {"per_page": 100},
                              not_found=f"Repository {owner}/{repository}")
        try:
            return sorted(({"branchName": r["name"], "commitId": r["commit"]["sha"]} for r in rows),
                          key=lambda b: b["branchName"])
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)

    @staticmethod
    def _commit(r) -> dict:
        c = r["commit"]
        return _commit_json(r["sha"], (c.get("committer") or {}).get("name"), (c.get("committer") or {}).get("date"),
                            c.get("message"), (c.get("author") or {}).get("name"),
                            [p["sha"] for p in r.get("parents") or []])

    async def commits(self, owner, repository, branch, page, per_page=COMMITS_PER_PAGE):
        owner, repository = check_repo_names(owner, repository)
        params = {"per_page": per_page, "page": page}
        if branch:
            params["sha"] = branch
        rows = await self.get(f"/repos/{quote(owner)}/{quote(repository)}/commits", params,
                              not_found=f"Repository {owner}/{repository} or its branch")
        try:
            return [self._commit(r) for r in rows]
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)

    async def commit(self, owner, repository, ref):
        owner, repository = check_repo_names(owner, repository)
        row = await self.get(f"/repos/{quote(owner)}/{quote(repository)}/commits/{quote(ref, safe='')}",
                             not_found=f"Commit {ref} of {owner}/{repository}")
        try:
            return self._commit(row)
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)


class GitLabBrowser(_RestBrowser):
    """GitLab and GitLab.com (REST API v4); owners may be nested groups (a/b)."""

    def __init__(self, api_url, token):
        super().__init__(api_url, token)
        if not self.api_url.endswith("/api/v4"):
            self.api_url += "/api/v4"

    def headers(self):
        h = super().headers()
        if self.token:
            h["PRIVATE-TOKEN"] = self.token
        return h

    @staticmethod
    def project(owner, repository) -> str:
        return quote(f"{owner}/{repository}", safe="")

    async def repositories(self):
        if not self.token:
            return []
        result = []
        try:
            for page in range(1, 11):
                rows = await self.get("/projects", {"membership": "true", "simple": "true", "per_page": 100,
                                                    "page": page})
                result += [{"owner": r["namespace"]["full_path"], "name": r["path"],
                            "fullName": r["path_with_namespace"]} for r in rows]
                if len(rows) < 100:
                    break
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)
        return sorted(result, key=lambda r: r["fullName"])

    async def branches(self, owner, repository):
        owner, repository = check_repo_names(owner, repository, nested_owner=True)
        rows = await self.get(f"/projects/{self.project(owner, repository)}/repository/branches",
                              {"per_page": 100}, not_found=f"Repository {owner}/{repository}")
        try:
            return sorted(({"branchName": r["name"], "commitId": r["commit"]["id"]} for r in rows),
                          key=lambda b: b["branchName"])
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)

    @staticmethod
    def _commit(r) -> dict:
        return _commit_json(r["id"], r.get("committer_name"), r.get("committed_date"), r.get("message"),
                            r.get("author_name"), list(r.get("parent_ids") or []))

    async def commits(self, owner, repository, branch, page, per_page=COMMITS_PER_PAGE):
        owner, repository = check_repo_names(owner, repository, nested_owner=True)
        params = {"per_page": per_page, "page": page}
        if branch:
            params["ref_name"] = branch
        rows = await self.get(f"/projects/{self.project(owner, repository)}/repository/commits", params,
                              not_found=f"Repository {owner}/{repository} or its branch")
        try:
            return [self._commit(r) for r in rows]
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)

    async def commit(self, owner, repository, ref):
        owner, repository = check_repo_names(owner, repository, nested_owner=True)
        row = await self.get(
            f"/projects/{self.project(owner, repository)}/repository/commits/{quote(ref, safe='')}",
            not_found=f"Commit {ref} of {owner}/{repository}")
        try:
            return self._commit(row)
        except (KeyError, TypeError) as e:
            raise _shape_error(self.api_url, e)


@dataclass
class BrowseContext:
    data_dir: str
    token: str | None = None
    tenant: str | None = None  # the current tenant's name: type 6 reads only its folder


def git_browser(server: GitServer, context: BrowseContext) -> GitBrowser:
    """The browser for a git server's service type."""
    if server.service_type == GIT_LOCAL:
        return LocalGitBrowser(tenant_git_root(file_url_path(server.repository_url), context.tenant))
    if server.service_type == GIT_HTTP:
        return HttpGitBrowser(server.repository_url,
                              os.path.join(context.data_dir, "kqi", "git-cache", str(server.id)))
    if server.service_type in (GIT_GITHUB, GIT_GITBUCKET):
        return GitHubBrowser(server.api_url or server.repository_url, context.token)
    if server.service_type in (GIT_GITLAB, GIT_GITLAB_COM):
        return GitLabBrowser(server.api_url or server.repository_url, context.token)
    raise GitServiceError(f"The git server {server.name} has an unknown service type {server.service_type}.")


def nested_owner_allowed(server: GitServer) -> bool:
    return server.service_type in (GIT_GITLAB, GIT_GITLAB_COM)
