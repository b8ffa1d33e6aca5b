"""The SDK's upload protocol: upload/parameter and upload/complete."""
from __future__ import annotations

from ..domain.uploads import Uploads
from ..permissions import Access
from .base import BaseAPIHandler
from .schemas import storage as models
from .schemas.core import contract


class UploadParameterHandler(BaseAPIHandler):
    """GET /upload/parameter?fileName=&partSum=&type=[&fileSize=] : one signed URL per part."""

    access = {"GET": Access.TENANT_USER}

    @contract(query=models.UploadParameterQuery, response=models.UploadParameterOutput, errors=(507,))
    async def get(self):
        # the query model reads the raw value (tornado's get_query_argument turns control characters
        # such as NUL into spaces, which would store a file under another name than the one asked for)
        file_name = self.query.fileName
        parts = self.query.partSum  # 0: an empty file (what the CLI asks for one)
        resource_type = self.query.type
        # the file's size, when the client tells it: refused up front if it would not leave the reserve
        file_size = self.query.fileSize
        store = self.tenant_store()
        result = await self.in_thread(
            Uploads(self.db, store, self.tenant).start, self.identity.name, file_name, parts, resource_type,
            self.base_url(), self.kqi.upload_url_expiry_seconds, self.kqi.space_reserve(), file_size,
        )
        self.write_json(result)


class UploadCompleteHandler(BaseAPIHandler):
    """POST /upload/complete {key, uploadId, partETags}"""

    access = {"POST": Access.TENANT_USER}

    @contract(body=models.UploadCompleteInput, response=models.UploadCompleteOutput, errors=(409, 507))
    async def post(self):
        body = self.json_body()
        store = self.tenant_store()
        result = await self.in_thread(Uploads(self.db, store, self.tenant).complete, body)
        self.write_json(result)


default_handlers = [
    (r"/upload/parameter", UploadParameterHandler),
    (r"/upload/complete", UploadCompleteHandler),
]
