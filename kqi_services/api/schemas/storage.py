"""Models of the SDK's upload protocol: /upload/parameter and /upload/complete.

Field names are KAMONOHASHI's (StorageLogicModels* of kamonohashi-sdk 4.0.2). The file
name, part count and resource type are checked again by domain/uploads.py.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .core import NAME_PATTERN, ApiModel

ResourceType = Literal["Data", "TrainingHistoryAttachedFiles", "InferenceHistoryAttachedFiles",
                       "PreprocHistoryAttachedFiles", "NotebookHistoryAttachedFiles"]


class UploadParameterQuery(ApiModel):
    """GET /upload/parameter?fileName=&partSum=&type="""

    fileName: str = Field(description="The file's name: no '/', '\\\\', '..' or control characters,"
                                      " at most 255 bytes.")
    partSum: int = Field(ge=0, le=10000, description="The number of parts (0 for an empty file).")
    type: ResourceType = Field("Data", description="What the file is uploaded for.")
    fileSize: int | None = Field(None, ge=0, le=2**53, description="KQI: the file's size in bytes, when known:"
                                                                  " refused up front when it would not fit.")


class UploadParameterOutput(ApiModel):
    uris: list[str] = Field(description="One signed URL per part, to PUT the part's bytes to.")
    partsSum: int
    uploadId: str
    key: str
    fileName: str
    storedPath: str = Field(description="What to register on the data, training, ... afterwards.")


class UploadCompleteInput(ApiModel):
    """POST /upload/complete"""

    key: str = Field(min_length=1, max_length=2048, pattern=NAME_PATTERN)
    uploadId: str = Field(min_length=1, max_length=1024, pattern=NAME_PATTERN)
    partETags: list[str] = Field(description="'<part number>+<ETag>' for each part, in order"
                                             " (empty only for an empty file).")


class UploadCompleteOutput(ApiModel):
    key: str
    uploadId: str
    partETags: list[str]
