"""GET /openapi.json: the OpenAPI 3.1 document of this API, open to everyone.

The document is built from the routes the service serves (kqi_services.openapi), once per
process, so it always describes the running code; the copy in the repository
(kqi_services/openapi.json) is checked against it by the tests.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from .. import openapi
from ..permissions import Access
from .base import BaseAPIHandler
from .schemas.core import contract


@lru_cache(maxsize=1)
def _document_text() -> str:
    return openapi.dumps(openapi.build_document())


class OpenAPIHandler(BaseAPIHandler):
    """The OpenAPI 3.1 document of the kqi REST API."""

    access = {"GET": Access.ANONYMOUS}

    @contract(response=dict[str, Any])
    def get(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(_document_text())


default_handlers = [(r"/openapi\.json", OpenAPIHandler)]
