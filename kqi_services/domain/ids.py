"""Per-tenant display ids ("data 7 of this tenant"), handed out without races.

Each (tenant, kind) has a counter row (`display_id_counters`). Taking an id is one atomic
statement, an upsert that returns the new value:

    INSERT INTO display_id_counters (tenant_id, kind, last_id) VALUES (:t, :k, <max id + 1>)
    ON CONFLICT (tenant_id, kind) DO UPDATE SET last_id = display_id_counters.last_id + 1
    RETURNING last_id

On PostgreSQL the updated row stays locked until the creating transaction ends, so a second
creation waits for the first and takes the next number (the first insert of a counter is
settled by the primary key the same way). On SQLite the statement is the transaction's first
write, which takes the database's single write lock, so creators are serialised there. The
row is first made from the table's highest id, so a counter that is missing (a tenant created
after the upgrade) starts where the records are. A unique index on each table (migration
0008) refuses a duplicate should anything ever bypass this.

Call it inside the transaction that inserts the record and commit soon after (the counter stays
locked until then). An id whose creation rolls back is skipped, never handed out twice.

Jobs: a job's display id is the id it is shown by and that every route takes (a tenant's
trainings 1, 2, 3 …, its inferences 1, 2 … and its preprocessing runs apart, as KAMONOHASHI has
them; migration 0011 made existing jobs' display ids their table ids). The table id (`Job.id`)
stays the internal key: storage folders, container names, job tokens, parent links. The
helpers below translate between the two at the API's edge.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db.models_ids import DisplayIdCounter

DATA = "data"
DATASET = "dataset"
NOTEBOOK = "notebook"
PREPROCESSING = "preprocessing"  # preprocessing definitions; their runs are job:preprocessing


def job_kind(kind: str) -> str:
    """The counter kind of a job kind (training, inference, preprocessing): each has its own ids."""
    return f"job:{kind}"


def _records(kind: str, tenant_id: int):
    """The display_id column of the records of `kind` and the condition selecting the tenant's."""
    from ..db.models_data import Data, DataSet
    from ..db.models_jobs import Job
    from ..db.models_notebooks import Notebook
    from ..db.models_preprocessing import Preprocessing

    if kind.startswith("job:"):
        return Job.display_id, (Job.tenant_id == tenant_id) & (Job.kind == kind[4:])
    model = {DATA: Data, DATASET: DataSet, NOTEBOOK: Notebook, PREPROCESSING: Preprocessing}.get(kind)
    if model is None:
        raise ValueError(f"no display ids for {kind!r}")
    return model.display_id, model.tenant_id == tenant_id


def find_job(db: Session, tenant_id: int, kind: str, job_id: int):
    """The job of `kind` a tenant knows by the id `job_id` (its display id), or None."""
    from ..db.models_jobs import Job

    if not isinstance(job_id, int) or isinstance(job_id, bool) or not 0 < job_id <= 2 ** 31 - 1:
        return None
    return db.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.kind == kind, Job.display_id == job_id))


def find_jobs(db: Session, tenant_id: int, kind: str, job_ids) -> dict:
    """{shown id: Job} of the ids among `job_ids` that name a job of `kind` in the tenant."""
    from ..db.models_jobs import Job

    wanted = [i for i in job_ids if isinstance(i, int) and not isinstance(i, bool) and 0 < i <= 2 ** 31 - 1]
    if not wanted:
        return {}
    rows = db.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.kind == kind,
                                        Job.display_id.in_(wanted))).all()
    return {j.display_id: j for j in rows}


def shown_job_ids(db: Session, internal_ids) -> list[int]:
    """The ids jobs are shown by, for their table ids (in order; a deleted job drops out)."""
    from ..db.models_jobs import Job

    internal_ids = list(internal_ids)
    if not internal_ids:
        return []
    shown = dict(db.execute(select(Job.id, Job.display_id).where(Job.id.in_(internal_ids))).all())
    return [shown[i] for i in internal_ids if i in shown]


def _insert(db: Session):
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise RuntimeError(f"display ids need PostgreSQL or SQLite, not {dialect}")
    return insert(DisplayIdCounter)


def next_display_id(db: Session, tenant_id: int, kind: str) -> int:
    """The next display id of a `kind` of record of a tenant; distinct under concurrent callers."""
    column, where = _records(kind, tenant_id)
    first = select(func.coalesce(func.max(column), 0) + 1).where(where).scalar_subquery()
    stmt = _insert(db).values(tenant_id=tenant_id, kind=kind, last_id=first)
    stmt = stmt.on_conflict_do_update(index_elements=[DisplayIdCounter.tenant_id, DisplayIdCounter.kind],
                                      set_={"last_id": DisplayIdCounter.last_id + 1})
    return db.execute(stmt.returning(DisplayIdCounter.last_id)).scalar_one()
