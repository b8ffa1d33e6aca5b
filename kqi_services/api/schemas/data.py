"""Data: /data, /data/{id}, /data/{id}/files, tags (KAMONOHASHI's DataApiModels)."""
from __future__ import annotations

from pydantic import Field

from .core import ApiModel, Id, Name, QueryBool, Timestamp


class DataSearchQuery(ApiModel):
    """The filters of GET /data (KAMONOHASHI's search fields; `Name` as well as `name`)."""

    id: str | None = None
    """An id or a comparison such as `>10`."""
    name: str | None = None
    memo: str | None = None
    createdAt: str | None = None
    """A day (2026-01-31), a prefix of a time, or a comparison such as `>=2026-01-01`."""
    createdBy: str | None = None
    tag: list[str] = []
    """Tags the data must have (repeat the parameter; `a,b` asks for both)."""
    tags: list[str] = []
    """The same as `tag`."""


class DataCreateInput(ApiModel):
    name: Name
    memo: str | None = Field(None, max_length=4096)
    tags: list[str] | None = None


class DataEditInput(ApiModel):
    name: Name | None = None
    memo: str | None = Field(None, max_length=4096)
    tags: list[str] | None = None


class AddFileInput(ApiModel):
    fileName: str
    """The file's name in the data (no folders)."""
    storedPath: str
    """The key the upload (GET /upload/parameter) gave."""


class DataAddFilesInput(ApiModel):
    files: list[AddFileInput] = Field(min_length=1)


class DataFilesQuery(ApiModel):
    withUrl: QueryBool = False
    """When true, each file carries a signed download URL."""


class DataIndexOutput(ApiModel):
    id: Id
    displayId: int
    name: str
    memo: str | None
    isRaw: bool
    """True for uploaded data; false for the output of a preprocessing."""
    parentDataId: Id | None
    parentDataName: str | None
    tags: list[str]
    createdBy: str | None
    displayNameCreatedBy: str | None
    createdAt: Timestamp
    modifiedBy: str | None
    modifiedAt: Timestamp


class DataPreprocessHistoryOutput(ApiModel):
    """A preprocessing run that used this data as its input."""

    id: Id
    inputDataId: Id
    inputDataName: str
    preprocessId: Id
    preprocessName: str


class DataLineageOutput(ApiModel):
    """The preprocessing run that made this data (KQI addition)."""

    historyId: Id
    preprocessId: Id
    preprocessName: str
    inputDataId: Id


class DataDetailsOutput(DataIndexOutput):
    fileNames: list[str]
    parent: DataIndexOutput | None
    children: list[DataPreprocessHistoryOutput]
    preprocess: DataLineageOutput | None


class DataFileOutput(ApiModel):
    id: Id
    """The data's id."""
    fileId: Id
    key: str
    fileName: str
    fileSize: int
    url: str | None
    """A signed download URL (with ?withUrl=true), else null."""
    sha256: str | None
    """The content hash (KQI addition; null until computed, right after upload)."""


class DataFilesOutput(ApiModel):
    id: Id
    files: list[DataFileOutput]
