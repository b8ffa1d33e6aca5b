"""Every TensorBoard through an index (migration 0013): a training's TensorBoard record
(`extra["tensorboard"]`) and its indexed `tensorboard_port` change together at every start,
failed start, stop and reconcile; the upgrade fills the column from the records there are; and
finding every TensorBoard (the reconciler, a start's taken ports, the directory's orphans) reads
the partial index ix_jobs_tensorboard_port, not every job's JSON (asked of each database's
planner: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN with sequential scans disabled)."""
from __future__ import annotations

import json
import logging
import uuid

import pytest
from sqlalchemy import create_engine, event, inspect, text
from traitlets.config import LoggingConfigurable

from kqi_services.db import session as dbs
from kqi_services.db.models import Tenant
from kqi_services.db.models_jobs import Job
from kqi_services.tensorboard import STATE, TensorBoards, set_state, taken_ports

INDEX = "ix_jobs_tensorboard_port"


@pytest.fixture
def empty_db_url(db_backend, request, tmp_path):
    if db_backend == "postgresql":
        return request.getfixturevalue("postgres_server").create_database(f"tb_{uuid.uuid4().hex[:8]}")
    return f"sqlite:///{tmp_path}/kqi.db"


def board(port: int, key: str = "tensorboard-1") -> dict:
    return {"key": key, "port": port, "trainingIds": [], "startedAt": 0, "expiresAt": 0, "startedBy": "bob"}


def test_the_migrations_have_one_head_and_0013_follows_0012():
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(dbs.alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    assert scripts.get_revision("0013").down_revision == "0012"


def test_upgrade_0013_fills_the_column_from_the_records_and_downgrade_takes_it_back(empty_db_url):
    dbs.upgrade(empty_db_url, "0012")
    engine = create_engine(empty_db_url)
    now = "2026-01-01 00:00:00"
    rows = {  # table id → (kind, extra)
        1: ("training", {STATE: board(6123), "outputValue": "0.9"}),  # a TensorBoard: its port
        2: ("training", {}),
        3: ("training", {"note": "tensorboard"}),  # the word, not a record
        4: ("training", {STATE: {"key": "tensorboard-4"}}),  # a record without a port (never written so)
        5: ("inference", {"key": "inference-x-5"}),
        6: ("training", {STATE: board(40001, "tensorboard-6")}),
    }
    with engine.begin() as c:
        c.execute(text("INSERT INTO tenants (name, display_name, available_infinite_time_notebook, created_at,"
                       " modified_at) VALUES ('a', 'a', false, :t, :t)"), {"t": now})
        tenant = c.execute(text("SELECT id FROM tenants WHERE name = 'a'")).scalar_one()
        for job_id, (kind, extra) in rows.items():
            c.execute(text("INSERT INTO jobs (id, tenant_id, kind, display_id, name, favorite, local_dataset, options,"
                           " cpu, memory, gpu, ports, zip, extra, status, queued_at, created_at, modified_at)"
                           " VALUES (:i, :t, :k, :i, 'j', false, false, '{}', 1, 1, 0, '[]', true, :e, 'Completed',"
                           " :n, :n, :n)"), {"i": job_id, "t": tenant, "k": kind, "e": json.dumps(extra), "n": now})
    assert "tensorboard_port" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    triggers_before = _triggers(engine)
    dbs.upgrade(empty_db_url)
    with engine.begin() as c:
        assert dict(c.execute(text("SELECT id, tensorboard_port FROM jobs ORDER BY id")).fetchall()) == \
            {1: 6123, 2: None, 3: None, 4: None, 5: None, 6: 40001}
    assert INDEX in {i["name"] for i in inspect(engine).get_indexes("jobs")}
    # the service's reads see them
    sessions = dbs.make_session_factory(dbs.make_engine(empty_db_url))
    with sessions() as db:
        boards = _boards()
        assert sorted(boards.all_states(db)) == [1, 6] and boards.all_states(db)[6]["port"] == 40001
        assert taken_ports(db) == {6123, 40001}
    sessions.kw["bind"].dispose()

    dbs.command.downgrade(dbs.alembic_config(empty_db_url), "0012")
    assert "tensorboard_port" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert INDEX not in {i["name"] for i in inspect(engine).get_indexes("jobs")}
    assert _triggers(engine) == triggers_before  # (0012's triggers on jobs, where SQLite has them, are kept)
    with engine.begin() as c:  # the records stay where they were
        assert json.loads(c.execute(text("SELECT CAST(extra AS TEXT) FROM jobs WHERE id = 1")).scalar_one())[STATE] \
            == board(6123)
    dbs.upgrade(empty_db_url)  # and again
    with engine.begin() as c:
        assert c.execute(text("SELECT id FROM jobs WHERE tensorboard_port IS NOT NULL ORDER BY id")).scalars().all() \
            == [1, 6]
    engine.dispose()


def _triggers(engine) -> set[str]:
    if engine.dialect.name != "sqlite":
        return set()
    with engine.connect() as c:
        return set(c.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'"))
                   .scalars())


class _App(LoggingConfigurable):
    pass


def _boards(backend=None) -> TensorBoards:
    app = _App(log=logging.getLogger("tensorboard-index-test"))
    app.jobs = type("Jobs", (), {"backend": backend})()
    app.service_prefix = "/services/kqi/"
    return TensorBoards(app)


def _plans(db, statements) -> list[str]:
    """The planner's answer for each statement: SQLite's EXPLAIN QUERY PLAN details; PostgreSQL's
    EXPLAIN with sequential scans off (the index is used only when its predicate covers the
    query's: otherwise PostgreSQL still scans the table)."""
    plans = []
    for statement, parameters in statements:
        if db.bind.dialect.name == "sqlite":
            rows = db.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append("\n".join(r[-1] for r in rows))
        else:
            db.execute(text("SET LOCAL enable_seqscan = off"))
            rows = db.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters).fetchall()
            plans.append("\n".join(r[0] for r in rows))
    return plans


def _captured(engine, call):
    """The statements on jobs that `call` sends whose condition is the TensorBoard column."""
    seen = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "tensorboard_port IS NOT NULL" in statement and "FROM jobs" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return result, seen


def test_finding_every_tensorboard_reads_the_index_not_the_table(empty_db_url):
    from kqi_services.api.directory import running_objects

    dbs.upgrade(empty_db_url)
    engine = dbs.make_engine(empty_db_url)
    sessions = dbs.make_session_factory(engine)
    with sessions() as db:
        tenant = Tenant(name="t", display_name="t")
        db.add(tenant)
        db.commit()
        with engine.begin() as c:  # 5,000 trainings without a TensorBoard, their extra naming the word
            c.execute(Job.__table__.insert(), [
                {"tenant_id": tenant.id, "kind": "training", "display_id": i, "name": f"j{i}", "status": "Completed",
                 "cpu": 1.0, "memory": 1.0, "gpu": 0, "extra": {"note": "tensorboard"}} for i in range(1, 5001)])
        with_board = [db.get(Job, i) for i in (17, 2500, 4999)]
        for port, job in zip((7001, 7002, 7003), with_board):
            set_state(job, board(port, f"tensorboard-{job.id}"))
        db.commit()
        boards = _boards()

        for analyzed in (False, True):  # (with the planner's statistics too)
            if analyzed:
                db.execute(text("ANALYZE"))
                db.commit()
            states, seen = _captured(engine, lambda: boards.all_states(db))
            assert sorted(states) == [j.id for j in with_board]
            ports, seen_ports = _captured(engine, lambda: taken_ports(db))
            assert ports == {7001, 7002, 7003}
            found, seen_orphans = _captured(engine, lambda: running_objects(db))
            assert [o["id"] for o in found if o["kind"] == "tensorboard"] == [j.display_id for j in with_board]
            statements = seen + seen_ports + seen_orphans
            assert len(statements) == 3, statements
            for (statement, _), plan in zip(statements, _plans(db, statements)):
                assert INDEX in plan, (statement, plan)
                if db.bind.dialect.name == "sqlite":
                    # "SEARCH jobs USING [COVERING] INDEX ix_jobs_tensorboard_port (tensorboard_port>?)", never
                    # "SCAN jobs" (the table) nor another index of jobs
                    assert all(f"INDEX {INDEX}" in line for line in plan.splitlines() if "jobs" in line), plan
                else:
                    assert "Seq Scan" not in plan, plan
            db.rollback()

        # a cleared record leaves the index too
        set_state(with_board[1], None)
        db.commit()
        assert sorted(boards.all_states(db)) == [with_board[0].id, with_board[2].id]
        assert STATE not in with_board[1].extra and with_board[1].tensorboard_port is None
    engine.dispose()


class _Backend:
    """The launch contract's side of a TensorBoard, recorded: launch fails when told to."""

    name = "local"

    def __init__(self):
        self.fail = False
        self.running: set[str] = set()

    def launch(self, request):
        if self.fail:
            raise RuntimeError("the launch failed")
        self.running.add(request.key)

    def is_running(self, key):
        return key in self.running

    def halt(self, key):
        self.running.discard(key)

    def cleanup(self, key):
        pass


def test_start_failed_start_stop_and_reconcile_keep_the_column_with_the_record(empty_db_url):
    dbs.upgrade(empty_db_url)
    engine = dbs.make_engine(empty_db_url)
    sessions = dbs.make_session_factory(engine)
    backend = _Backend()
    boards = _boards(backend)
    boards.app.session_factory = sessions
    boards.log_dirs = lambda db, tenant, ids: {i: f"/nowhere/{i}" for i in ids}

    def column(db, job):
        db.expire_all()
        return db.scalar(text("SELECT tensorboard_port FROM jobs WHERE id = :i"), {"i": job.id})

    with sessions() as db:
        tenant = Tenant(name="t", display_name="t")
        db.add(tenant)
        db.flush()
        job = Job(tenant_id=tenant.id, kind="training", display_id=1, name="j", status="Completed", cpu=1, memory=1,
                  extra={"outputValue": "1"})
        db.add(job)
        db.commit()

        backend.fail = True
        with pytest.raises(RuntimeError, match="the launch failed"):
            boards.start(db, tenant, job, 600, [job.id], "bob")
        assert column(db, job) is None and STATE not in job.extra and job.extra["outputValue"] == "1"

        backend.fail = False
        boards.start(db, tenant, job, 600, [job.id], "bob")
        first = job.extra[STATE]["port"]
        assert column(db, job) == first and boards.all_states(db) == {job.id: job.extra[STATE]}

        boards.start(db, tenant, job, 600, [job.id], "bob")  # a restart: stopped, then started on a new port
        assert column(db, job) == job.extra[STATE]["port"]

        assert boards.stop(db, job) is True
        assert column(db, job) is None and STATE not in job.extra and boards.all_states(db) == {}

        boards.start(db, tenant, job, 600, [job.id], "bob")
        assert column(db, job) is not None
        backend.running.clear()  # it ended by itself: the reconciler clears both
        boards.reconcile()
        assert column(db, job) is None and STATE not in job.extra and job.extra["outputValue"] == "1"
    engine.dispose()
