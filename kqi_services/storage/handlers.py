"""The URLs of the local object store, served by the kqi service.

    PUT <prefix>storage/part?upload=&part=&expires=&signature=    a part of a multipart upload
    GET <prefix>storage/object?key=&name=&expires=&signature=     an object, as a download

They carry no hub token: the HMAC signature (made by the service when it handed the URL
out) is the credential, and it expires. Bodies stream to disk and files stream out in
chunks; neither is held in memory.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
from http.client import responses
from urllib.parse import quote

from tornado import web

from .base import CHUNK, StoreError
from .local import LocalObjectStore, PartWriter


class _SignedHandler(web.RequestHandler):
    def store(self) -> LocalObjectStore:
        """The local store named by the URL (its id is covered by the signature)."""
        return self.settings["kqi"].local_store(self.get_query_argument("store", ""))

    def fail(self, status: int, message: str):
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"type": f"https://httpstatuses.io/{status}", "status": status,
                                "title": responses.get(status, "Error"), "detail": message,
                                "instance": self.request.path, "errors": {}}))

    def log_exception(self, typ, value, tb):
        if isinstance(value, StoreError) and value.client_error:
            return
        super().log_exception(typ, value, tb)


@web.stream_request_body
class PartUploadHandler(_SignedHandler):
    writer: PartWriter | None = None
    refusal: str | None = None

    def prepare(self):
        if self.request.method != "PUT":
            raise web.HTTPError(405)
        connection = self.request.connection
        connection.set_max_body_size(self.settings["kqi"].max_part_bytes)
        _read_in_big_chunks(connection)
        upload = self.get_query_argument("upload", "")
        part = self.get_query_argument("part", "")
        length = self.request.headers.get("Content-Length")
        try:
            store = self.store()
            store.signer.check("put-part", {"store": store.store_id, "upload": upload, "part": part},
                               self.get_query_argument("expires", ""), self.get_query_argument("signature", ""))
            self.writer = store.part_writer(upload, int(part), int(length) if length and length.isdigit() else None)
        except (StoreError, ValueError) as e:
            # answer once the body is read: a reply while the client still sends makes the
            # proxy drop the connection and answer 503 instead of this 403
            self.refusal = str(e)

    def data_received(self, chunk: bytes):
        if self.writer is not None:
            self.writer.write(chunk)

    def put(self):
        if self.writer is None:
            return self.fail(403, self.refusal or "The link is not valid.")
        try:
            etag = self.writer.finish()
        except StoreError as e:
            self.writer = None
            return self.fail(404, str(e))
        self.writer = None
        self.set_header("ETag", etag)
        self.set_status(200)
        self.finish()

    def on_connection_close(self):
        if self.writer is not None:
            self.writer.discard()
            self.writer = None


def _read_in_big_chunks(connection) -> None:
    """Let this connection hand the body over in CHUNK pieces instead of tornado's 64 KiB:
    a 16 MiB part then costs 16 trips through the event loop, not 256 (twice the speed)."""
    params = getattr(connection, "params", None)
    stream = getattr(connection, "stream", None)
    if params is None or stream is None or getattr(params, "chunk_size", CHUNK) >= CHUNK:
        return
    mine = copy.copy(params)  # the server's parameters are shared by all its connections
    mine.chunk_size = CHUNK
    connection.params = mine
    stream.read_chunk_size = max(stream.read_chunk_size, CHUNK)


class ObjectDownloadHandler(_SignedHandler):
    async def get(self):
        key = self.get_query_argument("key", "")
        name = self.get_query_argument("name", "")
        try:
            store = self.store()
            store.signer.check("get", {"store": store.store_id, "key": key, "name": name}, self.get_query_argument("expires", ""),
                               self.get_query_argument("signature", ""))
            path = store.object_path(key)
        except StoreError as e:
            return self.fail(403, str(e))
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return self.fail(404, "The file is gone.")
        with f:
            size = os.fstat(f.fileno()).st_size
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Length", str(size))
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
            loop = asyncio.get_running_loop()
            while True:
                chunk = await loop.run_in_executor(None, f.read, CHUNK)
                if not chunk:
                    break
                self.write(chunk)
                await self.flush()


def make_handlers(service_prefix: str) -> list:
    base = service_prefix.rstrip("/") + "/storage"
    return [(base + "/part", PartUploadHandler), (base + "/object", ObjectDownloadHandler)]
