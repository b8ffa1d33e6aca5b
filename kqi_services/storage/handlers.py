"""The URLs of the local object store, served by the kqi service.

    PUT <prefix>storage/part?upload=&part=&expires=&signature=    a part of a multipart upload
    GET <prefix>storage/object?key=&name=&expires=&signature=     an object, as a download

They carry no hub token: the HMAC signature (made by the service when it handed the URL
out) is the credential, and it expires. They are served on the service's own address (through
the hub's proxy) and, when KqiService.direct_transfer_port is set, by a second listener that
serves nothing else (`make_direct_app`), so that the bytes skip the proxy; there the answers
allow any origin (CORS: the signature is the credential, no cookie is used), for the web UI. Bodies stream to disk and files stream out in
chunks; neither is held in memory.

A part that does not fit is answered 507 (413 when it could never fit) in the API's error
shape once its body has been read: a part whose Content-Length would cut into the free space
the platform keeps (KqiService.local_store_reserve_*), one that meets a full disk (ENOSPC,
EDQUOT) on the way, and a part without a length while the free space falls under the reserve.
Its upload is then dropped at once, parts and all: a full disk must not stay full.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
from http.client import responses
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from tornado import web

from .base import CHUNK, InsufficientStorage, StoreError
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

    def set_default_headers(self):
        if self.settings.get("kqi_direct"):
            # another origin than the UI's: the browser needs these to PUT a part and read its ETag
            self.set_header("Access-Control-Allow-Origin", "*")
            self.set_header("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Disposition")

    def options(self):
        """CORS preflight of the direct listener (a PUT with a Content-Type from the web UI)."""
        if not self.settings.get("kqi_direct"):
            raise web.HTTPError(405)
        self.set_header("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    def write_error(self, status_code, **kwargs):
        self.fail(status_code, self._reason)

    def log_exception(self, typ, value, tb):
        if isinstance(value, StoreError) and value.client_error:
            return
        super().log_exception(typ, value, tb)


#: how many bytes of a part without a Content-Length arrive between two looks at the free space
SPACE_CHECK_BYTES = 16 * CHUNK


@web.stream_request_body
class PartUploadHandler(_SignedHandler):
    writer: PartWriter | None = None
    refusal: str | None = None
    #: why the part could not be stored (no room); answered once the body is read
    failure: InsufficientStorage | None = None
    _store: LocalObjectStore | None = None
    _unchecked: int | None = None  # bytes since the last look at the free space (parts without a length)

    def prepare(self):
        if self.request.method == "OPTIONS":
            return
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
            number = int(part)
            announced = int(length) if length and length.isdigit() else None
            store.upload_key(upload)  # an unknown upload is refused as such, not for want of room
            self._store = store
            no_room = store.space_refusal(self.settings["kqi"].space_reserve(), announced, f"part {number}")
            if no_room is not None:
                return self._no_room(no_room)
            self.writer = store.part_writer(upload, number, announced)
            self._unchecked = 0 if announced is None else None
        except InsufficientStorage as e:
            self._no_room(e)
        except (StoreError, ValueError) as e:
            # answer once the body is read: a reply while the client still sends makes the
            # proxy drop the connection and answer 503 instead of this 403
            self.refusal = str(e)

    def data_received(self, chunk: bytes):
        if self.writer is None:
            return
        try:
            self.writer.write(chunk)
            if self._unchecked is not None:
                self._unchecked += len(chunk)
                if self._unchecked >= SPACE_CHECK_BYTES:
                    self._unchecked = 0
                    no_room = self._store.space_refusal(self.settings["kqi"].space_reserve())
                    if no_room is not None:
                        raise no_room
        except InsufficientStorage as e:
            self._no_room(e)

    def _no_room(self, error: InsufficientStorage) -> None:
        """No room for this part: its bytes and its upload's other parts go at once; the answer
        (507, or 413) follows once the body is read."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        self.failure = error
        upload = self.get_query_argument("upload", "")
        if self._store is not None:
            try:
                self._store.abort_upload("", upload)
            except StoreError:
                pass
        self.settings["kqi"].log.warning("Part %s of upload %s refused, the upload dropped: %s",
                                         self.get_query_argument("part", ""), upload, error)

    def put(self):
        if self.failure is not None:
            return self.fail(self.failure.status, f"{self.failure} The upload was dropped to free its space:"
                                                  " start it again when there is room.")
        if self.writer is None:
            return self.fail(403, self.refusal or "The link is not valid.")
        try:
            etag = self.writer.finish()
        except InsufficientStorage as e:
            self.writer = None
            self._no_room(e)
            return self.put()
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


def upload_origin(kqi, request, tenant) -> str:
    """The origin (scheme://host:port) the web UI's uploads for `tenant` PUT their parts to, as the
    caller of `request` is handed it (the direct listener for a local store, the S3 server's public
    or internal address), for the UI's Content-Security-Policy (connect-src). "" when that is the
    page's own origin, when the tenant has no storage, or when its store cannot be made (its
    uploads cannot start then either; the page still renders)."""
    if tenant is None or tenant.storage is None:
        return ""
    try:
        store = kqi.stores.for_tenant(tenant)
    except (StoreError, BotoCoreError, ClientError, ValueError) as e:
        kqi.log.warning("No upload origin for the tenant %s's pages: %s", tenant.name, type(e).__name__)
        return ""
    return store.upload_origin(f"{request.protocol}://{request.host}") or ""


class DirectNotFoundHandler(_SignedHandler):
    """Everything else on the direct listener: nothing of the API or the UI is served there."""

    def prepare(self):
        self.fail(404, "This address serves only the signed upload and download URLs of the local object store.")


def make_direct_app(kqi) -> web.Application:
    """The application of the direct listener (KqiService.direct_transfer_port): the two signed
    routes under the same path as through the proxy, and a 404 for anything else."""
    return web.Application(make_handlers(kqi.service_prefix), kqi=kqi, kqi_direct=True,
                           default_handler_class=DirectNotFoundHandler, xsrf_cookies=False,
                           log_function=kqi._log_request)
