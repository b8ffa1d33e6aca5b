"""The SDK's upload protocol: upload/parameter and upload/complete."""
from __future__ import annotations

from ..domain.uploads import Uploads
from ..permissions import Access
from .base import ApiError, BaseAPIHandler


class UploadParameterHandler(BaseAPIHandler):
    """GET /upload/parameter?fileName=&partSum=&type= : one signed URL per part."""

    access = {"GET": Access.TENANT_USER}

    async def get(self):
        # the raw value: tornado's get_query_argument turns control characters such as NUL into
        # spaces, which would store a file under another name than the one asked for
        raw = self.request.query_arguments.get("fileName")
        try:
            file_name = raw[-1].decode("utf-8") if raw else None
        except UnicodeDecodeError:
            raise ApiError(400, "The file name is not valid UTF-8.", {"fileName": ["must be UTF-8"]})
        parts = self.int_query("partSum", None, minimum=0)  # 0: an empty file (what the CLI asks for one)
        if parts is None:
            raise ApiError(400, "Give the number of parts as partSum.", {"partSum": ["is required"]})
        resource_type = self.get_query_argument("type", "Data")
        store = self.tenant_store()
        result = await self.in_thread(
            Uploads(self.db, store, self.tenant).start, self.identity.name, file_name, parts, resource_type,
            self.base_url(), self.kqi.upload_url_expiry_seconds,
        )
        self.write_json(result)


class UploadCompleteHandler(BaseAPIHandler):
    """POST /upload/complete {key, uploadId, partETags}"""

    access = {"POST": Access.TENANT_USER}

    async def post(self):
        body = self.json_body()
        store = self.tenant_store()
        result = await self.in_thread(Uploads(self.db, store, self.tenant).complete, body)
        self.write_json(result)


default_handlers = [
    (r"/upload/parameter", UploadParameterHandler),
    (r"/upload/complete", UploadCompleteHandler),
]
