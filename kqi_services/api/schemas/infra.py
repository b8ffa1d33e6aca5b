"""Models of the infrastructure routes: git servers, registries, storage endpoints, nodes,
partitions and quotas (/admin/*), what the current tenant may use (/tenant/*), and git
browsing (/git/*).

Field names are KAMONOHASHI's. The models check the shape of a body (types, lengths, name
patterns, the service types); domain/infra.py keeps the rest (URLs, names that are free,
ids that exist, rows in use). An edit (PUT) is merged over the stored row, so every field
of an edit model may be left out. A text field that may be left out also takes "" for
"none", as the domain does.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .core import ApiModel, Id, Timestamp, int_choice, pattern_message
from .misc import Count, RowId

# the patterns of domain/infra.py (anchored; "" allowed where the domain takes "" for "none"), with its messages
NAME_PATTERN = pattern_message(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9_])?$",
                               "must be letters, digits, '.', '_' and '-', starting with a letter or digit")
HOST_PATTERN = pattern_message(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$",
                               "must be a host name or address without scheme, port or path")
NODE_NAME_PATTERN = pattern_message(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
                                    "must be a host name: letters, digits, '.', '_' and '-'")
PARTITION_PATTERN = pattern_message(r"^$|^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
                                    "must be letters, digits, '.', '_' and '-' (a Kubernetes label value)")
BUCKET_PATTERN = pattern_message(r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                                 "must be an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-'")
REGION_PATTERN = pattern_message(r"^$|^[a-z0-9-]{1,64}$", "must be lower-case letters, digits and '-'")
# URLs as check_url takes them: http(s) with a host and no credentials, or file:///absolute/path
_HTTP = r"[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#]\S*)?"
_FILE = r"[Ff][Ii][Ll][Ee]://(localhost)?/[^\x00-\x1f\x7f?#]*"
HTTP_URL = pattern_message(rf"^$|^{_HTTP}$", "must be an http:// or https:// URL with a host and no user name"
                                             " or password")
URL_OR_FILE = pattern_message(rf"^$|^(?:{_HTTP}|{_FILE})$", "must be an http(s):// URL with a host and no user"
                                                           " name or password, or file:///absolute/path")
URL_OR_FILE_REQUIRED = pattern_message(rf"^(?:{_HTTP}|{_FILE})$", "must be an http(s):// URL with a host and no"
                                                                 " user name or password, or file:///absolute/path")
NAME_HELP = "Letters, digits, '.', '_' and '-', starting with a letter or digit."

GitServiceType = int_choice(1, 2, 3, 4, 5, 6)
RegistryServiceType = int_choice(1, 2, 3, 4)
AccessLevel = int_choice(0, 1, 2)


class AuditOutput(ApiModel):
    createdBy: str | None
    createdAt: Timestamp
    modifiedBy: str | None
    modifiedAt: Timestamp


class EnumItemOutput(ApiModel):
    """An entry of a fixed list (service types, access levels)."""

    id: Id
    name: str


class CatalogListQuery(ApiModel):
    """GET /admin/{kind}: `name` keeps the rows whose name contains it."""

    name: str | None = Field(None, max_length=253, description="Part of a name to look for.")


# ------------------------------------------------------------------ git servers
GIT_TYPES = "1 GitHub, 2 GitLab, 3 GitLab.com, 4 GitBucket, 5 plain git over HTTP(S), 6 bare repositories here."


class GitServerEditInput(ApiModel):
    """PUT /admin/git/endpoints/{id}"""

    name: str = Field(None, max_length=128, pattern=NAME_PATTERN, description=NAME_HELP)
    serviceType: GitServiceType = Field(None, description=GIT_TYPES)
    apiUrl: str | None = Field(None, max_length=1024, pattern=URL_OR_FILE,
                               description="The REST API address (required except for"
                                                                  " types 5 and 6).")
    repositoryUrl: str = Field(None, max_length=1024, pattern=URL_OR_FILE_REQUIRED,
                               description="http(s):// URL; file:///path for type 6.")


class GitServerInput(GitServerEditInput):
    """POST /admin/git/endpoints"""

    name: str = Field(max_length=128, pattern=NAME_PATTERN, description=NAME_HELP)
    serviceType: GitServiceType = Field(description=GIT_TYPES)
    repositoryUrl: str = Field(max_length=1024, pattern=URL_OR_FILE_REQUIRED,
                               description="http(s):// URL; file:///path for type 6.")


class GitServerOutput(AuditOutput):
    id: Id
    name: str
    serviceType: int
    serviceTypeName: str
    apiUrl: str | None
    repositoryUrl: str
    isNotEditable: bool


class TenantGitServerOutput(GitServerOutput):
    isDefault: bool = Field(description="KQI: the tenant's default git server")


# ------------------------------------------------------------------- registries
REGISTRY_TYPES = "1 DockerHub, 2 GitLab, 3 PrivateDockerRegistry, 4 NvidiaGPUCloud."
HOST_HELP = "A host name or address without scheme, port or path."


class RegistryEditInput(ApiModel):
    """PUT /admin/registry/endpoints/{id}"""

    name: str = Field(None, max_length=128, pattern=NAME_PATTERN, description=NAME_HELP)
    host: str = Field(None, max_length=512, pattern=HOST_PATTERN, description=HOST_HELP)
    portNo: int | None = Field(None, ge=1, le=65535)
    serviceType: RegistryServiceType = Field(None, description=REGISTRY_TYPES)
    projectName: str | None = Field(None, max_length=255)
    apiUrl: str | None = Field(None, max_length=1024, pattern=HTTP_URL, description="An http(s):// URL.")
    registryUrl: str | None = Field(None, max_length=1024, pattern=HTTP_URL, description="An http(s):// URL.")


class RegistryInput(RegistryEditInput):
    """POST /admin/registry/endpoints"""

    name: str = Field(max_length=128, pattern=NAME_PATTERN, description=NAME_HELP)
    host: str = Field(max_length=512, pattern=HOST_PATTERN, description=HOST_HELP)
    serviceType: RegistryServiceType = Field(description=REGISTRY_TYPES)


class RegistryOutput(AuditOutput):
    id: Id
    name: str
    host: str
    portNo: int | None
    serviceType: int
    serviceTypeName: str
    projectName: str | None
    apiUrl: str | None
    registryUrl: str | None
    registryPath: str = Field(description="host:port, or the host alone")
    isNotEditable: bool


class TenantRegistryOutput(RegistryOutput):
    isDefault: bool = Field(description="KQI: the tenant's default registry")


# ------------------------------------------------------------- storage endpoints
class StorageEditInput(ApiModel):
    """PUT /admin/storage/endpoints/{id}; `secretKey`: left out or null keeps the stored key, "" removes it."""

    name: str = Field(None, max_length=128, pattern=NAME_PATTERN, description=NAME_HELP)
    serverUrl: str = Field(None, max_length=1024, pattern=URL_OR_FILE_REQUIRED,
                           description="file:///path for a local store, an http(s):// URL for S3.")
    kind: Literal["local", "s3"] | None = Field(None, description="Default: from serverUrl.")
    publicUrl: str | None = Field(None, max_length=1024, pattern=HTTP_URL,
                                  description="KQI, S3 only: the http(s):// address outside clients reach S3 by;"
                                              " presigned URLs use it (signed for that host), the service keeps"
                                              " serverUrl for its own calls. Empty or null: serverUrl.")
    bucket: str | None = Field(None, max_length=63, pattern=BUCKET_PATTERN, description="An S3 bucket name.")
    region: str | None = Field(None, max_length=64, pattern=REGION_PATTERN)
    pathStyle: bool | None = Field(None, description="Path-style S3 addresses (default true).")
    accessKey: str | None = Field(None, max_length=255)
    secretKey: str | None = Field(None, max_length=1024, description="Write-only: never returned.")
    nfsServer: str | None = Field(None, max_length=255)
    nfsRoot: str | None = Field(None, max_length=1024)


class StorageInput(StorageEditInput):
    """POST /admin/storage/endpoints"""

    name: str = Field(max_length=128, pattern=NAME_PATTERN, description=NAME_HELP)
    serverUrl: str = Field(max_length=1024, pattern=URL_OR_FILE_REQUIRED,
                           description="file:///path for a local store, an http(s):// URL for S3.")


class StorageOutput(AuditOutput):
    id: Id
    name: str
    kind: str
    serverUrl: str
    publicUrl: str | None = Field(description="KQI: the address presigned URLs use (null: serverUrl).")
    bucket: str | None
    region: str | None
    pathStyle: bool
    accessKey: str | None
    secretKeySet: bool = Field(description="Whether a secret key is stored (it is never returned).")
    nfsServer: str | None
    nfsRoot: str | None


# ------------------------------------------------------------------------- nodes
class NodeEditInput(ApiModel):
    """PUT /admin/nodes/{id}"""

    name: str = Field(None, max_length=253, pattern=NODE_NAME_PATTERN, description="A host name.")
    memo: str | None = Field(None, max_length=1024)
    partition: str | None = Field(None, max_length=63, pattern=PARTITION_PATTERN,
                                  description="A Kubernetes label value.")
    accessLevel: AccessLevel = Field(None, description="0 Disabled, 1 Private (assigned tenants only), 2 Public.")
    assignedTenantIds: list[RowId] | None = Field(None, json_schema_extra={"uniqueItems": True},
                                                description="The tenants of a private node.")
    tensorBoardEnabled: bool | None = None
    notebookEnabled: bool | None = None
    cpu: float | None = Field(None, ge=0)
    memory: float | None = Field(None, ge=0, description="GiB")
    gpu: Count | None = None


class NodeInput(NodeEditInput):
    """POST /admin/nodes"""

    name: str = Field(max_length=253, pattern=NODE_NAME_PATTERN, description="A host name.")
    accessLevel: AccessLevel = Field(description="0 Disabled, 1 Private (assigned tenants only), 2 Public.")


class NodeTenantOutput(ApiModel):
    id: Id
    name: str
    displayName: str


class NodeOutput(AuditOutput):
    id: Id
    name: str
    memo: str | None
    partition: str | None
    accessLevel: int
    accessLevelStr: str
    assignedTenantIds: list[Id]
    assignedTenants: list[NodeTenantOutput]
    tensorBoardEnabled: bool
    notebookEnabled: bool
    cpu: float | None
    memory: float | None = Field(description="GiB")
    gpu: int | None


# ------------------------------------------------------------------------ quotas
class QuotaInput(ApiModel):
    """An entry of POST /admin/quotas: the three limits of a tenant (0, null or left out: no limit)."""

    tenantId: RowId = Field(ge=1)
    cpu: float | None = Field(None, ge=0)
    memory: float | None = Field(None, ge=0, description="GiB")
    gpu: Count | None = None


class QuotaOutput(ApiModel):
    """KAMONOHASHI's QuotaOutputModel: 0 means no limit."""

    tenantId: Id
    tenantName: str = Field(description="The tenant's display name")
    name: str = Field(description="KQI: the tenant's name")
    cpu: float
    memory: float = Field(description="GiB")
    gpu: int


# ------------------------------------------------------------------ git browsing
class GitRepositoryOutput(ApiModel):
    owner: str
    name: str
    fullName: str


class GitBranchOutput(ApiModel):
    branchName: str
    commitId: str


class GitCommitOutput(ApiModel):
    """KAMONOHASHI's CommitModel, with KQI's message, authorName and parentIds."""

    commitId: str
    committerName: str | None
    commitAt: str | None = Field(description="ISO 8601 date and time, as the git server gives it")
    comment: str
    display: str
    message: str
    authorName: str | None
    parentIds: list[str]


class GitCommitsQuery(ApiModel):
    """GET /git/{gitId}/repos/{owner}/{repository}/commits"""

    branch: str | None = Field(None, max_length=255, description="Default: the repository's HEAD.")
    page: int = Field(1, ge=1, le=1_000_000)
    perPage: int = Field(100, ge=1, le=2**53, description="At most 100 are returned.")
