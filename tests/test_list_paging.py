"""The list routes filter, order, page and count in the database: they answer the same rows, in
the same order, with the same X-Total-Count as the in-memory paging they replace.

A tenant is seeded with a few hundred varied rows straight into the platform's database (data
with tags and parents, datasets, trainings and inferences with tags, parents and datasets,
preprocessings and one preprocessing's histories). For each list route, each of the SDK's filter
forms (KAMONOHASHI's SearchLong `12`, `>=12`...; SearchString: part of the text, any case;
SearchTime: a day, a prefix of a time, `>`/`<=` a time; tags, `a,b` meaning both) with and
without paging and withTotal, the answer is compared with a reference computed here in Python
over every row of the tenant (the rules of the former implementation, which filtered every row
and sliced the page in memory).
"""
from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

import pytest

from kqi_services.db.models_data import Data, DataSet, DataTag
from kqi_services.db.models_jobs import Job, JobParent, JobTag
from kqi_services.db.models_preprocessing import PreprocessHistory, Preprocessing
from kqi_services.db.session import make_engine, make_session_factory, refresh_statistics
from sqlalchemy import text, update

from .platform import tenant_user

N_DATA, N_DATASETS, N_TRAININGS, N_INFERENCES, N_PREPROCESSINGS = 260, 12, 180, 70, 40
NAMES = ["Cat", "cat_photo", "DOG", "dog-100%", "bird", "A_b", "x%y", "Zebra", "cAT-scan", "m\\n"]
MEMOS = [None, "", "Note one", "another NOTE", "50% done", "under_score", "plain"]
USERS = ["alice", "Bob", "ALICEBOB", "carol"]
TAGS = ["a", "b", "c", "a,b", "x y", "B"]
STATUSES = ["Queued", "Running", "Completed", "Failed", "Killed", "UserCanceled"]
BASE_TIME = datetime(2026, 11, 20, 0, 0, 0)


def _when(rng: random.Random) -> datetime:
    return BASE_TIME + timedelta(seconds=rng.randrange(7 * 24 * 3600))


@pytest.fixture(scope="module")
def seeded(platform):
    """A new tenant with its rows inserted straight into the database; yields (user, rows)."""
    user = tenant_user(platform)
    tenant_id = user.tenant["id"]
    rng = random.Random(13)
    engine = make_engine(platform.kqi_db_url)
    factory = make_session_factory(engine)
    with factory() as db:
        datas = []
        for i in range(N_DATA):
            d = Data(tenant_id=tenant_id, display_id=100000 + i, name=f"{rng.choice(NAMES)}-{i}",
                     memo=rng.choice(MEMOS), created_by=rng.choice(USERS), modified_by="x",
                     created_at=_when(rng), parent_data_id=rng.choice(datas).id if datas and rng.random() < 0.3
                     else None)
            d.tags = [DataTag(name=t) for t in rng.sample(TAGS, rng.randrange(0, 4))]
            db.add(d)
            db.flush()
            datas.append(d)
        datasets = []
        for i in range(N_DATASETS):
            ds = DataSet(tenant_id=tenant_id, display_id=100000 + i, name=f"{rng.choice(NAMES)}-set-{i}",
                         memo=rng.choice(MEMOS), created_by=rng.choice(USERS), created_at=_when(rng))
            db.add(ds)
            db.flush()
            datasets.append(ds)
        jobs = {"training": [], "inference": []}
        for kind, count in (("training", N_TRAININGS), ("inference", N_INFERENCES)):
            for i in range(count):
                j = Job(tenant_id=tenant_id, kind=kind, display_id=100000 + i, name=f"{rng.choice(NAMES)}-{i}".lower(),
                        memo=rng.choice(MEMOS), created_by=rng.choice(USERS), created_at=_when(rng),
                        status=rng.choice(STATUSES), entry_point=rng.choice([None, "python train.py", "RUN.sh x"]),
                        dataset_id=rng.choice(datasets).id if rng.random() < 0.7 else None, cpu=1, memory=1)
                j.tags = [JobTag(name=t) for t in rng.sample(TAGS, rng.randrange(0, 3))]
                pool = jobs["training"]
                j.parents = [JobParent(parent_id=p.id) for p in rng.sample(pool, min(len(pool), rng.randrange(0, 3)))]
                db.add(j)
                db.flush()
                jobs[kind].append(j)
        preprocessings = []
        for i in range(N_PREPROCESSINGS):
            p = Preprocessing(tenant_id=tenant_id, display_id=100000 + i, name=f"{rng.choice(NAMES)}-pre-{i}",
                              memo=rng.choice(MEMOS), created_by=rng.choice(USERS), created_at=_when(rng))
            db.add(p)
            db.flush()
            preprocessings.append(p)
        runner = preprocessings[0]
        for d in rng.sample(datas, 120):
            db.add(PreprocessHistory(tenant_id=tenant_id, preprocess_id=runner.id, input_data_id=d.id,
                                     status=rng.choice(["Opened", "Completed", "Killed"]), created_at=_when(rng),
                                     job_id=rng.choice(jobs["training"]).id if rng.random() < 0.3 else None))
        db.commit()
        rows = {
            "data": [_data_row(d) for d in datas],
            "datasets": [_plain_row(d) for d in datasets],
            "training": [_job_row(j, datasets, jobs["training"]) for j in jobs["training"]],
            "inferences": [_job_row(j, datasets, jobs["training"]) for j in jobs["inference"]],
            "preprocessings": [_plain_row(p) for p in preprocessings],
            "histories": sorted(h.id for h in db.query(PreprocessHistory).filter_by(preprocess_id=runner.id)),
            "runner": runner.id,
            "names": {j.display_id: j.name for j in jobs["training"]},  # (parents are trainings)
            "data_names": {d.id: d.name for d in datas},
        }
    engine.dispose()
    yield user, rows
    # the seeded Queued and Running jobs never ran: end them, or the shared platform's engine
    # counts them against the node and every later test's job waits behind them
    engine = make_engine(platform.kqi_db_url)
    with make_session_factory(engine)() as db:
        db.execute(update(Job).where(Job.tenant_id == tenant_id, Job.status.in_(("Queued", "Running")))
                   .values(status="Killed"))
        db.commit()
    engine.dispose()


def _plain_row(r) -> dict:
    return {"id": r.id, "name": r.name, "memo": r.memo, "createdBy": r.created_by, "createdAt": r.created_at}


def _data_row(d: Data) -> dict:
    return {**_plain_row(d), "tags": sorted(t.name for t in d.tags), "parent": d.parent_data_id}


def _job_row(j: Job, datasets, trainings) -> dict:
    """A job as its list shows it: by its display id (the id the tenant sees), parents too."""
    ds = next((d for d in datasets if d.id == j.dataset_id), None)
    shown = {t.id: t.display_id for t in trainings}
    return {**_plain_row(j), "id": j.display_id, "tags": sorted(t.name for t in j.tags),
            "parents": sorted(shown[p.parent_id] for p in j.parents),
            "status": j.status, "entryPoint": j.entry_point, "dataSetId": j.dataset_id,
            "dataSetName": ds.name if ds else None}


# ------------------------------------------------------------------ the reference (former) rules
def ref_number(value: str, n: int) -> bool:
    m = re.match(r"^\s*(<=|>=|<|>|=)?\s*(\d+)\s*$", value)
    op, k = m.group(1) or "=", int(m.group(2))
    return {"=": n == k, "<": n < k, "<=": n <= k, ">": n > k, ">=": n >= k}[op]


def ref_contains(needle: str, text) -> bool:
    return text is not None and needle.lower() in text.lower()


def ref_date(value: str, when: datetime) -> bool:
    m = re.match(r"^\s*(<=|>=|<|>)?\s*(\S+)\s*$", value)
    op, text = m.group(1), m.group(2)
    start = datetime.fromisoformat(text)
    if op is None:
        step = (timedelta(days=1) if len(text) <= 10 else timedelta(hours=1) if len(text) <= 13
                else timedelta(minutes=1) if len(text) <= 16 else timedelta(seconds=1))
        return start <= when < start + step
    return {"<": when < start, "<=": when <= start, ">": when > start, ">=": when >= start}[op]


def ref_data_tags(values: list[str], tags: list[str]) -> bool:
    """Each value: the tag as written, or (a csv list such as `a,b`, as the SDK sends
    `--tag a --tag b`) every tag of the list."""
    for value in values:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        as_list = (len(parts) > 1 or bool(parts and parts[0] != value)) and all(p in tags for p in parts)
        if value not in tags and not as_list:
            return False
    return True


def ref_filter(route: str, rows: list[dict], params: dict) -> list[dict]:
    def keep(r):
        for key, value in params.items():
            if key in ("perPage", "page", "withTotal") or value in ("", None, []):
                continue
            if key == "id" and not ref_number(value, r["id"]):
                return False
            if key in ("name", "memo", "createdBy", "status", "entryPoint") and not ref_contains(value, r[key]):
                return False
            if key == "startedBy" and not ref_contains(value, r["createdBy"]):
                return False
            if key in ("createdAt", "startedAt") and not ref_date(value, r["createdAt"]):
                return False
            if key == "dataSet" and not ref_contains(value, r["dataSetName"]):
                return False
            if key == "parentId" and int(value) not in r["parents"]:
                return False
            if key in ("tag", "tags"):
                wanted = [t for t in (value if isinstance(value, list) else [value]) if t.strip()]
                if not ref_data_tags(wanted, r["tags"]):  # (the job lists split `a,b` as the data list)
                    return False
        return True

    return sorted((r for r in rows if keep(r)), key=lambda r: -r["id"])


def ref_page(rows: list, params: dict) -> list:
    if "perPage" not in params:
        return rows
    per, page = min(int(params["perPage"]), 1000), int(params.get("page", 1))
    return rows[(page - 1) * per:(page - 1) * per + per]


# ------------------------------------------------------------------------------- the cases
PAGING = [{}, {"perPage": 50, "withTotal": "true"}, {"perPage": 50, "page": 3, "withTotal": "true"},
          {"perPage": 7, "page": 5}, {"perPage": 50, "page": 400, "withTotal": "true"},
          {"perPage": 2000, "withTotal": "true"},
          {"perPage": 1000, "page": 2**53, "withTotal": "true"}]  # an OFFSET past any table (and int64)


def common_filters(rows) -> list[dict]:
    ids = sorted(r["id"] for r in rows)
    mid = ids[len(ids) // 2]
    return [{"id": str(mid)}, {"id": f">{mid}"}, {"id": f"<={mid}"}, {"id": f">= {mid}"}, {"id": f"={ids[0]}"},
            {"id": str(2**31 + 5)}, {"name": "cat"}, {"name": "CAT"}, {"name": "_"}, {"name": "%"}, {"name": "\\"},
            {"name": "dog-1"}, {"memo": "note"}, {"memo": "%"}, {"createdAt": "2026-11-22"},
            {"createdAt": "2026-11-22T10"}, {"createdAt": ">2026-11-24"}, {"createdAt": "<=2026-11-21T12:00"},
            {"createdAt": ">=2026-11-23T06:30:15"}, {"name": "a", "createdAt": "<2026-11-25", "id": f">{ids[3]}"}]


def data_filters(rows) -> list[dict]:
    return common_filters(rows) + [
        {"createdBy": "alice"}, {"createdBy": "BOB"}, {"tag": ["a"]}, {"tag": ["a,b"]}, {"tag": ["a", "c"]},
        {"tag": ["x y"]}, {"tags": ["b"]}, {"tag": [""]}, {"tag": ["B"]}, {"tag": ["b, c"]},
        {"name": "cat", "tag": ["a"], "memo": "o"}]


def job_filters(rows) -> list[dict]:
    with_parent = next(r for r in rows if r["parents"])
    return [f for f in common_filters(rows) if "createdAt" not in f] + [
        {"startedAt": "2026-11-22"}, {"startedAt": ">2026-11-24T00"}, {"startedBy": "ALICE"},
        {"status": "ed"}, {"status": "running"}, {"entryPoint": "py"}, {"entryPoint": ".SH"}, {"dataSet": "set"},
        {"dataSet": "cat"}, {"parentId": str(with_parent["parents"][0])}, {"tag": ["a"]}, {"tag": ["a", "b"]},
        {"tags": ["a,b"]}, {"tag": ["b,c"]}, {"tag": ["c, a"]}, {"tag": [""]},
        {"name": "-1", "status": "e", "tag": ["c"]}]


def _check(user, path: str, route: str, rows: list[dict], filters: list[dict], compare) -> int:
    checked = 0
    for flt in filters:
        for paging in PAGING:
            params = {**flt, **paging}
            r = user.api("GET", path, params=params)
            assert r.status_code == 200, (path, params, r.text[:300])
            expected_all = ref_filter(route, rows, params)
            expected = ref_page(expected_all, params)
            got = r.json()
            assert [g["id"] for g in got] == [e["id"] for e in expected], (path, params)
            if paging.get("withTotal"):
                assert r.headers.get("X-Total-Count") == str(len(expected_all)), (path, params)
            else:
                assert "X-Total-Count" not in r.headers, (path, params)
            for g, e in zip(got, expected):
                compare(g, e)
            checked += 1
    return checked


def test_data_list_matches_the_in_memory_reference(seeded):
    user, rows = seeded

    def compare(g, e):
        assert sorted(g["tags"]) == e["tags"], (g, e)
        assert g["parentDataId"] == e["parent"]
        assert g["parentDataName"] == (rows["data_names"][e["parent"]] if e["parent"] else None)

    assert _check(user, "/data", "data", rows["data"], data_filters(rows["data"]), compare) > 150


@pytest.mark.parametrize("route", ["datasets", "preprocessings"])
def test_dataset_and_preprocessing_lists_match_the_reference(seeded, route):
    user, rows = seeded

    def compare(g, e):
        assert (g["name"], g["memo"]) == (e["name"], e["memo"])

    filters = [f for f in common_filters(rows[route])]
    assert _check(user, f"/{route}", route, rows[route], filters, compare) > 100


@pytest.mark.parametrize("route", ["training", "inferences"])
def test_job_lists_match_the_reference(seeded, route):
    user, rows = seeded

    def compare(g, e):
        assert sorted(g["tags"]) == e["tags"], (g, e)
        assert g["status"] == e["status"]
        assert (g["dataSet"] or {}).get("id") == e["dataSetId"]
        assert sorted(g["parentFullNameList"]) == sorted(f"{p}:{rows['names'][p]}" for p in e["parents"])

    assert _check(user, f"/{route}", route, rows[route], job_filters(rows[route]), compare) > 150


def test_preprocessing_histories_page_in_id_order(seeded):
    user, rows = seeded
    ids = rows["histories"]  # oldest first, as before
    for paging in PAGING:
        r = user.api("GET", f"/preprocessings/{rows['runner']}/histories", params=paging)
        assert r.status_code == 200, r.text
        assert [h["historyId"] for h in r.json()] == ref_page(ids, paging), paging
        if paging.get("withTotal"):
            assert r.headers["X-Total-Count"] == str(len(ids))
        for h in r.json():
            assert h["dataName"] == rows["data_names"][h["dataId"]]


def test_the_filters_of_another_tenant_see_none_of_these_rows(seeded, platform):
    """The tenant is part of every page's query: another tenant's user pages through none of them."""
    user, rows = seeded
    other = tenant_user(platform)
    for path in ("/data", "/datasets", "/training", "/inferences", "/preprocessings"):
        r = other.api("GET", path, params={"perPage": 50, "withTotal": "true"})
        assert r.status_code == 200 and r.json() == [] and r.headers["X-Total-Count"] == "0", (path, r.text)


# ------------------------------------------------------------------------- indexes (migration 0009)
@pytest.fixture
def empty_db_url(db_backend, request, tmp_path):
    if db_backend == "postgresql":
        import uuid

        return request.getfixturevalue("postgres_server").create_database(f"idx_{uuid.uuid4().hex[:8]}")
    return f"sqlite:///{tmp_path}/kqi.db"


def test_0009_makes_the_list_indexes_and_takes_them_back(empty_db_url):
    from sqlalchemy import inspect

    from kqi_services.db import session as dbs

    dbs.upgrade(empty_db_url, "0008")
    dbs.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    wanted = {("data", "ix_data_tenant_id_id"), ("data", "ix_data_tenant_created_at"),
              ("jobs", "ix_jobs_tenant_kind_id"), ("jobs", "ix_jobs_status_id"), ("data_tags", "ix_data_tags_name"),
              ("job_tags", "ix_job_tags_name"), ("preprocess_histories", "ix_preprocess_histories_preprocess_id_id")}

    def present():
        insp = inspect(engine)
        return {(t, i["name"]) for t in {t for t, _ in wanted} for i in insp.get_indexes(t)}

    assert wanted <= present()
    if engine.dialect.name == "postgresql":  # the tests' server runs as postgres: pg_trgm can be made
        with engine.connect() as c:
            trgm = set(c.execute(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_trgm'")).scalars())
        assert {"ix_data_name_trgm", "ix_data_memo_trgm", "ix_jobs_name_trgm"} <= trgm, trgm
    dbs.command.downgrade(dbs.alembic_config(empty_db_url), "0008")
    assert not (wanted & present())
    engine.dispose()


# ------------------------------------------------------------------------------ the engine's tick
class _IdleBackend:
    """The backend side of a tick with no room left (capacity 0): nothing starts and a running job
    has no result yet, so the tick is its database reads and the admission of the queue."""

    name = "local"
    capacity_cpu = capacity_memory_gib = 0.0
    capacity_gpu = 0
    on_exit = None

    def result(self, key):
        return None

    def status_note(self, key):
        return None


def test_the_tick_reads_only_queued_and_running_jobs_through_the_status_index(empty_db_url):
    """With 100,000 finished jobs in the table (and ANALYZE), every statement of a tick that reads
    the jobs table filters on status Queued or Running, answers no finished job, and its plan
    finds the rows through the (status, id) index: no full scan of jobs (SQLite's EXPLAIN QUERY
    PLAN, PostgreSQL's EXPLAIN). The finished jobs are never read, so they cost a tick nothing;
    the time itself is measured by benchmarks/jobs.py --only tick."""
    import logging
    from types import SimpleNamespace

    from sqlalchemy import event

    from kqi_services.db import session as dbs
    from kqi_services.db.models import Tenant
    from kqi_services.domain import job_status as st
    from kqi_services.jobs.engine import JobEngine

    dbs.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    factory = make_session_factory(engine)
    with factory() as db:
        tenants = [Tenant(name=f"t{i}", display_name=f"t{i}") for i in range(5)]
        db.add_all(tenants)
        db.commit()
        tenant_ids = [t.id for t in tenants]
    jobs = JobEngine(SimpleNamespace(session_factory=factory, log=logging.getLogger("tick-test")), _IdleBackend())

    def insert(count, statuses, start, backend=None):
        rows = [{"tenant_id": tenant_ids[i % 5], "kind": "training", "display_id": start + i, "name": f"j{start + i}",
                 "status": statuses[i % len(statuses)], "backend": backend, "cpu": 1.0, "memory": 1.0, "gpu": 0}
                for i in range(count)]
        with engine.begin() as c:
            c.execute(Job.__table__.insert(), rows)

    insert(3, [st.RUNNING], 1, backend="local")  # this backend's: looked at, still running
    insert(2, [st.RUNNING], 4, backend="kubernetes")  # another backend's: counted by admission
    insert(50, [st.QUEUED], 10)  # waiting (no room): read and ranked on every tick
    jobs.tick()
    assert len(jobs.queue_info) == 50
    for chunk in range(10):
        insert(10_000, [st.COMPLETED, st.FAILED, st.KILLED], 100 + chunk * 10_000)
    refresh_statistics(engine)
    with engine.connect() as c:
        active_ids = set(c.execute(text("SELECT id FROM jobs WHERE status IN ('Queued', 'Running')")).scalars())
    assert len(active_ids) == 55

    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        jobs.tick()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(jobs.queue_info) == 50

    on_jobs = [(s, p) for s, p in statements if re.search(r"\bjobs\b", s)]
    assert len(on_jobs) >= 3, statements  # this backend's running jobs, then the queued and the running
    with engine.connect() as c:
        for statement, parameters in on_jobs:
            where = (re.split(r"\sWHERE\s", statement, maxsplit=1, flags=re.I) + [""])[1]
            assert re.search(r"\bjobs\.status (=|IN)", where), f"reads jobs without a status filter: {statement}"
            values = parameters.values() if isinstance(parameters, dict) else parameters
            statuses = {v for v in values if v in st.ACTIVE + st.FINISHED}
            assert statuses and statuses <= set(st.ACTIVE), (statement, parameters)
            answer = c.exec_driver_sql(statement, parameters)
            assert "id" in answer.keys(), statement
            ids = {row.id for row in answer}
            assert ids <= active_ids, f"answers {len(ids - active_ids)} finished jobs: {statement}"
            if engine.dialect.name == "sqlite":
                plan = [row[-1] for row in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                assert not [line for line in plan if re.match(r"SCAN jobs\b", line)], (statement, plan)
                assert [line for line in plan if re.match(r"SEARCH jobs USING (COVERING )?INDEX ix_jobs_status_id "
                                                          r"\(status=", line)], (statement, plan)
            else:
                plan = [row[0] for row in c.exec_driver_sql("EXPLAIN " + statement, parameters)]
                assert not [line for line in plan if "Seq Scan on jobs" in line], (statement, plan)
                assert [line for line in plan if re.search(r"Index Cond: \(\(?status\)?", line)], (statement, plan)
    engine.dispose()


def test_a_page_reads_its_related_rows_once_not_once_per_row(seeded, platform):
    """Tags, parents, datasets and history rows of a page come in one query each: the number of
    statements for a page of 100 is the number for a page of 20."""
    from sqlalchemy import event

    from kqi_services.domain.data import DataManager, data_index
    from kqi_services.domain.jobs import JobQueries, job_indexes
    from kqi_services.domain.paging import PageRequest
    from kqi_services.domain.preprocessing import PreprocessingManager
    from kqi_services.db.models import Tenant

    user, rows = seeded
    engine = make_engine(platform.kqi_db_url)
    factory = make_session_factory(engine)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def count(render, per_page):
        statements.clear()
        with factory() as db:
            tenant = db.get(Tenant, user.tenant["id"])
            render(db, tenant, PageRequest(per_page, 1, True))
        return len(statements)

    def data(db, tenant, request):
        assert len([data_index(d) for d in DataManager(db, tenant).search_page({}, request).rows]) == request.per_page

    def trainings(db, tenant, request):
        page = JobQueries(db, tenant, "training").search_page({}, request)
        assert len(job_indexes(db, page.rows)) == request.per_page

    def inferences(db, tenant, request):  # (whole jobs)
        page = JobQueries(db, tenant, "inference").search_page({}, request, columns=())
        assert len(job_indexes(db, page.rows)) == len(page.rows)

    def histories(db, tenant, request):
        m = PreprocessingManager(db, tenant, user.name)
        p = m.get(rows["runner"])
        assert len([m.history_output(h) for h in m.history_page(p, request).rows]) == request.per_page

    for render in (data, trainings, inferences, histories):
        small, big = count(render, 20), count(render, 100)
        assert big == small and big <= 8, (render.__name__, small, big)
    engine.dispose()
