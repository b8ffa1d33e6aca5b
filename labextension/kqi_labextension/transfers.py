"""Data moved between the notebook's files and the kqi service, in the notebook server.

Uploads follow the service's upload protocol, the one the official CLI uses
(`kamonohashi.op.object_storage.upload_file`): GET upload/parameter → PUT each part to its signed
URL (keeping the ETags) → POST upload/complete; then POST data and POST data/{id}/files with the
stored paths. One part is in memory at a time; downloads stream to a temporary file renamed at
the end."""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass, field

from .client import KqiClient, service_message
from .context import RequestError, inside_root, relative_to_root, safe_file_name


@dataclass
class Transfer:
    id: str
    state: str = "running"  # running | done | failed
    bytes_done: int = 0
    bytes_total: int = 0
    data_id: int | None = None
    error: str | None = None
    files: list[str] = field(default_factory=list)
    ended_at: float | None = None

    def model(self) -> dict:
        return {"transferId": self.id, "state": self.state, "bytesDone": self.bytes_done,
                "bytesTotal": self.bytes_total, "dataId": self.data_id, "error": self.error,
                "files": list(self.files)}


class Transfers:
    """The server's transfers by id (kept an hour after they end)."""

    keep_seconds = 3600.0

    def __init__(self):
        self._all: dict[str, Transfer] = {}
        self._tasks: set[asyncio.Task] = set()

    def new(self) -> Transfer:
        now = time.time()
        for key in [k for k, t in self._all.items() if t.ended_at and now - t.ended_at > self.keep_seconds]:
            del self._all[key]
        transfer = Transfer(id=secrets.token_urlsafe(12))
        self._all[transfer.id] = transfer
        return transfer

    def get(self, transfer_id: str) -> Transfer | None:
        return self._all.get(transfer_id)

    def run(self, transfer: Transfer, work) -> None:
        async def runner():
            try:
                await work
                transfer.state = "done"
            except RequestError as e:
                transfer.state, transfer.error = "failed", e.message
            except Exception as e:  # noqa: BLE001 - the panel shows why
                transfer.state, transfer.error = "failed", f"{type(e).__name__}: {e}"
            finally:
                transfer.ended_at = time.time()

        task = asyncio.ensure_future(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# ------------------------------------------------------------------ register as data
def upload_files(root: str, paths) -> list[str]:
    """The absolute files of a data-register request; RequestError 400 for a bad list."""
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise RequestError(400, "paths must be a list of the files to register (relative to the root).")
    if len(paths) > 10000:
        raise RequestError(400, "A data holds at most 10000 files.")
    files = []
    for relative in paths:
        path = inside_root(root, relative)
        if not os.path.isfile(path):
            raise RequestError(400, f"{relative} is not a file.")
        files.append(path)
    return files


def check_register_body(body) -> tuple[str, str | None, list[str]]:
    if not isinstance(body, dict):
        raise RequestError(400, "The body must be a JSON object.")
    name, memo, tags = body.get("name"), body.get("memo"), body.get("tags") or []
    if not isinstance(name, str) or not name.strip():
        raise RequestError(400, "name must not be empty.")
    if memo is not None and not isinstance(memo, str):
        raise RequestError(400, "memo must be a text.")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RequestError(400, "tags must be a list of texts.")
    return name, memo, tags


async def upload_one(client: KqiClient, path: str, transfer: Transfer) -> dict:
    size = os.path.getsize(path)
    part = client.cfg.part_size
    parts = (size - 1) // part + 1 if size else 0
    param = await client.api("GET", "upload/parameter", query={
        "fileName": os.path.basename(path), "partSum": parts, "type": "Data", "fileSize": size})
    loop = asyncio.get_running_loop()
    etags = []
    with open(path, "rb") as f:
        for i in range(parts):
            chunk = await loop.run_in_executor(None, f.read, part)
            response = await client.fetch(client.request(
                client.absolute(param["uris"][i]), "PUT", body=chunk,
                headers={"Content-Type": "application/x-www-form-urlencoded"}))
            etag = response.headers.get("ETag")
            if not (200 <= response.code < 300 and etag):
                raise RequestError(502, f"Uploading part {i + 1} of {os.path.basename(path)} failed: "
                                        + service_message(response))
            etags.append(f"{i + 1}+{etag}")
            transfer.bytes_done += len(chunk)
    await client.api("POST", "upload/complete", body={"key": param["key"], "uploadId": param.get("uploadId"),
                                                      "partETags": etags})
    return {"fileName": param["fileName"], "storedPath": param["storedPath"]}


async def register_data(client: KqiClient, transfer: Transfer, files: list[str], name: str, memo, tags) -> None:
    stored = [await upload_one(client, path, transfer) for path in files]
    data = await client.api("POST", "data", body={"name": name, "memo": memo, "tags": tags})
    transfer.data_id = data["id"]
    await client.api("POST", f"data/{data['id']}/files", body={"files": stored})


# ------------------------------------------------------------------ download a data
async def download_data(client: KqiClient, root: str, data_id, folder: str) -> list[str]:
    """Write the files of data `data_id` into `folder` (relative to `root`); their paths."""
    if isinstance(data_id, bool) or not isinstance(data_id, int) or data_id < 1:
        raise RequestError(400, "dataId must be a data's id (a positive whole number).")
    target = inside_root(root, folder or "", writing=True)
    if os.path.exists(target) and not os.path.isdir(target):
        raise RequestError(400, f"{folder} is not a folder.")
    files = await client.api("GET", f"data/{data_id}/files", query={"withUrl": "true"})
    os.makedirs(target, exist_ok=True)
    written = []
    for f in files or []:
        name = safe_file_name(f.get("fileName"))
        path = os.path.join(target, name)
        partial = os.path.join(target, f".{name}.kqi-partial")
        await download_url(client, client.absolute(f["url"]), partial)
        os.replace(partial, path)
        written.append(relative_to_root(root, path))
    return written


async def download_url(client: KqiClient, url: str, path: str) -> None:
    """Stream `url` (a signed URL: no token is sent) into the file `path`, chunk by chunk."""
    with open(path, "wb") as out:
        def write(chunk: bytes) -> None:  # (tornado awaits what a streaming callback returns)
            out.write(chunk)

        try:
            response = await client.fetch(client.request(url, "GET", streaming_callback=write))
            if response.code >= 300:
                raise RequestError(502, f"Downloading {os.path.basename(path)} failed: HTTP {response.code}")
        except BaseException:
            out.close()
            os.remove(path)
            raise
