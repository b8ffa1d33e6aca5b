"""Notebooks: /notebook/... (KAMONOHASHI's NotebookApiModels); each is its owner's hub named server."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .core import ApiModel, DateFilter, Id, NumberFilter, QueryBool, Text, pattern_message
from .jobs import EnvOptions, IdOrDigits

NOTEBOOK_NAME_PATTERN = pattern_message(r"^$|^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$", "lower-case letters, digits and"
                                        " '-', at most 30, not starting or ending with '-'")
NotebookName = Annotated[str, Field(pattern=NOTEBOOK_NAME_PATTERN)]


class NotebookListQuery(ApiModel):
    id: NumberFilter | None = None
    """An id or a comparison such as `>10`."""
    name: str | None = None
    """Part of the name (any case)."""
    createdAt: DateFilter | None = None
    """A day (2026-01-31), a prefix of a time, or a comparison such as `>=2026-01-01`."""
    createdBy: str | None = None
    """Part of the user name of whoever made it (any case)."""
    memo: str | None = None
    """Part of the memo (any case)."""
    status: str | None = None
    """Part of the status (Running, Pending, Stopped, Killed, Error; any case)."""


class NotebookContainerImageInput(ApiModel):
    registryId: Id | None = None
    image: Text() | None = None
    tag: Text() | None = None
    """latest when left out."""


class NotebookGitModel(ApiModel):
    """A repository cloned into the notebook (as sent; owner and repository are needed)."""

    gitId: Id | None = None
    owner: Text() | None = None
    repository: Text() | None = None
    branch: Text() | None = None
    commitId: Text() | None = None


class NotebookRunInput(ApiModel):
    """POST /notebook/run (every field optional: the tenant's and the platform's defaults apply)."""

    name: NotebookName | None = None
    """Lower-case letters, digits and '-', at most 30, not starting or ending with '-' (empty or left
    out: notebook)."""
    memo: Text() | None = None
    cpu: float | None = Field(None, gt=0)
    memory: float | None = Field(None, gt=0)
    """GiB."""
    gpu: int | None = Field(None, ge=0, le=2**31 - 1)
    expiresIn: float = Field(8 * 3600, ge=0)
    """Lifetime in seconds (0: none, where the tenant allows it; default 8 hours)."""
    jupyterLabVersion: Text() | None = None
    containerImage: NotebookContainerImageInput | None = None
    dataSetId: Id | None = None
    localDataSet: bool | None = None
    parentIds: list[IdOrDigits] | None = None
    """Trainings mounted at /kqi/parent."""
    inferenceIds: list[IdOrDigits] | None = None
    gitModel: NotebookGitModel | None = None
    entryPoint: Text() | None = None
    """A command run when the notebook starts."""
    options: EnvOptions | None = None
    partition: Text() | None = None


class NotebookEditInput(ApiModel):
    name: Text() | None = None
    memo: Text() | None = None


class NotebookContainerFilesQuery(ApiModel):
    path: str = "/"
    """A folder under the notebook's /kqi/output."""
    withUrl: QueryBool = False


class NotebookGitModelOutput(ApiModel):
    """The repository as it was asked for (the fields sent)."""

    gitId: Id | None = None
    owner: str | None = None
    repository: str | None = None
    branch: str | None = None
    commitId: str | None = None


class NotebookOutput(ApiModel):
    id: Id
    displayId: int
    name: str
    memo: str | None
    status: str
    statusType: str
    conditionNote: str | None
    dataSetId: Id | None
    cpu: float | None
    memory: float | None
    gpu: int | None
    partition: str | None
    jupyterLabVersion: str | None
    expiresIn: float | None
    remainingTime: int | None
    """Seconds left of its lifetime (while it runs)."""
    parentIds: list[int | str]
    inferenceIds: list[int | str]
    gitModel: NotebookGitModelOutput | None
    entryPoint: str | None
    localDataSet: bool
    startedAt: str | None
    expiresAt: str | None
    completedAt: str | None
    createdBy: str | None
    createdAt: str
    modifiedBy: str | None
    modifiedAt: str
    serverName: str
    """Its hub named server."""
    url: str
    """Its JupyterLab through the hub's proxy."""


class NotebookEndpointOutput(ApiModel):
    url: str
    nodePort: int | None
    token: str | None


class NotebookContainerDirOutput(ApiModel):
    dirName: str
    dirPath: str


class NotebookContainerFileOutput(ApiModel):
    key: str
    fileName: str
    size: int
    url: str | None


class NotebookContainerFilesOutput(ApiModel):
    dirs: list[NotebookContainerDirOutput]
    files: list[NotebookContainerFileOutput]
    exceeded: bool
