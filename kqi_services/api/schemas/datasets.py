"""Datasets: /datasets, /datasets/{id}, files, pathpairs, copy; /datatypes (DataSetApiModels)."""
from __future__ import annotations

from .core import ApiModel, DateFilter, Id, Name, NumberFilter, QueryBool, Text, Timestamp
from .data import DataFileOutput, DataIndexOutput


class DataSetSearchQuery(ApiModel):
    id: NumberFilter | None = None
    """An id or a comparison such as `>10`."""
    name: str | None = None
    memo: str | None = None
    createdAt: DateFilter | None = None
    """A day (2026-01-31), a prefix of a time, or a comparison such as `>=2026-01-01`."""


class DataSetEntryInput(ApiModel):
    id: Id
    """A data's id."""


class DataSetCreateInput(ApiModel):
    name: Name
    memo: Text(4096) | None = None
    isFlat: bool | None = None
    """A flat dataset puts every data under one folder; otherwise by area (training, testing, validation)."""
    entries: dict[str, list[DataSetEntryInput] | None] | None = None
    """The data of each area (a non-flat dataset): {training: [{id}], testing: [...], validation: [...]}."""
    flatEntries: list[DataSetEntryInput] | None = None
    """The data of a flat dataset."""


class DataSetEditEntriesInput(ApiModel):
    name: Name | None = None
    memo: Text(4096) | None = None
    isFlat: bool | None = None
    entries: dict[str, list[DataSetEntryInput] | None] | None = None
    flatEntries: list[DataSetEntryInput] | None = None


class DataSetEditInput(ApiModel):
    name: Name | None = None
    memo: Text(4096) | None = None


class DataSetCopyInput(ApiModel):
    name: Name | None = None
    """The copy's name (by default the dataset's name with " (copy)")."""
    memo: Text(4096) | None = None


class DataSetFilesQuery(ApiModel):
    withUrl: QueryBool = False
    """When true, each file carries a signed download URL."""


class DataSetIndexOutput(ApiModel):
    id: Id
    displayId: int
    name: str
    memo: str | None
    isFlat: bool
    createdBy: str | None
    createdAt: Timestamp
    modifiedBy: str | None
    modifiedAt: Timestamp


class DataSetDetailsOutput(DataSetIndexOutput):
    entries: dict[str, list[DataIndexOutput]]
    """The data of each area (empty for a flat dataset)."""
    flatEntries: list[DataIndexOutput]
    """The data of a flat dataset (empty otherwise)."""
    isLocked: bool
    """A dataset a training, inference or notebook used cannot change its data."""
    lockReasons: list[str]


class DataSetTypeFilesOutput(ApiModel):
    type: str
    files: list[DataFileOutput]


class DataSetFilesOutput(DataSetIndexOutput):
    entries: list[DataSetTypeFilesOutput]
    flatEntries: list[DataFileOutput]


class DataSetPathPairOutput(ApiModel):
    dataPath: str
    """Where the file goes under /kqi/input."""
    storedPath: str


class DataTypeOutput(ApiModel):
    id: Id
    name: str
