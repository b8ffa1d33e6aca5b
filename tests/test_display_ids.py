"""Per-tenant display ids: distinct under concurrent creations (through the real platform) and
the 0008 upgrade that renumbers the duplicates an earlier race left and starts the counters."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from kqi_services.db import session as dbs

from .platform import tenant_user


@pytest.fixture
def empty_db_url(db_backend, request, tmp_path):
    if db_backend == "postgresql":
        return request.getfixturevalue("postgres_server").create_database(f"ids_{uuid.uuid4().hex[:8]}")
    return f"sqlite:///{tmp_path}/kqi.db"


def test_upgrade_renumbers_duplicates_and_starts_counters(empty_db_url):
    dbs.upgrade(empty_db_url, "0007")
    engine = create_engine(empty_db_url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as c:
        for name in ("a", "b"):
            c.execute(text("INSERT INTO tenants (name, display_name, available_infinite_time_notebook, created_at,"
                           " modified_at) VALUES (:n, :n, false, :t, :t)"), {"n": name, "t": now})
        a, b = [c.execute(text("SELECT id FROM tenants WHERE name = :n"), {"n": n}).scalar_one() for n in ("a", "b")]
        # tenant a: 1, 2, 2 (a race), 3; tenant b: 1
        for tenant, display_id in ((a, 1), (a, 2), (a, 2), (a, 3), (b, 1)):
            c.execute(text("INSERT INTO data (tenant_id, display_id, name, created_at, modified_at)"
                           " VALUES (:t, :d, 'x', :n, :n)"), {"t": tenant, "d": display_id, "n": now})
    dbs.upgrade(empty_db_url)
    with engine.begin() as c:
        rows = c.execute(text("SELECT tenant_id, display_id FROM data ORDER BY id")).fetchall()
        assert [tuple(r) for r in rows] == [(a, 1), (a, 2), (a, 4), (a, 3), (b, 1)]
        counters = dict(((t, k), v) for t, k, v in c.execute(
            text("SELECT tenant_id, kind, last_id FROM display_id_counters")).fetchall())
        assert counters == {(a, "data"): 4, (b, "data"): 1}
        with pytest.raises(Exception, match="(?i)unique"):
            c.execute(text("INSERT INTO data (tenant_id, display_id, name, created_at, modified_at)"
                           " VALUES (:t, 1, 'y', :n, :n)"), {"t": b, "n": now})
    engine.dispose()


def test_upgrade_0011_keeps_the_job_ids_users_saw_and_counts_on_per_kind(empty_db_url):
    """Before 0011 the API showed a job's table id (trainings, inferences and preprocessing runs
    in one sequence); from 0011 it shows the display id. The upgrade makes each job's display id
    its table id, so every existing job keeps the id its users saw, and each (tenant, kind)
    counter continues after its highest: tenant a's next training is 6, its next inference 7."""
    from kqi_services.db.models import Tenant
    from kqi_services.domain.ids import job_kind, next_display_id

    dbs.upgrade(empty_db_url, "0010")
    engine = create_engine(empty_db_url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as c:
        for name in ("a", "b"):
            c.execute(text("INSERT INTO tenants (name, display_name, available_infinite_time_notebook, created_at,"
                           " modified_at) VALUES (:n, :n, false, :t, :t)"), {"n": name, "t": now})
        a, b = [c.execute(text("SELECT id FROM tenants WHERE name = :n"), {"n": n}).scalar_one() for n in ("a", "b")]
        # table ids 1..6 as 0008's counters numbered them per kind: a training 1, an inference 1,
        # a training 2 (tenant b's first), a preprocessing run 1, a training 2, an inference 2
        rows = [(a, "training", 1), (a, "inference", 1), (b, "training", 1), (a, "preprocessing", 1),
                (a, "training", 2), (a, "inference", 2)]
        for job_id, (tenant, kind, display_id) in enumerate(rows, start=1):
            c.execute(text("INSERT INTO jobs (id, tenant_id, kind, display_id, name, favorite, local_dataset, options,"
                           " cpu, memory, gpu, ports, zip, extra, status, queued_at, created_at, modified_at)"
                           " VALUES (:i, :t, :k, :d, 'j', false, false, '{}', 1, 1, 0, '[]', true, '{}', 'Completed',"
                           " :n, :n, :n)"), {"i": job_id, "t": tenant, "k": kind, "d": display_id, "n": now})
            c.execute(text("INSERT INTO display_id_counters (tenant_id, kind, last_id) VALUES (:t, :k, :d)"
                           " ON CONFLICT (tenant_id, kind) DO UPDATE SET last_id = :d"),
                      {"t": tenant, "k": f"job:{kind}", "d": display_id})
    dbs.upgrade(empty_db_url)
    with engine.begin() as c:
        assert [tuple(r) for r in c.execute(text("SELECT id, display_id FROM jobs ORDER BY id"))] == \
            [(i, i) for i in range(1, 7)]
        counters = {(t, k): v for t, k, v in c.execute(text("SELECT tenant_id, kind, last_id FROM display_id_counters"))}
        assert counters == {(a, "job:training"): 5, (a, "job:inference"): 6, (a, "job:preprocessing"): 4,
                            (b, "job:training"): 3}
    engine.dispose()
    sessions = dbs.make_session_factory(dbs.make_engine(empty_db_url))
    with sessions() as db:
        assert db.get(Tenant, a) is not None
        taken = [next_display_id(db, a, job_kind(k)) for k in ("training", "inference", "preprocessing")]
        taken.append(next_display_id(db, b, job_kind("inference")))  # a kind a tenant never ran: from 1
        db.commit()
    assert taken == [6, 7, 5, 1]


def test_concurrent_writers_of_one_database_get_distinct_ids(empty_db_url):
    """The API's handlers for data run one at a time on the service's event loop, but other writers
    do not (the job engine's preprocessing outputs in worker threads, a second service process):
    50 threads, each with its own session, creating data in one tenant through the domain code."""
    from kqi_services.db.models import Tenant
    from kqi_services.domain.data import DataManager

    dbs.upgrade(empty_db_url)
    engine = dbs.make_engine(empty_db_url)
    sessions = dbs.make_session_factory(engine)
    with sessions() as db:
        tenant = Tenant(name="t", display_name="T")
        db.add(tenant)
        db.commit()

    def create(i):
        with sessions() as db:
            return DataManager(db, db.get(Tenant, tenant.id)).create({"name": f"d{i}"}, "someone").display_id

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(create, range(50)))
    assert sorted(ids) == list(range(1, 51))

    # each job kind numbers its own jobs
    from kqi_services.domain.ids import job_kind, next_display_id
    with sessions() as db:
        taken = [next_display_id(db, tenant.id, job_kind(k)) for k in ("training", "training", "inference")]
        db.commit()
    assert taken == [1, 2, 1]
    engine.dispose()


def _concurrently(user, path: str, bodies: list[dict]) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda body: user.api("POST", path, json=body), bodies))


def test_concurrent_creations_get_distinct_ids(platform):
    """50 at once through the real API. (The service runs these handlers one at a time on its
    event loop, so this holds with max()+1 too; the writers test above is the one that fails
    without the counter. This one checks the API's ids end to end.)"""
    user = tenant_user(platform)
    answers = _concurrently(user, "/data", [{"name": f"d{i}"} for i in range(50)])
    assert [r.status_code for r in answers] == [201] * 50, [r.text for r in answers if r.status_code != 201][:3]
    ids = sorted(r.json()["displayId"] for r in answers)
    assert ids == list(range(1, 51))  # a new tenant: 50 distinct ids, none skipped

    first = answers[0].json()["id"]
    answers = _concurrently(user, "/datasets", [{"name": f"s{i}", "entries": {"training": [{"id": first}]}}
                                                for i in range(20)])
    assert [r.status_code for r in answers] == [201] * 20, [r.text for r in answers if r.status_code != 201][:3]
    assert sorted(r.json()["displayId"] for r in answers) == list(range(1, 21))

    # another tenant's ids are its own, and the next creation follows on
    other = tenant_user(platform)
    assert other.api("POST", "/data", json={"name": "x"}).json()["displayId"] == 1
    assert user.api("POST", "/data", json={"name": "next"}).json()["displayId"] == 51
