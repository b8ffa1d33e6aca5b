"""Models of the routes that belong to no group (/version), and field types shared by several groups."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .core import ApiModel

#: the largest id the database holds (its id columns are 32-bit integers)
DB_MAX_ID = 2**31 - 1

#: a reference in a body to a row of the database (a tenant, git server, registry, storage endpoint):
#: 1..2**31-1 (ids start at 1), so an id the database cannot hold is a 400 naming the field, not a
#: database error
RowId = Annotated[int, Field(ge=1, le=DB_MAX_ID)]

#: a whole number the database keeps in an integer column (a GPU count): 0..2**31-1
Count = Annotated[int, Field(ge=0, le=DB_MAX_ID)]


class VersionOutput(ApiModel):
    """GET /version"""

    version: str = Field(description="The platform's version (the kqi-hub package).")
    messages: list[str] = Field(description="Notices for the users (none so far).")
