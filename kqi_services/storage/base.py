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
import errno
from dataclasses import dataclass
from typing import Iterator

CHUNK = 1024 * 1024  # bytes moved at a time when streaming


class StoreError(Exception):
    """The store refused or failed an operation; `client_error` marks the caller's fault."""

    def __init__(self, message: str, client_error: bool = False):
        super().__init__(message)
        self.client_error = client_error


class InsufficientStorage(StoreError):
    """No room for the bytes: the disk (or a quota) is full, or they would cut into the space
    kept free (the reserve). Answered 507 Insufficient Storage, or 413 when the bytes could never
    fit (`status`)."""

    def __init__(self, message: str, status: int = 507):
        super().__init__(message)
        self.status = status


#: OSError numbers that mean "no room": the file system is full, or the user's quota is
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether an exception (or one it wraps) says the disk or the quota is full: OSError ENOSPC or
    EDQUOT, SQLite's "database or disk is full" and PostgreSQL's disk_full (SQLSTATE 53100)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, InsufficientStorage):
            return True
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL" or "database or disk is full" in str(exc):
            return True
        if getattr(exc, "sqlstate", None) == "53100" or getattr(exc, "pgcode", None) == "53100":
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


@dataclass(frozen=True)
class SpaceReserve:
    """The free space an object store on a local disk keeps for everything else on that disk (the
    databases, logs, jobs): the larger of `min_bytes` and `percent` % of the file system's size.
    Uploads are refused while free space is under it, and so is any upload whose announced size
    would cut into it."""

    min_bytes: int = 1024 ** 3
    percent: float = 5.0

    def bytes_for(self, total: int) -> int:
        """The reserve on a file system of `total` bytes."""
        return max(int(self.min_bytes), int(total * self.percent / 100))

    def refusal(self, free: int, total: int, needed: int | None = None,
                what: str = "file") -> InsufficientStorage | None:
        """Why `needed` more bytes (None: an unknown amount) of a `what` may not be written on a file
        system of `total` bytes with `free` bytes free; None when they may."""
        reserve = self.bytes_for(total)
        if needed is not None and needed > total - reserve:
            return InsufficientStorage(
                f"The {what} ({_size(needed)}) is larger than this storage can ever take: it holds {_size(total)}"
                f" and keeps {_size(reserve)} free for the platform.", status=413)
        if free < reserve:
            return InsufficientStorage(
                f"The storage is nearly full: {_size(free)} free, under the {_size(reserve)} kept free for the"
                " platform; uploads are refused until files are deleted or space is added.")
        if needed is not None and free - needed < reserve:
            return InsufficientStorage(
                f"The {what} ({_size(needed)}) does not fit now: {_size(free)} free, of which {_size(reserve)} are"
                " kept free for the platform; delete files or ask for more space.")
        return None


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"


@dataclass
class ObjectInfo:
    key: str
    size: int
    last_modified: float | None = None


class ObjectStore(abc.ABC):
    """Where files live. Keys are '/'-separated paths without a leading '/'."""

    # -- room ------------------------------------------------------------------------
    def space_refusal(self, reserve: SpaceReserve, needed: int | None = None,
                      what: str = "file") -> InsufficientStorage | None:
        """Why `needed` more bytes (None: an unknown amount) of a `what` may not be stored now, or None.
        Stores whose room is not on this machine's disks (S3) refuse nothing here."""
        return None

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
