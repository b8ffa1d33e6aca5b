"""The object store interface: one API over a local directory and S3.

Uploads follow KAMONOHASHI's multipart protocol: the service starts an upload and hands
out one URL per part; the client PUTs each part to its URL and collects the ETags; the
service completes the upload with the ETags, which must match what the store received.
Every URL a client gets is short-lived and signed (S3 presigned URLs, or for the local
store HMAC-signed URLs that the service serves itself). Nothing here holds a whole file
in memory: parts and downloads move in chunks.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Iterator

CHUNK = 1024 * 1024  # bytes moved at a time when streaming


class StoreError(Exception):
    """The store refused or failed an operation; `client_error` marks the caller's fault."""

    def __init__(self, message: str, client_error: bool = False):
        super().__init__(message)
        self.client_error = client_error


@dataclass
class ObjectInfo:
    key: str
    size: int
    last_modified: float | None = None


class ObjectStore(abc.ABC):
    """Where files live. Keys are '/'-separated paths without a leading '/'."""

    # -- multipart upload -------------------------------------------------------------
    @abc.abstractmethod
    def start_upload(self, key: str) -> str:
        """Begin a multipart upload of `key`; returns the store's upload id."""

    @abc.abstractmethod
    def part_urls(self, key: str, upload_id: str, parts: int, base_url: str, expires_in: int) -> list[str]:
        """One signed PUT URL per part (1-based part numbers)."""

    @abc.abstractmethod
    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> int:
        """Join the parts in order; `etags[i]` must be what part i+1 answered. Returns the size."""

    @abc.abstractmethod
    def abort_upload(self, key: str, upload_id: str) -> None:
        """Forget an upload and delete its parts."""

    # -- objects ----------------------------------------------------------------------
    @abc.abstractmethod
    def download_url(self, key: str, file_name: str, base_url: str, expires_in: int) -> str:
        """A signed GET URL that serves the object as `file_name`."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Size and time of an object, or None when there is none."""

    @abc.abstractmethod
    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The object's bytes, chunk by chunk."""

    @abc.abstractmethod
    def write(self, key: str, chunks: Iterator[bytes]) -> int:
        """Store an object from chunks; returns its size."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object (no error when it is gone already)."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`."""

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            count += 1
        return count

    def sha256(self, key: str) -> str:
        import hashlib

        digest = hashlib.sha256()
        for chunk in self.read(key):
            digest.update(chunk)
        return digest.hexdigest()
