"""GET /version: the platform's version, open to everyone."""
from importlib.metadata import PackageNotFoundError, version

from ..permissions import Access
from .base import BaseAPIHandler
from .schemas.core import contract
from .schemas.misc import VersionOutput


def platform_version() -> str:
    try:
        return version("kqi-hub")
    except PackageNotFoundError:
        return "0+unknown"


class VersionHandler(BaseAPIHandler):
    access = {"GET": Access.ANONYMOUS}

    @contract(response=VersionOutput)
    def get(self):
        self.write_json({"version": platform_version(), "messages": []})


default_handlers = [(r"/version", VersionHandler)]
