"""Data: /data, /data/{id}, /data/{id}/files, tags (KAMONOHASHI's DataApiModels)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .core import ApiModel, DateFilter, Id, Name, NumberFilter, QueryBool, Text, Timestamp, pattern_message


MAX_TAG_LENGTH = 128
#: a tag: at most 128 characters, no NUL (blank tags are dropped)
Tag = Text(MAX_TAG_LENGTH)
FILE_NAME_PATTERN = pattern_message(r"^(?:[^/\\\x00-\x1f.]|\.[^/\\\x00-\x1f.])+\.?$",
                                    "a file name may not contain '/', '\\', '..', control characters or NUL,"
                                    " nor be '.'")
#: a file's name in a data or a job: no folders, no '..', no control characters, at most 255 bytes
FileName = Annotated[str, Field(max_length=255, pattern=FILE_NAME_PATTERN)]


class DataSearchQuery(ApiModel):
    """The filters of GET /data (KAMONOHASHI's search fields; `Name` as well as `name`)."""

    id: NumberFilter | None = None
    """An id or a comparison such as `>10`."""
    name: str | None = None
    memo: str | None = None
    createdAt: DateFilter | None = None
    """A day (2026-01-31), a prefix of a time, or a comparison such as `>=2026-01-01`."""
    createdBy: str | None = None
    tag: list[str] = []
    """Tags the data must have (repeat the parameter; `a,b` asks for both)."""
    tags: list[str] = []
    """The same as `tag`."""


class DataCreateInput(ApiModel):
    name: Name
    memo: Text(4096) | None = None
    tags: list[Tag] | None = None


class DataEditInput(ApiModel):
    name: Name | None = None
    memo: Text(4096) | None = None
    tags: list[Tag] | None = None


class AddFileInput(ApiModel):
    fileName: FileName
    """The file's name in the data (no folders)."""
    storedPath: Text(min_length=1)
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
