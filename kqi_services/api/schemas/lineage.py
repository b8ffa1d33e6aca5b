"""Models of GET /lineage/{kind}/{id} (KQI addition; kqi_services/domain/lineage.py)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...domain.lineage import DEFAULT_DEPTH, MAX_DEPTH
from .core import ApiModel, Id, Timestamp

LineageKind = Literal["data", "preprocessing", "dataset", "training", "inference", "notebook"]


class LineageQuery(ApiModel):
    direction: Literal["up", "down", "both"] = "both"
    """up: what the object came from; down: what came from it; both (the default): both."""
    depth: int = Field(DEFAULT_DEPTH, ge=1, le=MAX_DEPTH)
    """How many steps to walk each way."""


class LineageCommit(ApiModel):
    """The model a job ran: git server, repository, branch and commit."""

    gitId: int | None
    repository: str | None = Field(description="owner/name of the model repository.")
    branch: str | None
    commitId: str | None


class LineageNode(ApiModel):
    key: str = Field(description="<kind>:<id>, unique in the graph; the edges name nodes by it.")
    kind: LineageKind
    id: Id = Field(description="The id the kind's own routes use (for a preprocessing run, its historyId).")
    displayId: int | None = Field(description="The tenant's number of the object (none for a preprocessing run).")
    name: str
    status: str | None = Field(description="The job's or notebook's status; null for data and datasets.")
    createdAt: Timestamp | None
    url: str = Field(description="The object's page in the web UI.")
    commit: LineageCommit | None
    image: str | None = Field(description="The container image (image:tag) a job or notebook ran.")
    preprocessId: Id | None = Field(description="A preprocessing run's definition (null for other kinds).")
    inputDataId: Id | None = Field(description="A preprocessing run's input data (null for other kinds).")


class LineageEdge(ApiModel):
    # "from" is a Python keyword: the JSON name is given as an alias
    from_: str = Field(alias="from", description="The key of the source node.")
    to: str = Field(description="The key of the node made from it.")
    relation: Literal["input", "output", "entry", "dataset", "parent", "mount"] = Field(
        description="input: data read by a preprocessing run; output: data a run made; entry: data in a"
                    " dataset; dataset: the dataset of a job or notebook; parent: a job mounted by a later job"
                    " (/kqi/parent); mount: a job mounted by a notebook.")


class LineageOutput(ApiModel):
    """GET /lineage/{kind}/{id}"""

    root: str = Field(description="The key of the object asked about.")
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = Field(description="True when the graph was cut (the depth or the service's node limit).")
