"""The local object store: a directory, with signed URLs that the kqi service serves.

Layout under the root:
    <key>                         stored objects
    .uploads/<upload id>/meta     the key an upload is for
    .uploads/<upload id>/<n>      part n, written while it streams in
    .uploads/<upload id>/<n>.etag the part's ETag (MD5 of its bytes, as S3 does)
"""
from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
import uuid
from typing import Iterator
from urllib.parse import urlencode

from .base import CHUNK, ObjectInfo, ObjectStore, StoreError

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


def safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise StoreError(f"Not a valid object key: {key!r}", client_error=True)
    if parts[0] == UPLOADS:
        raise StoreError("Object keys may not start with .uploads", client_error=True)
    return key


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str, signer: UrlSigner, route_prefix: str, store_id: int = 0):
        """`route_prefix`: URL path under which the service serves /part and /object;
        `store_id`: the storage endpoint's id, signed into every URL."""
        self.store_id = str(store_id)
        self.root = os.path.abspath(root)
        self.signer = signer
        self.route_prefix = route_prefix.rstrip("/")
        os.makedirs(os.path.join(self.root, UPLOADS), exist_ok=True)

    def path(self, key: str) -> str:
        return os.path.join(self.root, *safe_key(key).split("/"))

    def _upload_dir(self, upload_id: str) -> str:
        if not upload_id or not all(c in "0123456789abcdef" for c in upload_id) or len(upload_id) != 32:
            raise StoreError("Unknown upload.", client_error=True)
        return os.path.join(self.root, UPLOADS, upload_id)

    # -- multipart upload -------------------------------------------------------------
    def start_upload(self, key: str) -> str:
        safe_key(key)
        upload_id = uuid.uuid4().hex
        directory = self._upload_dir(upload_id)
        os.makedirs(directory)
        with open(os.path.join(directory, "meta"), "w") as f:
            f.write(key)
        return upload_id

    def upload_key(self, upload_id: str) -> str:
        try:
            with open(os.path.join(self._upload_dir(upload_id), "meta")) as f:
                return f.read()
        except FileNotFoundError:
            raise StoreError("Unknown or finished upload.", client_error=True)

    def part_urls(self, key, upload_id, parts, base_url, expires_in):
        expires_at = int(time.time()) + expires_in
        urls = []
        for number in range(1, parts + 1):
            fields = {"store": self.store_id, "upload": upload_id, "part": str(number)}
            query = {**fields, "expires": expires_at, "signature": self.signer.sign("put-part", fields, expires_at)}
            urls.append(f"{base_url}{self.route_prefix}/part?{urlencode(query)}")
        return urls

    def part_writer(self, upload_id: str, number: int) -> "PartWriter":
        directory = self._upload_dir(upload_id)
        if not os.path.isdir(directory):
            raise StoreError("Unknown or finished upload.", client_error=True)
        if number < 1 or number > 10000:
            raise StoreError("Part numbers go from 1 to 10000.", client_error=True)
        return PartWriter(os.path.join(directory, str(number)))

    def complete_upload(self, key, upload_id, etags):
        directory = self._upload_dir(upload_id)
        if self.upload_key(upload_id) != key:
            raise StoreError("The upload is for another key.", client_error=True)
        for number, etag in enumerate(etags, start=1):
            try:
                with open(os.path.join(directory, f"{number}.etag")) as f:
                    stored = f.read()
            except FileNotFoundError:
                raise StoreError(f"Part {number} was never uploaded.", client_error=True)
            if stored.strip('"') != etag.strip('"'):
                raise StoreError(f"The ETag of part {number} does not match the uploaded part.", client_error=True)
        extra = [n for n in os.listdir(directory) if n.isdigit() and int(n) > len(etags)]
        if extra:
            raise StoreError(f"Parts {sorted(map(int, extra))} were uploaded but not listed.", client_error=True)
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = os.path.join(directory, "joined")
        with open(temporary, "wb") as out:
            for number in range(1, len(etags) + 1):
                with open(os.path.join(directory, str(number)), "rb") as part:
                    _copy_file(part, out)
        os.replace(temporary, target)
        shutil.rmtree(directory, ignore_errors=True)
        return os.path.getsize(target)

    def abort_upload(self, key, upload_id):
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def stale_uploads(self, older_than: float) -> list[str]:
        """Upload ids whose folder has not changed for `older_than` seconds."""
        base = os.path.join(self.root, UPLOADS)
        cutoff = time.time() - older_than
        return [u for u in os.listdir(base) if os.path.getmtime(os.path.join(base, u)) < cutoff]

    # -- objects ----------------------------------------------------------------------
    def download_url(self, key, file_name, base_url, expires_in):
        expires_at = int(time.time()) + expires_in
        fields = {"store": self.store_id, "key": safe_key(key), "name": file_name}
        query = {**fields, "expires": expires_at, "signature": self.signer.sign("get", fields, expires_at)}
        return f"{base_url}{self.route_prefix}/object?{urlencode(query)}"

    def stat(self, key):
        try:
            st = os.stat(self.path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime)

    def read(self, key, chunk_size=CHUNK) -> Iterator[bytes]:
        try:
            f = open(self.path(key), "rb")
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
        with open(temporary, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
        os.replace(temporary, target)
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
                key = os.path.relpath(full, base).replace(os.sep, "/")
                if key.startswith(prefix) and not key.startswith(UPLOADS + "/"):
                    st = os.stat(full)
                    yield ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime)


class PartWriter:
    """Receives one part in chunks, computing its MD5 ETag on the way."""

    def __init__(self, path: str):
        self.path = path
        self._tmp = f"{path}.{uuid.uuid4().hex}.partial"
        self._file = open(self._tmp, "wb")
        self._md5 = hashlib.md5()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        self._file.close()
        etag = f'"{self._md5.hexdigest()}"'
        try:
            os.replace(self._tmp, self.path)
            with open(f"{self.path}.etag", "w") as f:
                f.write(etag)
        except FileNotFoundError:
            raise StoreError("The upload is gone: it expired or was finished while this part came in.",
                             client_error=True)
        return etag

    def discard(self) -> None:
        self._file.close()
        try:
            os.remove(self._tmp)
        except FileNotFoundError:
            pass


def _copy_file(src, dst) -> None:
    """Kernel-side copy where possible (copy_file_range), chunked reads otherwise."""
    try:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), size - offset)
            if copied == 0:
                break
            offset += copied
        if offset == size:
            return
        src.seek(offset)
    except (AttributeError, OSError):
        src.seek(0)
    shutil.copyfileobj(src, dst, CHUNK)
