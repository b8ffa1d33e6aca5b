"""Lineage (KQI addition): GET /lineage/{kind}/{id}, the graph of what an object came from and
what came from it, in the caller's tenant (domain/lineage.py)."""
from __future__ import annotations

from ..domain.lineage import KINDS, LineageWalker
from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .schemas.core import contract
from .schemas.lineage import LineageOutput, LineageQuery


class LineageHandler(BaseAPIHandler):
    """What an object came from and what came from it (KQI addition).

    The lineage graph of a data, preprocessing run (named by its historyId), dataset, training,
    inference or notebook of the current tenant: nodes with their page in the web UI and, for jobs
    and notebooks, the commit and image they ran; edges from each source to what was made from it.
    The walk goes `depth` steps up, down or both ways; a graph larger than the service's node limit
    is cut (truncated: true)."""

    access = Access.TENANT_USER
    path_schemas = {"kind": {"type": "string", "enum": list(KINDS),
                             "description": "What the id names: " + ", ".join(KINDS)
                                            + " (a preprocessing run is named by its historyId)."}}

    @contract(query=LineageQuery, response=LineageOutput)
    def get(self, kind, object_id):
        if kind not in KINDS:
            raise ApiError(404, f"There is no lineage of {kind!r}: the kinds are {', '.join(KINDS)}.")
        walker = LineageWalker(self.db, self.tenant, self.kqi.service_prefix, self.kqi.lineage_max_nodes)
        graph = walker.graph(kind, self.int_path(object_id), self.query.direction, self.query.depth)
        self.write_json(graph.as_json())


default_handlers = [
    (r"/lineage/([a-z]+)/([0-9]+)", LineageHandler),
]
