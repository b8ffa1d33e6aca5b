"""Models of the routes that belong to no group: /version and /openapi.json."""
from __future__ import annotations

from pydantic import Field

try:
    from .core import ApiModel
except ImportError:  # until the shared core lands
    from pydantic import BaseModel as ApiModel


class VersionOutput(ApiModel):
    """GET /version"""

    version: str = Field(description="The platform's version (the kqi-hub package).")
    messages: list[str] = Field(description="Notices for the users (none so far).")
