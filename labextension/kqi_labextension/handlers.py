"""The server extension's routes (see ../CONTRACT.md). Thin: the rules are in context.py and
transfers.py, the calls in client.py."""
from __future__ import annotations

import asyncio
import json
import os

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from .client import KqiClient
from .config import KqiLab
from .context import RequestError, notebook_context, notebook_repositories, training_from_here
from .transfers import Transfers, check_register_body, download_data, register_data, upload_files

#: request headers of the browser passed on to the kqi service (never its cookies or credentials)
FORWARD_REQUEST_HEADERS = ("Content-Type", "Accept", "Accept-Language", "Range", "If-None-Match",
                           "If-Modified-Since")
#: response headers of the kqi service passed back
FORWARD_RESPONSE_HEADERS = ("Content-Type", "Content-Disposition", "X-Total-Count", "X-Log-Offset", "Location",
                            "ETag", "Last-Modified", "Cache-Control", "Content-Range", "Accept-Ranges",
                            "X-Content-Type-Options")


class KqiHandler(APIHandler):
    @property
    def kqi(self) -> KqiLab:
        return self.settings["kqi_lab"]

    @property
    def client(self) -> KqiClient:
        return self.settings["kqi_lab_client"]

    @property
    def root(self) -> str:
        return os.path.abspath(os.path.expanduser(self.settings.get("server_root_dir") or os.getcwd()))

    def body_json(self):
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError:
            raise RequestError(400, "The body is not valid JSON.") from None

    def fail(self, e: RequestError):
        self.set_status(e.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": e.message, **e.extra}))

    def answer(self, data, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class ForwardHandler(KqiHandler):
    """{base_url}kqi/api/v2/<path>: the same call to the kqi service, as the notebook's owner in the
    notebook's tenant (the server's token and tenant, whatever the browser sent)."""

    _headers_sent = False
    _closed = False

    def on_connection_close(self):
        self._closed = True

    async def _forward(self, path: str):
        await self.client.tenant()  # the tenant the service gives this server's token (asked once)
        headers = {name: self.request.headers[name] for name in FORWARD_REQUEST_HEADERS
                   if name in self.request.headers}
        query = self.request.query
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        status_line: list = []
        response_headers: list[tuple[str, str]] = []

        def on_header(line: str):
            line = line.rstrip("\r\n")
            if line.startswith("HTTP/"):
                status_line[:] = [line]
                response_headers.clear()
            elif ":" in line:
                name, _, value = line.partition(":")
                response_headers.append((name.strip(), value.strip()))

        def send_headers():
            if self._headers_sent:
                return
            self._headers_sent = True
            parts = status_line[0].split(" ", 2) if status_line else []
            code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 502
            self.set_status(code, reason=parts[2] if len(parts) > 2 else None)
            self.clear_header("Content-Type")
            for name, value in response_headers:
                if name.title() in [h.title() for h in FORWARD_RESPONSE_HEADERS]:
                    self.set_header(name, value)

        def on_chunk(chunk: bytes):
            if self._closed:
                raise StreamClosedError()  # the browser left: stop reading from the service
            send_headers()
            self.write(chunk)
            self.flush()

        try:
            req = self.client.request(self.client.api_url(path, query), self.request.method,
                                      headers=self.client.api_headers(headers), body=body,
                                      header_callback=on_header, streaming_callback=on_chunk)
            response = await self.client.fetch(req)
        except RequestError as e:
            if self._headers_sent:
                raise web.Finish() from None
            return self.fail(e)
        if response.code == 599 and not self._headers_sent:
            return self.fail(RequestError(502, f"The kqi service cannot be reached: {response.error}"))
        send_headers()
        if not self._closed:
            self.finish()

    @web.authenticated
    async def get(self, path):
        await self._forward(path)

    @web.authenticated
    async def post(self, path):
        await self._forward(path)

    @web.authenticated
    async def put(self, path):
        await self._forward(path)

    @web.authenticated
    async def delete(self, path):
        await self._forward(path)


class ContextHandler(KqiHandler):
    @web.authenticated
    async def get(self):
        tenant = await self.client.tenant()
        data = await asyncio.get_running_loop().run_in_executor(None, notebook_context, self.kqi, self.root, tenant)
        self.answer(data)


class DataDownloadHandler(KqiHandler):
    @web.authenticated
    async def post(self):
        try:
            body = self.body_json()
            if not isinstance(body, dict):
                raise RequestError(400, "The body must be a JSON object.")
            files = await download_data(self.client, self.root, body.get("dataId"), body.get("path") or "")
        except RequestError as e:
            return self.fail(e)
        self.answer({"files": files})


class DataRegisterHandler(KqiHandler):
    @web.authenticated
    async def post(self):
        try:
            name, memo, tags = check_register_body(self.body_json())
            files = upload_files(self.root, self.body_json().get("paths"))
        except RequestError as e:
            return self.fail(e)
        transfers: Transfers = self.settings["kqi_lab_transfers"]
        transfer = transfers.new()
        transfer.bytes_total = sum(os.path.getsize(f) for f in files)
        transfers.run(transfer, register_data(self.client, transfer, files, name, memo, tags))
        self.answer({"transferId": transfer.id}, status=202)


class TransferHandler(KqiHandler):
    @web.authenticated
    async def get(self, transfer_id):
        transfer = self.settings["kqi_lab_transfers"].get(transfer_id)
        if transfer is None:
            return self.fail(RequestError(404, f"No transfer {transfer_id} in this server."))
        self.answer(transfer.model())


class TrainFromHereHandler(KqiHandler):
    @web.authenticated
    async def post(self):
        try:
            body = self.body_json()
            repos = await asyncio.get_running_loop().run_in_executor(
                None, notebook_repositories, self.kqi, self.root)
            request = training_from_here(body, self.kqi, repos)
            created = await self.client.api("POST", "training/run", body=request)
        except RequestError as e:
            return self.fail(e)
        self.answer(created, status=201)


def setup_handlers(serverapp) -> None:
    web_app = serverapp.web_app
    cfg = KqiLab(parent=serverapp)
    web_app.settings["kqi_lab"] = cfg
    web_app.settings["kqi_lab_client"] = KqiClient(cfg)
    web_app.settings["kqi_lab_transfers"] = Transfers()
    base = url_path_join(web_app.settings["base_url"], "kqi")
    web_app.add_handlers(".*$", [
        (url_path_join(base, r"api/v2/(.*)"), ForwardHandler),
        (url_path_join(base, "context"), ContextHandler),
        (url_path_join(base, "data-download"), DataDownloadHandler),
        (url_path_join(base, "data-register"), DataRegisterHandler),
        (url_path_join(base, r"transfers/([^/]+)"), TransferHandler),
        (url_path_join(base, "train-from-here"), TrainFromHereHandler),
    ])
    serverapp.log.info("kqi_labextension: %s forwarded to %s (tenant %s)", base + "/api/v2/",
                       cfg.kqi_server or "(KQI_SERVER not set)", cfg.tenant_id or "?")
