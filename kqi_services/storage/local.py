"""The local object store: a directory, with signed URLs that the kqi service serves.

Layout under the root:
    <key>                          stored objects
    .uploads/<upload id>/meta      the key an upload is for
    .uploads/<upload id>/data      the object being put together: part n is written in place
                                   at (n - 1) * slot while it streams in
    .uploads/<upload id>/slot      the slot size, the length of the first part that arrived
    .uploads/<upload id>/<n>       part n when it does not fit its slot (kept apart)
    .uploads/<upload id>/<n>.etag  part n's record: its ETag, size and where it is
    .uploads/<upload id>/<n>.lock  held while part n is written in place

Clients such as the SDK send parts of one size (the last one shorter), so every part
lands in its slot and completing the upload renames `data` to the object: no copy.
Parts of other sizes are kept apart and joined (copied) at completion.

A part's ETag is the first 32 hex digits of its sha256, quoted: the shape of S3's MD5
ETags, at the speed of the CPU's SHA instructions.

A full disk (ENOSPC, EDQUOT) never leaves bytes behind: a part or object that cannot be
written is removed at once and InsufficientStorage (507) raised; `space_refusal` tells
whether the free space is under the reserve the platform keeps (see base.SpaceReserve).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
import uuid
from typing import Iterator
from urllib.parse import urlencode, urlsplit

from .base import CHUNK, InsufficientStorage, ObjectInfo, ObjectStore, SpaceReserve, StoreError, is_disk_full

UPLOADS = ".uploads"


class UrlSigner:
    """HMAC-SHA256 signatures over (action, fields, expiry) for the local store's URLs."""

    def __init__(self, key: bytes):
        self.key = key

    def sign(self, action: str, fields: dict[str, str], expires_at: int) -> str:
        message = "\n".join([action, str(expires_at)] + [f"{k}={fields[k]}" for k in sorted(fields)])
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def check(self, action: str, fields: dict[str, str], expires_at: str, signature: str, now=None) -> None:
        try:
            expiry = int(expires_at)
        except (TypeError, ValueError):
            raise StoreError("The link is malformed.", client_error=True)
        if not hmac.compare_digest(self.sign(action, fields, expiry), signature or ""):
            raise StoreError("The link's signature is wrong: it was changed or is not ours.", client_error=True)
        if (now or time.time()) > expiry:
            raise StoreError("The link has expired: ask for a new one.", client_error=True)


class DirectAddress:
    """Where clients reach the service's own listener for the signed URLs (the service's
    `direct_transfer_*` settings), so that their bytes do not pass through the hub's proxy.

    `url` (scheme://host[:port], no path) is that address as clients know it, e.g. a Service or
    an Ingress; without it, `port` on the host name the caller used (`kqi-hub` on one machine:
    the hub and that listener are bound to the same address). The URL's path stays the one
    through the proxy (<base url>services/kqi/storage/...), so the hub's base URL holds there
    too and an Ingress can route by path."""

    def __init__(self, url: str = "", port: int = 0, scheme: str = "http"):
        self.url = url.rstrip("/")
        self.port = port
        self.scheme = scheme

    def base_for(self, base_url: str) -> str:
        """The scheme://host[:port] of the signed URLs for a caller who used `base_url`. No
        `base_url` (URLs for the platform's own containers, relative): unchanged."""
        if not base_url:
            return base_url
        if self.url:
            return self.url
        host = urlsplit(base_url).hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"  # IPv6
        return f"{self.scheme}://{host}:{self.port}"


def safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise StoreError(f"Not a valid object key: {key!r}", client_error=True)
    if parts[0] == UPLOADS:
        raise StoreError("Object keys may not start with .uploads", client_error=True)
    return key


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str, signer: UrlSigner, route_prefix: str, store_id: int = 0,
                 direct: DirectAddress | None = None):
        """`route_prefix`: URL path under which the service serves /part and /object;
        `store_id`: the storage endpoint's id, signed into every URL; `direct`: the address of the
        service's listener for these URLs that bypasses the hub's proxy (None: the URLs go to the
        address the caller used, through the proxy)."""
        self.store_id = str(store_id)
        self.direct = direct
        self.root = os.path.abspath(root)
        self.signer = signer
        self.route_prefix = route_prefix.rstrip("/")
        os.makedirs(os.path.join(self.root, UPLOADS), exist_ok=True)

    def path(self, key: str) -> str:
        return os.path.join(self.root, *safe_key(key).split("/"))

    def object_path(self, key: str) -> str:
        """The file of a stored object, refusing any symbolic link on the way: a job may leave
        links in its output folder, and the service must never serve what they point at."""
        path = self.path(key)
        expected = os.path.join(os.path.realpath(self.root), *key.split("/"))
        if os.path.realpath(path) != expected:
            raise StoreError(f"No object {key}", client_error=True)
        return path

    def folder(self, key: str) -> str | None:
        """A folder of the store to list: None when there is none, or when a symbolic link is on the
        way (a job's links are never followed); a client error when the key is a file."""
        path = self.path(key)
        expected = os.path.join(os.path.realpath(self.root), *safe_key(key).split("/"))
        if not os.path.lexists(path) or os.path.realpath(path) != expected:
            return None
        if not os.path.isdir(path):
            name = key.rstrip("/").rsplit("/", 1)[-1]
            raise StoreError(f"{name} is a file, not a folder: list the folder it is in.", client_error=True)
        return path

    # -- room ------------------------------------------------------------------------
    def space(self) -> tuple[int, int]:
        """(free bytes an unprivileged writer may use, size of the file system) of the store's folder."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def space_refusal(self, reserve: SpaceReserve, needed: int | None = None,
                      what: str = "file") -> InsufficientStorage | None:
        free, total = self.space()
        return reserve.refusal(free, total, needed, what)

    def _upload_dir(self, upload_id: str) -> str:
        if not upload_id or not all(c in "0123456789abcdef" for c in upload_id) or len(upload_id) != 32:
            raise StoreError("Unknown upload.", client_error=True)
        return os.path.join(self.root, UPLOADS, upload_id)

    # -- multipart upload -------------------------------------------------------------
    def start_upload(self, key: str) -> str:
        safe_key(key)
        upload_id = uuid.uuid4().hex
        directory = self._upload_dir(upload_id)
        try:
            os.makedirs(directory)
            with open(os.path.join(directory, "meta"), "w") as f:
                f.write(key)
        except OSError as e:
            shutil.rmtree(directory, ignore_errors=True)
            if is_disk_full(e):
                raise InsufficientStorage("The storage is full: the upload could not be started.") from e
            raise
        return upload_id

    def upload_key(self, upload_id: str) -> str:
        try:
            with open(os.path.join(self._upload_dir(upload_id), "meta")) as f:
                return f.read()
        except FileNotFoundError:
            raise StoreError("Unknown or finished upload.", client_error=True)

    def _base(self, base_url: str) -> str:
        return self.direct.base_for(base_url) if self.direct is not None else base_url

    def upload_origin(self, base_url: str) -> str | None:
        """The origin (scheme://host:port) of the part URLs handed to a caller who used `base_url`
        when it is not that caller's own: the direct listener's; None through the proxy (the
        caller's origin, which a page's Content-Security-Policy allows as 'self')."""
        return self.direct.base_for(base_url) if self.direct is not None and base_url else None

    def part_urls(self, key, upload_id, parts, base_url, expires_in):
        base_url = self._base(base_url)
        expires_at = int(time.time()) + expires_in
        urls = []
        for number in range(1, parts + 1):
            fields = {"store": self.store_id, "upload": upload_id, "part": str(number)}
            query = {**fields, "expires": expires_at, "signature": self.signer.sign("put-part", fields, expires_at)}
            urls.append(f"{base_url}{self.route_prefix}/part?{urlencode(query)}")
        return urls

    def part_writer(self, upload_id: str, number: int, length: int | None = None) -> "PartWriter":
        """A writer for part `number`; `length` is the part's size when the request tells it."""
        directory = self._upload_dir(upload_id)
        if not os.path.isdir(directory):
            raise StoreError("Unknown or finished upload.", client_error=True)
        if number < 1 or number > 10000:
            raise StoreError("Part numbers go from 1 to 10000.", client_error=True)
        try:
            slot = _read_int(os.path.join(directory, "slot"))
            if slot is None and length:
                slot = _claim_slot(os.path.join(directory, "slot"), length)
            if slot is not None and length is not None and 0 < length <= slot:
                lock = os.path.join(directory, f"{number}.lock")
                try:
                    os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass  # the same part is coming in on another connection: keep this copy apart
                else:
                    try:
                        return PartWriter(directory, number, offset=(number - 1) * slot, length=length)
                    except BaseException:
                        _remove(lock)
                        raise
            return PartWriter(directory, number)
        except FileNotFoundError:
            raise StoreError("Unknown or finished upload.", client_error=True)
        except OSError as e:
            if is_disk_full(e):
                raise InsufficientStorage(f"The storage is full: part {number} could not be written.") from e
            raise

    def _records(self, directory: str) -> dict[int, dict]:
        records = {}
        for name in os.listdir(directory):
            stem, dot, ext = name.partition(".")
            if ext == "etag" and stem.isdigit():
                try:
                    with open(os.path.join(directory, name)) as f:
                        records[int(stem)] = json.load(f)
                except (OSError, ValueError):
                    continue
        return records

    def complete_upload(self, key, upload_id, etags):
        directory = self._upload_dir(upload_id)
        if self.upload_key(upload_id) != key:
            raise StoreError("The upload is for another key.", client_error=True)
        # moved aside first: no part can start any more, and one still coming in shows by its lock
        closing = f"{directory}.closing"
        try:
            os.rename(directory, closing)
        except FileNotFoundError:
            raise StoreError("Unknown or finished upload.", client_error=True)
        try:
            size = self._assemble(closing, self.path(key), etags)
        except BaseException as e:
            _remove(os.path.join(closing, "joined"))  # a join cut short by a full disk
            os.rename(closing, directory)
            if isinstance(e, OSError) and is_disk_full(e):
                raise InsufficientStorage("The storage is full: the parts could not be joined into the file;"
                                          " the upload is kept, complete it again when there is room.") from e
            raise
        shutil.rmtree(closing, ignore_errors=True)
        return size

    def _assemble(self, directory: str, target: str, etags: list[str]) -> int:
        busy = sorted(int(n.split(".")[0]) for n in os.listdir(directory) if n.endswith(".lock"))
        if busy:
            raise StoreError(f"Part(s) {busy} are still being uploaded.", client_error=True)
        records = self._records(directory)
        count = len(etags)
        for number, etag in enumerate(etags, start=1):
            if number not in records:
                raise StoreError(f"Part {number} was never uploaded.", client_error=True)
            if records[number]["etag"].strip('"') != etag.strip('"'):
                raise StoreError(f"The ETag of part {number} does not match the uploaded part.", client_error=True)
        extra = sorted(n for n in records if n > count)
        if extra:
            raise StoreError(f"Parts {extra} were uploaded but not listed.", client_error=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        slot = _read_int(os.path.join(directory, "slot"))
        data = os.path.join(directory, "data")
        in_place = [records[n]["in_place"] for n in range(1, count + 1)]
        sizes = [records[n]["size"] for n in range(1, count + 1)]
        if count and all(in_place) and all(size == slot for size in sizes[:-1]):
            # every part sits in its slot, one after the other: the data file is the object
            os.truncate(data, (count - 1) * slot + sizes[-1])
            os.replace(data, target)
        else:
            temporary = os.path.join(directory, "joined")
            with open(temporary, "wb") as out:  # no parts: an empty file
                for number in range(1, count + 1):
                    if records[number]["in_place"]:
                        source, offset = data, (number - 1) * slot
                    else:
                        source, offset = os.path.join(directory, str(number)), 0
                    with open(source, "rb") as part:
                        _copy_range(part, out, offset, records[number]["size"])
            os.replace(temporary, target)
        return os.path.getsize(target)

    def abort_upload(self, key, upload_id):
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def stale_uploads(self, older_than: float) -> list[str]:
        """Upload ids whose folder has not changed for `older_than` seconds."""
        base = os.path.join(self.root, UPLOADS)
        cutoff = time.time() - older_than
        stale = []
        for upload_id in os.listdir(base):
            if len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
                continue  # an upload being completed (<id>.closing)
            try:
                if os.path.getmtime(os.path.join(base, upload_id)) < cutoff:
                    stale.append(upload_id)
            except FileNotFoundError:
                continue  # finished meanwhile
        return stale

    # -- objects ----------------------------------------------------------------------
    def download_url(self, key, file_name, base_url, expires_in):
        base_url = self._base(base_url)
        expires_at = int(time.time()) + expires_in
        fields = {"store": self.store_id, "key": safe_key(key), "name": file_name}
        query = {**fields, "expires": expires_at, "signature": self.signer.sign("get", fields, expires_at)}
        return f"{base_url}{self.route_prefix}/object?{urlencode(query)}"

    def stat(self, key):
        try:
            st = os.stat(self.object_path(key))
        except (FileNotFoundError, StoreError):
            return None
        return ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime)

    def read(self, key, chunk_size=CHUNK) -> Iterator[bytes]:
        try:
            f = open(self.object_path(key), "rb")
        except FileNotFoundError:
            raise StoreError(f"No object {key}", client_error=True)
        with f:
            while True:
                chunk = f.read(chunk_size)
                if not chunk:
                    return
                yield chunk

    def write(self, key, chunks) -> int:
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{target}.{uuid.uuid4().hex}.tmp"
        size = 0
        try:
            with open(temporary, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    size += len(chunk)
            os.replace(temporary, target)
        except BaseException as e:
            _remove(temporary)  # no partial file stays behind
            if isinstance(e, OSError) and is_disk_full(e):
                raise InsufficientStorage(f"The storage is full: {key} could not be written.") from e
            raise
        return size

    def delete(self, key):
        try:
            os.remove(self.path(key))
        except FileNotFoundError:
            return
        # remove folders left empty, up to the root
        directory = os.path.dirname(self.path(key))
        while directory != self.root:
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def list(self, prefix):
        base = self.root
        start = os.path.join(base, *[p for p in prefix.split("/") if p][:-1]) if "/" in prefix else base
        if not os.path.isdir(start):
            return
        for dirpath, dirnames, filenames in os.walk(start):
            if os.path.relpath(dirpath, base).split(os.sep)[0] == UPLOADS:
                dirnames[:] = []
                continue
            for name in filenames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    continue  # links left by jobs are not objects
                key = os.path.relpath(full, base).replace(os.sep, "/")
                if key.startswith(prefix) and not key.startswith(UPLOADS + "/"):
                    st = os.stat(full)
                    yield ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime)


class PartWriter:
    """Receives one part in chunks, hashing it on the way: written in place into the upload's
    data file (at `offset`), or, without an offset, into a file of its own."""

    def __init__(self, directory: str, number: int, offset: int | None = None, length: int | None = None):
        self.directory = directory
        self.number = number
        self.offset = offset
        self.length = length
        self.size = 0
        self._hash = hashlib.sha256()
        self._record = os.path.join(directory, f"{number}.etag")
        if offset is not None:
            # the slot is about to change: the part's old record no longer holds
            _remove(self._record)
            self._fd = os.open(os.path.join(directory, "data"), os.O_WRONLY | os.O_CREAT, 0o666)
            self._tmp = None
        else:
            self._tmp = os.path.join(directory, f"{number}.{uuid.uuid4().hex}.partial")
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)

    def write(self, chunk: bytes) -> None:
        try:
            self._write(chunk)
        except OSError as e:
            if not is_disk_full(e):
                raise
            self.discard()
            raise InsufficientStorage(f"The storage is full: part {self.number} could not be written.") from e

    def _write(self, chunk: bytes) -> None:
        if self.offset is not None:
            if self.size + len(chunk) > self.length:
                raise StoreError("The part is longer than it said.", client_error=True)
            view = memoryview(chunk)
            while view:
                written = os.pwrite(self._fd, view, self.offset + self.size)
                self.size += written
                view = view[written:]
        else:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view):]
            self.size += len(chunk)
        self._hash.update(chunk)

    def finish(self) -> str:
        os.close(self._fd)
        self._fd = None
        etag = f'"{self._hash.hexdigest()[:32]}"'
        try:
            if self.offset is not None:
                if self.size != self.length:
                    raise StoreError("The part is shorter than it said.", client_error=True)
            else:
                os.replace(self._tmp, os.path.join(self.directory, str(self.number)))
            temporary = f"{self._record}.{uuid.uuid4().hex}.tmp"
            try:
                with open(temporary, "w") as f:
                    json.dump({"etag": etag, "size": self.size, "in_place": self.offset is not None}, f)
                os.replace(temporary, self._record)
            except BaseException:
                _remove(temporary)
                raise
            if self.offset is not None:
                # a copy kept apart earlier is not the part any more
                _remove(os.path.join(self.directory, str(self.number)))
        except FileNotFoundError:
            raise StoreError("The upload is gone: it expired or was finished while this part came in.",
                             client_error=True)
        except OSError as e:
            if not is_disk_full(e):
                raise
            if self._tmp is not None:
                _remove(self._tmp)
            raise InsufficientStorage(f"The storage is full: part {self.number} could not be recorded.") from e
        finally:
            self._unlock()
        return etag

    def discard(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self._tmp is not None:
            _remove(self._tmp)
        self._unlock()

    def _unlock(self) -> None:
        if self.offset is not None:
            _remove(os.path.join(self.directory, f"{self.number}.lock"))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (FileNotFoundError, ValueError):
        return None


def _claim_slot(path: str, length: int) -> int | None:
    """Fix the upload's slot size to `length`, unless another part did first; returns the slot."""
    temporary = f"{path}.{uuid.uuid4().hex}"
    with open(temporary, "w") as f:
        f.write(str(length))
    try:
        os.link(temporary, path)  # atomic: only the first part's size becomes the slot
    except FileExistsError:
        pass
    finally:
        _remove(temporary)
    return _read_int(path)


def _copy_range(src, dst, offset: int, count: int) -> None:
    """Copy `count` bytes of `src` from `offset` to the end of `dst` (kernel-side where possible)."""
    dst.flush()
    done = 0
    try:
        while done < count:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), count - done, offset + done)
            if copied == 0:
                break
            done += copied
    except (AttributeError, OSError):
        pass
    if done < count:
        dst.seek(0, os.SEEK_END)
        src.seek(offset + done)
        left = count - done
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise StoreError("A part is shorter than its record.")
            dst.write(chunk)
            left -= len(chunk)
