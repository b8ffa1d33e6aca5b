"""Lineage (KQI addition): where a data, dataset, preprocessing run, training, inference or
notebook came from, and what came from it.

The relations are the ones the platform already records:

    data ──input──▶ preprocessing (a history: one run of a definition over one data)
    preprocessing ──output──▶ data (the data the run made)
    data ──entry──▶ dataset
    dataset ──dataset──▶ training / inference / notebook
    training ──parent──▶ training / inference (a job's parents, mounted at /kqi/parent)
    training / inference ──mount──▶ notebook (the jobs a notebook mounted)

An edge always points from the source to what was made from it, whichever way the graph
is walked. The walk is breadth first, one level at a time: each level asks the database one
question per relation and direction for the whole frontier, and reads the new nodes with one
question per kind, so the cost grows with the depth, never with the number of nodes. Only
the caller's tenant is read (another tenant's object is "not found").

Nodes are keyed "<kind>:<id>" with the id the API shows for that kind (see `api_id`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Registry, Tenant
from ..db.models_data import Data, DataSet, DataSetEntry
from ..db.models_jobs import Job, JobParent
from ..db.models_notebooks import Notebook
from ..db.models_preprocessing import PreprocessHistory, PreprocessHistoryOutput, Preprocessing
from .validation import NotFoundError, ValidationError

DATA, DATASET, PREPROCESSING, TRAINING, INFERENCE, NOTEBOOK = (
    "data", "dataset", "preprocessing", "training", "inference", "notebook")
#: the kinds of node, in the order of the flow
KINDS = (DATA, PREPROCESSING, DATASET, TRAINING, INFERENCE, NOTEBOOK)
JOB_KINDS = (TRAINING, INFERENCE)
DIRECTIONS = ("up", "down", "both")

DEFAULT_DEPTH = 20
MAX_DEPTH = 100
DEFAULT_MAX_NODES = 500


# ------------------------------------------------------------------------------ ids
def api_id(kind: str, row) -> int:
    """The id the API shows for a row of `kind` (its `id` field in the kind's own routes): a job's
    display id (a tenant's trainings and inferences are numbered apart, domain/ids.py), else the
    row's id (a preprocessing run: its history's id)."""
    return row.display_id if kind in JOB_KINDS else row.id


def node_key(kind: str, row_id: int) -> str:
    return f"{kind}:{row_id}"


# --------------------------------------------------------------------------- result
@dataclass
class Lineage:
    root: str
    nodes: dict[str, dict] = field(default_factory=dict)  # key -> node (in the order found)
    edges: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    truncated: bool = False

    def as_json(self) -> dict:
        return {"root": self.root, "nodes": list(self.nodes.values()), "edges": list(self.edges.values()),
                "truncated": self.truncated}


@dataclass(frozen=True)
class _Link:
    """One relation found in the database, between rows (kind, row id)."""

    source: tuple[str, int]
    target: tuple[str, int]
    relation: str


def page_urls(service_prefix: str) -> dict[str, str]:
    """The web UI page of each kind, with {id} (and for a preprocessing run {preprocessId}, {dataId})."""
    base = service_prefix.rstrip("/") + "/"
    return {
        DATA: base + "data#/edit/{id}",
        DATASET: base + "datasets#/edit/{id}",
        PREPROCESSING: base + "preprocessing#/history/{preprocessId}/log/{dataId}",
        TRAINING: base + "training?id={id}",
        INFERENCE: base + "inference?id={id}",
        NOTEBOOK: base + "notebooks?id={id}",
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _commit(git_id, owner, repository, branch, commit_id) -> dict | None:
    if not (owner or repository or commit_id):
        return None
    return {"gitId": git_id, "repository": f"{owner}/{repository}" if owner and repository else repository,
            "branch": branch, "commitId": commit_id}


def _image(host: str | None, image: str | None, tag: str | None) -> str | None:
    """The image reference as the job's page shows it (containerImage.url): <registry host>/<image>:<tag>."""
    if not image:
        return None
    reference = f"{image}:{tag}" if tag else image
    return f"{host}/{reference}" if host else reference


def _ids(values) -> list[int]:
    """Ids from a stored request's list (ints; anything else is ignored)."""
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


# ---------------------------------------------------------------------------- walker
class LineageWalker:
    """Reads the lineage graph of one object of a tenant (see the module's docstring)."""

    def __init__(self, db: Session, tenant: Tenant, service_prefix: str = "/services/kqi/",
                 max_nodes: int = DEFAULT_MAX_NODES):
        self.db, self.tenant = db, tenant
        self.urls = page_urls(service_prefix)
        self.max_nodes = max_nodes
        self.queries = 0  # statements run (tests check the walk stays bounded)
        self._mounts: list[tuple[int, list[tuple[str, int]]]] | None = None
        self._hosts: dict[int, str] | None = None

    # --------------------------------------------------------------- entry point
    def graph(self, kind: str, object_id: int, direction: str = "both", depth: int = DEFAULT_DEPTH) -> Lineage:
        if kind not in KINDS:
            raise NotFoundError(f"There is no lineage of {kind!r}: the kinds are {', '.join(KINDS)}.")
        if direction not in DIRECTIONS:
            raise ValidationError({"direction": [f"must be one of {', '.join(DIRECTIONS)}"]})
        if not 1 <= depth <= MAX_DEPTH:
            raise ValidationError({"depth": [f"must be between 1 and {MAX_DEPTH}"]})
        row_id = self._row_id(kind, object_id)
        roots = self._load({kind: {row_id}})
        if (kind, row_id) not in roots:
            raise NotFoundError(f"No {kind} has the id {object_id} in this tenant.")
        result = Lineage(root=node_key(kind, object_id))
        found = dict(roots)  # (kind, row id) -> node
        links: set[_Link] = set()
        for way in (("up", "down") if direction == "both" else (direction,)):
            self._walk((kind, row_id), way, depth, found, links, result)
        for node in found.values():
            result.nodes[node["key"]] = node
        for link in sorted(links, key=lambda x: (x.source, x.target, x.relation)):
            if link.source in found and link.target in found:
                source, target = found[link.source]["key"], found[link.target]["key"]
                result.edges[(source, target, link.relation)] = {"from": source, "to": target,
                                                                 "relation": link.relation}
        return result

    def _row_id(self, kind: str, object_id: int) -> int:
        """The row id of the object the API names `object_id` (see `api_id`); 0 when there is none."""
        if kind not in JOB_KINDS:
            return object_id
        return self._job_row_ids({kind: {object_id}}).get((kind, object_id), 0)

    def _job_row_ids(self, shown: dict[str, set[int]]) -> dict[tuple[str, int], int]:
        """{(kind, shown id): row id} of the tenant's jobs named by the ids the API shows (one query)."""
        pairs = {(k, i) for k, ids in shown.items() for i in ids if 0 < i <= 2**31 - 1}
        if not pairs:
            return {}
        rows = self._rows(select(Job.kind, Job.display_id, Job.id).where(
            Job.tenant_id == self.tenant.id, Job.kind.in_({k for k, _ in pairs}),
            Job.display_id.in_({i for _, i in pairs})))
        return {(k, d): i for k, d, i in rows if (k, d) in pairs}

    def _walk(self, start: tuple[str, int], way: str, depth: int, found: dict, links: set, result: Lineage):
        frontier = {start}
        for _ in range(depth):
            if not frontier:
                return
            level = self._links(frontier, way)
            wanted: dict[str, set[int]] = defaultdict(set)
            for link in level:
                other = link.source if way == "up" else link.target
                if other not in found:
                    wanted[other[0]].add(other[1])
            room = self.max_nodes - len(found)
            if sum(len(v) for v in wanted.values()) > room:
                result.truncated = True
                wanted = self._cut(wanted, room)
            new = self._load(wanted) if wanted else {}
            found.update(new)
            links.update(level)
            frontier = set(new)
        # at the depth limit: say so when the next level would add nodes
        if frontier and any((link.source if way == "up" else link.target) not in found
                            for link in self._links(frontier, way)):
            result.truncated = True

    @staticmethod
    def _cut(wanted: dict[str, set[int]], room: int) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for kind in KINDS:
            for row_id in sorted(wanted.get(kind, ())):
                if room <= 0:
                    return out
                out.setdefault(kind, set()).add(row_id)
                room -= 1
        return out

    # ------------------------------------------------------------------ queries
    def _rows(self, stmt) -> list:
        self.queries += 1
        return list(self.db.execute(stmt).all())

    def _links(self, frontier: Iterable[tuple[str, int]], way: str) -> set[_Link]:
        by_kind: dict[str, set[int]] = defaultdict(set)
        for kind, row_id in frontier:
            by_kind[kind].add(row_id)
        jobs = {i: k for k in JOB_KINDS for i in by_kind.get(k, ())}
        t = self.tenant.id
        out: set[_Link] = set()
        data, histories, datasets, notebooks = (by_kind.get(k) for k in (DATA, PREPROCESSING, DATASET, NOTEBOOK))
        if way == "up":
            if data:  # the run that made each data
                for h, d in self._rows(select(PreprocessHistoryOutput.history_id, PreprocessHistoryOutput.data_id)
                                       .where(PreprocessHistoryOutput.data_id.in_(data))):
                    out.add(_Link((PREPROCESSING, h), (DATA, d), "output"))
            if histories:  # the data each run read
                for h, d in self._rows(select(PreprocessHistory.id, PreprocessHistory.input_data_id)
                                       .where(PreprocessHistory.id.in_(histories), PreprocessHistory.tenant_id == t)):
                    out.add(_Link((DATA, d), (PREPROCESSING, h), "input"))
            if datasets:
                for s, d in self._rows(select(DataSetEntry.dataset_id, DataSetEntry.data_id)
                                       .where(DataSetEntry.dataset_id.in_(datasets))):
                    out.add(_Link((DATA, d), (DATASET, s), "entry"))
            if jobs:
                for child, parent, kind in self._rows(
                        select(JobParent.job_id, JobParent.parent_id, Job.kind)
                        .join(Job, Job.id == JobParent.parent_id)
                        .where(JobParent.job_id.in_(jobs), Job.tenant_id == t, Job.kind.in_(JOB_KINDS))):
                    out.add(_Link((kind, parent), (jobs[child], child), "parent"))
                for job_id, dataset_id in self._rows(select(Job.id, Job.dataset_id)
                                                     .where(Job.id.in_(jobs), Job.dataset_id.is_not(None))):
                    out.add(_Link((DATASET, dataset_id), (jobs[job_id], job_id), "dataset"))
            if notebooks:
                rows = self._rows(select(Notebook.id, Notebook.dataset_id, Notebook.request)
                                  .where(Notebook.id.in_(notebooks), Notebook.tenant_id == t))
                for nb_id, dataset_id, _request in rows:
                    if dataset_id is not None:
                        out.add(_Link((DATASET, dataset_id), (NOTEBOOK, nb_id), "dataset"))
                for nb_id, mounted in self._mounted([(nb_id, request) for nb_id, _, request in rows]):
                    for kind, job_id in mounted:
                        out.add(_Link((kind, job_id), (NOTEBOOK, nb_id), "mount"))
        else:
            if data:
                for h, d in self._rows(select(PreprocessHistory.id, PreprocessHistory.input_data_id)
                                       .where(PreprocessHistory.input_data_id.in_(data),
                                              PreprocessHistory.tenant_id == t)):
                    out.add(_Link((DATA, d), (PREPROCESSING, h), "input"))
                for s, d in self._rows(select(DataSetEntry.dataset_id, DataSetEntry.data_id)
                                       .where(DataSetEntry.data_id.in_(data))):
                    out.add(_Link((DATA, d), (DATASET, s), "entry"))
            if histories:
                for h, d in self._rows(select(PreprocessHistoryOutput.history_id, PreprocessHistoryOutput.data_id)
                                       .where(PreprocessHistoryOutput.history_id.in_(histories))):
                    out.add(_Link((PREPROCESSING, h), (DATA, d), "output"))
            if datasets:
                for job_id, kind, s in self._rows(select(Job.id, Job.kind, Job.dataset_id)
                                                  .where(Job.dataset_id.in_(datasets), Job.tenant_id == t,
                                                         Job.kind.in_(JOB_KINDS))):
                    out.add(_Link((DATASET, s), (kind, job_id), "dataset"))
                for nb_id, s in self._rows(select(Notebook.id, Notebook.dataset_id)
                                           .where(Notebook.dataset_id.in_(datasets), Notebook.tenant_id == t)):
                    out.add(_Link((DATASET, s), (NOTEBOOK, nb_id), "dataset"))
            if jobs:
                for parent, child, kind in self._rows(
                        select(JobParent.parent_id, JobParent.job_id, Job.kind)
                        .join(Job, Job.id == JobParent.job_id)
                        .where(JobParent.parent_id.in_(jobs), Job.tenant_id == t, Job.kind.in_(JOB_KINDS))):
                    out.add(_Link((jobs[parent], parent), (kind, child), "parent"))
                for nb_id, mounted in self._notebook_mounts():
                    for kind, job_id in mounted:
                        if jobs.get(job_id) == kind:
                            out.add(_Link((kind, job_id), (NOTEBOOK, nb_id), "mount"))
        return out

    def _mounted(self, notebooks: list[tuple[int, dict | None]]) -> list[tuple[int, list[tuple[str, int]]]]:
        """(notebook id, [(kind, job row id)]) of the jobs each notebook's stored run request mounted
        (parentIds: trainings, inferenceIds: inferences, by the ids the API shows; one query)."""
        named = []
        for nb_id, request in notebooks:
            request = request if isinstance(request, dict) else {}
            named.append((nb_id, [(kind, i) for kind, field_name in ((TRAINING, "parentIds"),
                                                                     (INFERENCE, "inferenceIds"))
                                  for i in _ids(request.get(field_name))]))
        wanted: dict[str, set[int]] = defaultdict(set)
        for _, pairs in named:
            for kind, i in pairs:
                wanted[kind].add(i)
        rows = self._job_row_ids(wanted) if wanted else {}
        return [(nb_id, [(kind, rows[(kind, i)]) for kind, i in pairs if (kind, i) in rows])
                for nb_id, pairs in named if pairs]

    def _notebook_mounts(self) -> list[tuple[int, list[tuple[str, int]]]]:
        """`_mounted` of every notebook of the tenant. The mounts live in the notebook's stored request
        (JSON), so they are read once a walk (two queries), however many levels ask."""
        if self._mounts is None:
            self._mounts = [m for m in self._mounted(list(self._rows(
                select(Notebook.id, Notebook.request).where(Notebook.tenant_id == self.tenant.id)))) if m[1]]
        return self._mounts

    # -------------------------------------------------------------------- nodes
    def _host(self, registry_id) -> str | None:
        """The host of a registry (the few registries are read once a walk, when a node needs one)."""
        if registry_id is None:
            return None
        if self._hosts is None:
            self._hosts = dict(self._rows(select(Registry.id, Registry.host)))
        return self._hosts.get(registry_id)

    def _load(self, wanted: dict[str, set[int]]) -> dict[tuple[str, int], dict]:
        """The nodes of the tenant's rows named in `wanted` ({kind: row ids}); the others are left out."""
        t = self.tenant.id
        out: dict[tuple[str, int], dict] = {}
        if wanted.get(DATA):
            for (d,) in self._rows(select(Data).where(Data.id.in_(wanted[DATA]), Data.tenant_id == t)):
                out[(DATA, d.id)] = self._node(DATA, d, d.name, None, d.created_at)
        if wanted.get(DATASET):
            for (s,) in self._rows(select(DataSet).where(DataSet.id.in_(wanted[DATASET]), DataSet.tenant_id == t)):
                out[(DATASET, s.id)] = self._node(DATASET, s, s.name, None, s.created_at)
        if wanted.get(PREPROCESSING):
            for h, p, job in self._rows(
                    select(PreprocessHistory, Preprocessing, Job)
                    .join(Preprocessing, Preprocessing.id == PreprocessHistory.preprocess_id)
                    .outerjoin(Job, Job.id == PreprocessHistory.job_id)
                    .where(PreprocessHistory.id.in_(wanted[PREPROCESSING]), PreprocessHistory.tenant_id == t)):
                run = job if job is not None else p  # an offline run has no job: the definition's model
                node = self._node(PREPROCESSING, h, p.name, job.status if job is not None else h.status,
                                  h.created_at, commit=_commit(run.git_id, run.repository_owner, run.repository_name,
                                                              run.branch, run.commit_id),
                                  image=_image(self._host(run.registry_id), run.image, run.tag),
                                  url=self.urls[PREPROCESSING].format(preprocessId=api_id(PREPROCESSING, p),
                                                                      dataId=h.input_data_id))
                node["preprocessId"], node["inputDataId"] = p.id, h.input_data_id
                out[(PREPROCESSING, h.id)] = node
        job_ids = set().union(*(wanted.get(k, set()) for k in JOB_KINDS))
        if job_ids:
            for (j,) in self._rows(select(Job).where(Job.id.in_(job_ids), Job.tenant_id == t)):
                if j.kind in JOB_KINDS and j.id in wanted.get(j.kind, ()):
                    out[(j.kind, j.id)] = self._node(
                        j.kind, j, j.name, j.status, j.created_at,
                        commit=_commit(j.git_id, j.repository_owner, j.repository_name, j.branch, j.commit_id),
                        image=_image(self._host(j.registry_id), j.image, j.tag))
        if wanted.get(NOTEBOOK):
            for (nb,) in self._rows(select(Notebook).where(Notebook.id.in_(wanted[NOTEBOOK]),
                                                           Notebook.tenant_id == t)):
                request = nb.request or {}
                git = request.get("gitModel") if isinstance(request.get("gitModel"), dict) else {}
                image = request.get("containerImage") if isinstance(request.get("containerImage"), dict) else {}
                out[(NOTEBOOK, nb.id)] = self._node(
                    NOTEBOOK, nb, nb.name, nb.status, nb.created_at,
                    commit=_commit(git.get("gitId"), git.get("owner"), git.get("repository"), git.get("branch"),
                                   git.get("commitId")),
                    image=_image(self._host(image.get("registryId")) if isinstance(image.get("registryId"), int)
                                 else None, image.get("image"), image.get("tag")))
        return out

    def _node(self, kind: str, row, name: str, status: str | None, created_at: datetime | None, *,
              commit: dict | None = None, image: str | None = None, url: str | None = None) -> dict:
        shown = api_id(kind, row)
        return {"key": node_key(kind, shown), "kind": kind, "id": shown,
                "displayId": getattr(row, "display_id", None), "name": name, "status": status,
                "createdAt": _iso(created_at), "url": url or self.urls[kind].format(id=shown),
                "commit": commit, "image": image, "preprocessId": None, "inputDataId": None}
