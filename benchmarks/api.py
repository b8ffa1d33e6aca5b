#!/usr/bin/env python3
"""List and details latency of the API at 100,000 data and 100,000 jobs, against the database's
own time for the same statements, in the same run.

For each database (PostgreSQL, started as the tests start one, and SQLite) it starts a KQI Hub on
it (tests/platform.py), makes the measured tenant and its user through the API, then writes
straight into the database (executemany, a few seconds): 100,000 data of that tenant (a tag and a
file each, some with a parent), 2,000 datasets, 500 preprocessings and 5,000 histories of one,
100,000 jobs across 4 tenants (60,000 trainings and inferences in the measured one, 3 of every
5 in id order, mostly finished) and 10,000 stopped notebooks. Then, for every list route with a page of 50, each filter, a deep page, withTotal, and
the details routes, it measures p50/p95 of `--rounds` requests through the hub (the client's
whole time), and the database's own time for the statements the service runs for that request
(captured by running the same domain code in this process): PostgreSQL's EXPLAIN ANALYZE
(planning + execution), SQLite's execution and fetch of the statement (sqlite3, no ANALYZE there).

Targets: p95 < 20 ms for a page of 50 and for each filter, and <= 3x the database's own time;
details p95 < 10 ms. Exits 1 when a target is missed.

Usage: .venv/bin/python benchmarks/api.py [--db postgresql,sqlite] [--data 100000] [--jobs 100000]
                                          [--rounds 100]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sqlalchemy import event  # noqa: E402

from kqi_services.db.models import Tenant  # noqa: E402
from kqi_services.db.models_data import Data, DataFile, DataSet, DataTag  # noqa: E402
from kqi_services.db.models_jobs import Job, JobParent, JobTag  # noqa: E402
from kqi_services.db.models_notebooks import Notebook  # noqa: E402
from kqi_services.db.models_preprocessing import PreprocessHistory, Preprocessing  # noqa: E402
from kqi_services.db.session import make_engine, make_session_factory, refresh_statistics  # noqa: E402
from tests.platform import new_platform, tenant_user  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

ID0 = 1_000_000  # ids of the seeded rows start here (above what the platform made itself)
STATUSES = ["Completed"] * 6 + ["Failed", "Killed", "UserCanceled"]
RESULTS: list[dict] = []


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


# ---------------------------------------------------------------------------------- seeding
def seed(engine, tenant_id: int, other_tenants: list[int], n_data: int, n_jobs: int) -> dict:
    rng = random.Random(7)
    base = datetime(2025, 1, 1)
    began = time.monotonic()

    def insert(table, rows):
        with engine.begin() as c:
            for i in range(0, len(rows), 20_000):
                c.execute(table.insert(), rows[i:i + 20_000])

    when = [base + timedelta(seconds=i * 300) for i in range(max(n_data, n_jobs))]
    data = [{"id": ID0 + i, "tenant_id": tenant_id, "display_id": ID0 + i, "name": f"data-{i}",
             "memo": f"memo {rng.choice(['camera', 'lidar', 'audio', 'text'])} {i}", "created_by": f"user{i % 20}",
             "modified_by": f"user{i % 20}", "created_at": when[i], "modified_at": when[i],
             "parent_data_id": ID0 + i - 1 if i and i % 10 == 0 else None} for i in range(n_data)]
    insert(Data.__table__, data)
    insert(DataTag.__table__, [{"data_id": ID0 + i, "name": f"tag{i % 100}"} for i in range(n_data)])
    insert(DataFile.__table__, [{"id": ID0 + i, "data_id": ID0 + i, "file_name": f"f{i}.bin",
                                 "stored_path": f"Data/seed/{i}/f{i}.bin", "size": 1024, "created_at": when[i],
                                 "created_by": "seed"} for i in range(n_data)])
    n_sets = 2000
    insert(DataSet.__table__, [{"id": ID0 + i, "tenant_id": tenant_id, "display_id": ID0 + i,
                                "name": f"set-{i}", "memo": None, "is_flat": True, "created_at": when[i],
                                "modified_at": when[i]} for i in range(n_sets)])
    insert(Preprocessing.__table__, [{"id": ID0 + i, "tenant_id": tenant_id, "display_id": ID0 + i,
                                      "name": f"pre-{i}", "created_at": when[i], "modified_at": when[i]}
                                     for i in range(500)])
    insert(PreprocessHistory.__table__, [{"id": ID0 + i, "tenant_id": tenant_id, "preprocess_id": ID0,
                                          "input_data_id": ID0 + i, "status": "Completed", "created_at": when[i]}
                                         for i in range(min(5000, n_data))])
    jobs, tags, parents = [], [], []
    mine = sum(1 for i in range(n_jobs) if i % 5 < 3)
    for i in range(n_jobs):
        # interleaved in time as tenants work side by side: 3 of every 5 jobs are the measured tenant's
        tenant = tenant_id if i % 5 < 3 else other_tenants[i % len(other_tenants)]
        kind = "training" if i % 3 else "inference"
        jobs.append({"id": ID0 + i, "tenant_id": tenant, "kind": kind, "display_id": ID0 + i, "name": f"job-{i}",
                     "memo": f"run {i}", "status": rng.choice(STATUSES), "entry_point": f"python train.py --seed {i}",
                     "dataset_id": ID0 + i % n_sets if tenant == tenant_id else None, "cpu": 1.0, "memory": 1.0,
                     "gpu": 0, "created_by": f"user{i % 20}", "created_at": when[i], "modified_at": when[i],
                     "queued_at": when[i]})
        tags.append({"job_id": ID0 + i, "name": f"tag{i % 50}"})
        if i > 5 and i % 7 == 0 and tenant == tenant_id:
            parents.append({"job_id": ID0 + i, "parent_id": ID0 + i - 5})  # (the same tenant)
    insert(Job.__table__, jobs)
    insert(JobTag.__table__, tags)
    insert(JobParent.__table__, parents)
    # 10,000 ended notebooks of the measured tenant (no server up: the list asks the hub once)
    insert(Notebook.__table__, [{"id": ID0 + i, "tenant_id": tenant_id, "display_id": ID0 + i, "name": f"nb-{i}",
                                 "memo": f"try {i}", "server_name": f"kqi-{ID0 + i}", "request": {},
                                 "status": "Stopped", "created_by": f"user{i % 20}", "created_at": when[i],
                                 "modified_at": when[i]} for i in range(min(10_000, n_data))])
    refresh_statistics(engine)
    return {"seconds": time.monotonic() - began, "training": ID0 + 1, "data": ID0 + 5, "mine": mine}


# ------------------------------------------------------------------------- the database's time
class Capture:
    """The statements the service's domain code runs for a request, run here on the same engine."""

    def __init__(self, engine):
        self.engine, self.statements, self.on = engine, [], False
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.statements.append((statement, parameters))

    def run(self, func) -> list:
        self.statements, self.on = [], True
        try:
            func()
        finally:
            self.on = False
        return self.statements

    def db_time(self, statements, sqlite_path: str | None) -> float:
        """Seconds the database spends on `statements` (median of 5 runs of the whole set)."""
        runs = []
        for _ in range(5):
            total = 0.0
            if sqlite_path:
                con = sqlite3.connect(sqlite_path)
                for statement, params in statements:
                    began = time.perf_counter()
                    con.execute(statement, params).fetchall()
                    total += time.perf_counter() - began
                con.close()
            else:
                raw = self.engine.raw_connection()
                try:
                    cur = raw.cursor()
                    for statement, params in statements:
                        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
                        plan = cur.fetchone()[0]
                        plan = plan if isinstance(plan, list) else json.loads(plan)
                        total += (plan[0]["Planning Time"] + plan[0]["Execution Time"]) / 1000
                finally:
                    raw.close()
            runs.append(total)
        return statistics.median(runs)


def domain_call(factory, tenant_id: int, route: str, params: dict, detail_id: int | None):
    """The domain code the handler of `route` runs (its database part), for Capture."""
    from kqi_services.domain.data import INDEX_COLUMNS as DATA_COLUMNS, DataManager, data_index, data_indexes
    from kqi_services.domain.datasets import DataSetManager, dataset_index
    from kqi_services.domain.jobs import INDEX_COLUMNS, JobQueries, job_details, job_indexes
    from kqi_services.domain.notebooks import NotebookManager
    from kqi_services.domain.paging import PageRequest
    from kqi_services.domain.preprocessing import PreprocessingManager

    request = PageRequest(int(params["perPage"]) if "perPage" in params else None, int(params.get("page", 1)),
                          params.get("withTotal") == "true")
    args = {k: v for k, v in params.items() if k not in ("perPage", "page", "withTotal", "tag")}
    if "tag" in params:
        args["tags"] = [params["tag"]]

    def call():
        with factory() as db:
            tenant = db.get(Tenant, tenant_id)
            if route == "data":
                m = DataManager(db, tenant)
                if detail_id:
                    d = m.get(detail_id)
                    data_index(d), [f.file_name for f in d.files]
                else:
                    data_indexes(db, m.search_page(args, request, DATA_COLUMNS).rows)
            elif route == "datasets":
                [dataset_index(d) for d in DataSetManager(db, tenant).search_page(args, request).rows]
            elif route in ("training", "inference"):
                q = JobQueries(db, tenant, route)
                if detail_id:
                    job_details(db, q.get(detail_id))
                else:
                    # (an inference list also reads where the output values are kept)
                    page = q.search_page(args, request, INDEX_COLUMNS + ((Job.extra,) if route == "inference" else ()))
                    job_indexes(db, page.rows)
            elif route == "notebook":
                m = NotebookManager(db, tenant, "x", None)
                m.active()
                m.search_page(args, request)
            elif route == "preprocessings":
                PreprocessingManager(db, tenant, "x").search_page(args, request)
            elif route == "histories":
                m = PreprocessingManager(db, tenant, "x")
                definition = m.get(ID0)  # (the handler holds it too)
                page = m.history_page(definition, request)
                [m.history_output(h) for h in page.rows]
    return call


# ----------------------------------------------------------------------------------- the cases
def cases(seeded: dict) -> list[tuple[str, str, str, dict, int | None, str]]:
    """(label, route, path, params, detail id, target kind: page|details)."""
    p50 = {"perPage": "50"}
    out = [
        ("data page 1", "data", "/data", {**p50, "page": "1"}, None, "page"),
        ("data page 1 withTotal", "data", "/data", {**p50, "page": "1", "withTotal": "true"}, None, "page"),
        ("data deep page 1500", "data", "/data", {**p50, "page": "1500"}, None, "page"),
        ("data name=data-9999 withTotal", "data", "/data", {**p50, "name": "data-9999", "withTotal": "true"},
         None, "page"),
        ("data memo=lidar", "data", "/data", {**p50, "memo": "lidar"}, None, "page"),
        ("data tag=tag7", "data", "/data", {**p50, "tag": "tag7"}, None, "page"),
        ("data tag=tag7 withTotal", "data", "/data", {**p50, "tag": "tag7", "withTotal": "true"}, None, "page"),
        ("data createdBy=user3", "data", "/data", {**p50, "createdBy": "user3"}, None, "page"),
        ("data createdAt=2025-03-01", "data", "/data", {**p50, "createdAt": "2025-03-01"}, None, "page"),
        ("data id>=1050000", "data", "/data", {**p50, "id": ">=1050000"}, None, "page"),
        ("datasets page 1 withTotal", "datasets", "/datasets", {**p50, "withTotal": "true"}, None, "page"),
        ("datasets name=set-19", "datasets", "/datasets", {**p50, "name": "set-19"}, None, "page"),
        ("training page 1", "training", "/training", {**p50}, None, "page"),
        ("training page 1 withTotal", "training", "/training", {**p50, "withTotal": "true"}, None, "page"),
        ("training deep page 700", "training", "/training", {**p50, "page": "700"}, None, "page"),
        ("training name=job-999", "training", "/training", {**p50, "name": "job-999"}, None, "page"),
        ("training status=Failed", "training", "/training", {**p50, "status": "Failed"}, None, "page"),
        ("training tag=tag7", "training", "/training", {**p50, "tag": "tag7"}, None, "page"),
        ("training startedAt=2025-03-01", "training", "/training", {**p50, "startedAt": "2025-03-01"}, None, "page"),
        ("training dataSet=set-1", "training", "/training", {**p50, "dataSet": "set-1"}, None, "page"),
        ("training parentId", "training", "/training", {**p50, "parentId": str(ID0 + 2)}, None, "page"),
        ("training tag=tag7,tag8 (both)", "training", "/training", {**p50, "tag": "tag7,tag8"}, None, "page"),
        ("inferences page 1 withTotal", "inference", "/inferences", {**p50, "withTotal": "true"}, None, "page"),
        ("inferences deep page 300", "inference", "/inferences", {**p50, "page": "300"}, None, "page"),
        ("notebooks page 1 withTotal", "notebook", "/notebook", {**p50, "withTotal": "true"}, None, "page"),
        ("notebooks name=nb-999 withTotal", "notebook", "/notebook", {**p50, "name": "nb-999", "withTotal": "true"},
         None, "page"),
        ("notebooks deep page 150", "notebook", "/notebook", {**p50, "page": "150"}, None, "page"),
        ("preprocessings page 1 withTotal", "preprocessings", "/preprocessings", {**p50, "withTotal": "true"},
         None, "page"),
        ("histories page 1 withTotal", "histories", f"/preprocessings/{ID0}/histories",
         {**p50, "withTotal": "true"}, None, "page"),
        ("data details", "data", f"/data/{seeded['data']}", {}, seeded["data"], "details"),
        ("training details", "training", f"/training/{seeded['training']}", {}, seeded["training"], "details"),
    ]
    return out


def measure(backend: str, args) -> None:
    base = tempfile.mkdtemp(prefix=f"kqi-bench-api-{backend}-")
    pg = None
    # as deployed: the hub's answer on a token cached (the tests ask on every request), answers not
    # checked against their contracts (the tests check every one)
    env = {"KQI_HUB_AUTH_CACHE_SECONDS": "300", "KQI_CHECK_RESPONSES": "0"}
    sqlite_path = None
    try:
        if backend == "postgresql":
            pg = PostgresServer().start()
            env["KQI_HUB_DB_URL"] = pg.create_database("hub")
            env["KQI_DB_URL"] = db_url = pg.create_database("kqi")
        else:
            os.makedirs(os.path.join(base, "db"))
            sqlite_path = os.path.join(base, "db", "kqi.sqlite")
            env["KQI_DB_URL"] = db_url = f"sqlite:///{sqlite_path}"
        platform = new_platform(base, env)
        platform.start(timeout=120)
        try:
            user = tenant_user(platform)
            others = [platform.create_tenant()["id"] for _ in range(3)]
            engine = make_engine(db_url)
            seeded = seed(engine, user.tenant["id"], others, args.data, args.jobs)
            print(f"\n[{backend}] seeded {args.data:,} data (+tags, files), {args.jobs:,} jobs "
                  f"({seeded['mine']:,} in the measured tenant), 2,000 datasets, 500 preprocessings, "
                  f"5,000 histories in {seeded['seconds']:.1f} s", flush=True)
            factory = make_session_factory(engine)
            capture = Capture(engine)
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {user.token}"
            times = []
            for _ in range(args.rounds):
                began = time.perf_counter()
                session.get(platform.api_url + "/version", timeout=60)
                times.append(time.perf_counter() - began)
            fixed = pct(times, 50) * 1000  # what any request costs before its own work
            print(f"  GET /version (no database, the hub's proxy and the service's fixed cost): "
                  f"p50 {pct(times, 50) * 1000:.1f} ms, p95 {pct(times, 95) * 1000:.1f} ms")
            # the same requests on the service's own address, past configurable-http-proxy: the proxy's share
            direct = platform.hub("GET", "/services/kqi").json()["url"].rstrip("/") + \
                platform.api_url.split(str(platform.port), 1)[1]
            for label, path, params in (("GET /version", "/version", {}),
                                        ("data page 1", "/data", {"perPage": "50", "page": "1"})):
                times = []
                for _ in range(args.rounds):
                    began = time.perf_counter()
                    r = session.get(direct + path, params=params, timeout=60)
                    times.append(time.perf_counter() - began)
                assert r.status_code == 200, (direct, r.status_code, r.text[:200])
                print(f"  {label} on the service's own address (no proxy): p50 {pct(times, 50) * 1000:.1f} ms, "
                      f"p95 {pct(times, 95) * 1000:.1f} ms")
            print(f"  {'request':40} {'p50 ms':>8} {'p95 ms':>8} {'db ms':>8} {'p95/db':>7} {'own/db':>7} {'sql':>4} "
                  f"{'rows':>5}  target")
            for label, route, path, params, detail_id, kind in cases(seeded):
                url = platform.api_url + path
                for _ in range(3):
                    r = session.get(url, params=params, timeout=60)
                    assert r.status_code == 200, (label, r.status_code, r.text[:300])
                times = []
                for _ in range(args.rounds):
                    began = time.perf_counter()
                    r = session.get(url, params=params, timeout=60)
                    times.append(time.perf_counter() - began)
                rows = len(r.json()) if isinstance(r.json(), list) else 1
                statements = capture.run(domain_call(factory, user.tenant["id"], route, params, detail_id))
                db = capture.db_time(statements, sqlite_path)
                p50, p95 = pct(times, 50) * 1000, pct(times, 95) * 1000
                limit = 10 if kind == "details" else 20
                fast = p95 < limit
                near_db = None if kind == "details" else p95 <= 3 * db * 1000
                met = fast and near_db is not False
                # (not a target) the request's own share: its p50 above GET /version's, against the database's time
                own = max(0.0, p50 - fixed) / (db * 1000)
                RESULTS.append({"db": backend, "request": label, "p50": p50, "p95": p95, "db_ms": db * 1000,
                                "statements": len(statements), "fast": fast, "near_db": near_db, "met": met,
                                "own": own, "list": kind != "details"})
                print(f"  {label:40} {p50:8.1f} {p95:8.1f} {db * 1000:8.2f} {p95 / (db * 1000):6.1f}x {own:6.1f}x "
                      f"{len(statements):4} {rows:5}  p95 < {limit} ms: {'met' if fast else 'MISSED'}"
                      + ("" if near_db is None else f", <= 3x db: {'met' if near_db else 'MISSED'}"), flush=True)
            engine.dispose()
        finally:
            platform.stop()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="postgresql,sqlite")
    parser.add_argument("--data", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    for backend in [b for b in args.db.split(",") if b]:
        measure(backend, args)
    missed = [r for r in RESULTS if not r["met"]]
    slow = [r for r in RESULTS if not r["fast"]]
    ratios = [r for r in RESULTS if r["near_db"] is not None]
    print(f"\np95 under the time target: {len(RESULTS) - len(slow)} of {len(RESULTS)}" +
          ("; missed: " + ", ".join(f"{r['db']} {r['request']} ({r['p95']:.1f} ms)" for r in slow) if slow else ""))
    print(f"p95 <= 3x the database's own time: {sum(1 for r in ratios if r['near_db'])} of {len(ratios)} list requests")
    lists = [r for r in RESULTS if r["list"]]
    print(f"(not a target) p50 above GET /version's <= 3x the database's own time (own/db): "
          f"{sum(1 for r in lists if r['own'] <= 3)} of {len(lists)} list requests")
    print(f"{len(RESULTS) - len(missed)} of {len(RESULTS)} requests met all their targets")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
