"""The notebook list and the administrator's lists filter, order, page and count in the database:
the same rows, order and X-Total-Count as an in-memory filter over every row; the job lists split
the SDK's `tag=a,b` (`kqi training list --tag a --tag b`); a list without perPage answers
KAMONOHASHI's page of 1000; an inference list page reads the value file only of running
inferences (an ended one keeps its value in its row).

Rows are seeded straight into the platform's database (a tenant's notebooks, nodes, git
servers and registries with names of several cases) and removed afterwards (nodes disabled or
private to the throwaway tenant, so that no job is placed on them meanwhile).
"""
from __future__ import annotations

import random
import re
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy import text as sql_text

from kqi_services.db.models import GitServer, Node, Registry, Tenant
from kqi_services.db.models_data import DataSet
from kqi_services.db.models_jobs import Job, JobTag
from kqi_services.db.models_notebooks import Notebook
from kqi_services.db.session import make_engine, make_session_factory

from .platform import tenant_user
from .test_list_paging import PAGING, ref_contains, ref_date, ref_number, ref_page

BASE_TIME = datetime(2026, 11, 20, 0, 0, 0)
NAMES = ["Cat", "cat_photo", "DOG", "dog-100%", "bird", "A_b", "x%y", "zebra"]
STATUSES = ["Stopped", "Killed", "Error", "Running", "Pending"]


@pytest.fixture(scope="module")
def factory(platform):
    engine = make_engine(platform.kqi_db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _check(token_api, path, rows, filters, keep, order_key, id_key="id") -> int:
    """Each filter × each paging of PAGING against `keep` over `rows` sorted by `order_key`."""
    checked = 0
    for flt in filters:
        expected_all = sorted((r for r in rows if keep(r, flt)), key=order_key)
        for paging in PAGING:
            params = {**flt, **paging}
            r = token_api("GET", path, params=params)
            assert r.status_code == 200, (path, params, r.text[:300])
            expected = ref_page(expected_all, params)
            assert [g[id_key] for g in r.json()] == [e[id_key] for e in expected], (path, params)
            if paging.get("withTotal"):
                assert r.headers.get("X-Total-Count") == str(len(expected_all)), (path, params)
            else:
                assert "X-Total-Count" not in r.headers
            checked += 1
    return checked


# -------------------------------------------------------------------------------- notebooks
@pytest.fixture(scope="module")
def notebooks(platform, factory):
    user = tenant_user(platform)
    rng = random.Random(7)
    owners = [user.name, "nobody-" + uuid.uuid4().hex[:6]]
    with factory() as db:
        for i in range(150):
            db.add(Notebook(tenant_id=user.tenant["id"], display_id=1000 + i, name=f"{rng.choice(NAMES)}-{i}".lower(),
                            memo=rng.choice([None, "", "Note one", "50% done", "under_score"]),
                            server_name=f"kqi-x{i}", request={}, status=rng.choice(STATUSES),
                            created_by=rng.choice(owners), modified_by="x",
                            created_at=BASE_TIME + timedelta(seconds=rng.randrange(7 * 24 * 3600))))
        db.commit()
        rows = [{"id": nb.id, "name": nb.name, "memo": nb.memo, "createdBy": nb.created_by,
                 "createdAt": nb.created_at, "status": nb.status}
                for nb in db.scalars(select(Notebook).where(Notebook.tenant_id == user.tenant["id"]))]
    return user, rows


def test_notebook_list_matches_the_in_memory_reference(notebooks, factory):
    user, rows = notebooks
    # the owners have no servers: the list's refresh finds the Running/Pending ones stopped before
    # it filters (as the former list, which refreshed every row, then filtered)
    first = user.api("GET", "/notebook", params={"perPage": 10})
    assert first.status_code == 200, first.text
    for r in rows:
        if r["status"] in ("Running", "Pending"):
            r["status"] = "Stopped"
    with factory() as db:
        assert sorted(nb.status for nb in db.scalars(select(Notebook).where(
            Notebook.tenant_id == user.tenant["id"]))) == sorted(r["status"] for r in rows)
    ids = sorted(r["id"] for r in rows)
    mid = ids[len(ids) // 2]
    filters = [{}, {"id": str(mid)}, {"id": f">{mid}"}, {"id": f"<={mid}"}, {"id": str(2**31 + 5)},
               {"name": "cat"}, {"name": "%"}, {"name": "_"}, {"memo": "NOTE"}, {"createdBy": "NOBODY"},
               {"status": "stopped"}, {"status": "Killed"}, {"status": "e"}, {"createdAt": "2026-11-22"},
               {"createdAt": ">2026-11-24T10"}, {"name": "a", "status": "o", "id": f">{ids[5]}"}]

    def keep(r, flt):
        for key, value in flt.items():
            if key == "id" and not ref_number(value, r["id"]):
                return False
            if key in ("name", "memo", "createdBy", "status") and not ref_contains(value, r[key]):
                return False
            if key == "createdAt" and not ref_date(value, r["createdAt"]):
                return False
        return True

    assert _check(user.api, "/notebook", rows, filters, keep, lambda r: -r["id"]) > 100
    bad = user.api("GET", "/notebook", params={"id": "twelve"})
    assert bad.status_code == 400 and "id" in bad.text


# ------------------------------------------------------------------------ administrator lists
@pytest.fixture(scope="module")
def catalog(platform, factory):
    """Nodes, git servers and registries with mixed-case names; removed at the end."""
    tag = uuid.uuid4().hex[:6]
    user = tenant_user(platform)
    rng = random.Random(11)
    made = {"nodes": [], "git": [], "registries": []}
    with factory() as db:
        tenant = db.get(Tenant, user.tenant["id"])
        for i in range(45):
            n = Node(name=f"{rng.choice(['Gpu', 'gpu', 'CPU', 'cpu-x'])}-{tag}-{i}", access_level=rng.choice([0, 1]),
                     cpu=1, memory=1, gpu=0, created_by="test")
            n.tenants = [tenant] if n.access_level == 1 else []
            db.add(n)
            made["nodes"].append(n)
        for i in range(25):
            made["git"].append(GitServer(name=f"{rng.choice(['Hub', 'hub', 'LAB'])}-{tag}-{i}", service_type=5,
                                         repository_url="http://example.invalid", created_by="test"))
            made["registries"].append(Registry(name=f"{rng.choice(['Reg', 'reg', 'HARBOR'])}-{tag}-{i}",
                                               host="registry.invalid", service_type=1, created_by="test"))
        db.add_all(made["git"] + made["registries"])
        db.commit()
        ids = {k: [r.id for r in v] for k, v in made.items()}
    yield tag, user
    with factory() as db:
        db.execute(delete(Node).where(Node.id.in_(ids["nodes"])))
        db.execute(delete(GitServer).where(GitServer.id.in_(ids["git"])))
        db.execute(delete(Registry).where(Registry.id.in_(ids["registries"])))
        db.commit()


@pytest.mark.parametrize("path, order", [("/admin/nodes", lambda r: (r["name"], r["id"])),
                                         ("/admin/git/endpoints", lambda r: r["id"]),
                                         ("/admin/registry/endpoints", lambda r: r["id"]),
                                         ("/admin/storage/endpoints", lambda r: r["id"])])
def test_catalog_lists_match_the_in_memory_reference(platform, catalog, path, order):
    tag, user = catalog
    admin = platform.admin_token()

    def api(method, p, **kw):
        return platform.api(method, p, admin, **kw)

    everything = api("GET", path)
    assert everything.status_code == 200
    rows = everything.json()  # (no perPage: every row, as KAMONOHASHI's administrator lists)
    assert [r["id"] for r in rows] == [r["id"] for r in sorted(rows, key=order)]
    if path == "/admin/nodes":
        mine = [r for r in rows if tag in r["name"]]
        assert len(mine) == 45
        assert all(r["assignedTenantIds"] == ([user.tenant["id"]] if r["accessLevel"] == 1 else []) for r in mine)
    # the name filter is KAMONOHASHI's string.Contains: case counts, % and _ are plain characters
    filters = [{}, {"name": tag}, {"name": "Gpu"}, {"name": "gpu"}, {"name": "hub"}, {"name": "Reg"},
               {"name": f"{tag}-1"}, {"name": "%"}, {"name": "_"}, {"name": "-"}]
    assert _check(api, path, rows, filters, lambda r, f: f.get("name", "") in r["name"], order) == 70


@pytest.mark.parametrize("path, order, id_key", [
    ("/admin/tenants", lambda r: r["id"], "id"),
    ("/admin/quotas", None, "tenantId"),
])
def test_tenant_and_quota_lists_page_like_the_whole_list(platform, catalog, path, order, id_key):
    admin = platform.admin_token()

    def api(method, p, **kw):
        return platform.api(method, p, admin, **kw)

    rows = api("GET", path).json()
    if order is None:  # quotas: by display name, then id
        names = {t["id"]: t["displayName"] for t in api("GET", "/admin/tenants").json()}
        assert [r["tenantId"] for r in rows] == sorted(names, key=lambda i: (names[i], i))
        position = {r["tenantId"]: k for k, r in enumerate(rows)}
        order = lambda r: position[r["tenantId"]]  # noqa: E731
    assert _check(api, path, rows, [{}], lambda r, f: True, order, id_key) == len(PAGING)


def test_shell_session_list_pages_in_the_database(platform, factory):
    from kqi_services.db.models_shell import ShellSession

    user = tenant_user(platform)
    name, password = platform.create_user(admin_of=[user.tenant["name"]])
    admin_user = platform.login(name, password, user.tenant["id"])
    with factory() as db:
        for i in range(30):
            db.add(ShellSession(tenant_id=user.tenant["id"], job_id=1 + i % 4, job_kind=["training", "inference"][i % 2],
                                user_name=user.name, opened_at=BASE_TIME + timedelta(minutes=i)))
        db.commit()
    rows = platform.api("GET", "/tenant/shell-sessions", admin_user).json()
    assert len(rows) == 30 and [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)

    def api(method, p, **kw):
        return platform.api(method, p, admin_user, **kw)

    def keep(r, f):
        return (("jobId" not in f or r["jobId"] == f["jobId"]) and ("kind" not in f or r["jobKind"] == f["kind"]))

    assert _check(api, "/tenant/shell-sessions", rows, [{}, {"jobId": 2}, {"kind": "inference"},
                                                        {"jobId": 3, "kind": "inference"}],
                  keep, lambda r: -r["id"]) == 4 * len(PAGING)


# ------------------------------------------------------------------- tags, the default page
def _add_trainings(factory, tenant_id, specs) -> list[int]:
    with factory() as db:
        ds = DataSet(tenant_id=tenant_id, display_id=500, name="cli-set", created_by="x")
        db.add(ds)
        db.flush()
        jobs = []
        for k, (name, tags) in enumerate(specs):
            j = Job(tenant_id=tenant_id, kind="training", display_id=900 + k, name=name, status="Completed",
                    dataset_id=ds.id, created_by="x", cpu=1, memory=1)
            j.tags = [JobTag(name=t) for t in tags]
            db.add(j)
            jobs.append(j)
        db.commit()
        return [j.display_id for j in jobs]  # (what the API shows as a job's id)


def test_cli_training_list_with_two_tags_shows_the_trainings_with_both(platform, factory, cli_home):
    user = tenant_user(platform, home=cli_home)
    _add_trainings(factory, user.tenant["id"], [("both-one", ["red", "blue"]), ("red-only", ["red"]),
                                                ("blue-only", ["blue"]), ("both-two", ["blue", "x", "red"]),
                                                ("none", [])])
    out = user.cli("training", "list", "--tag", "red", "--tag", "blue").stdout
    names = set(re.findall(r"\b(both-one|both-two|red-only|blue-only|none)\b", out))
    assert names == {"both-one", "both-two"}, out
    out = user.cli("training", "list", "--tag", "red").stdout
    assert set(re.findall(r"\b(both-one|both-two|red-only|blue-only|none)\b", out)) == {
        "both-one", "both-two", "red-only"}, out


def test_a_list_without_per_page_answers_pages_of_1000(platform, factory):
    """KAMONOHASHI's lists answer `page` of 1000 rows when perPage is left out (the CLI asks
    pages that way for --count above 1000), never every row."""
    user = tenant_user(platform)
    ids = _add_trainings(factory, user.tenant["id"], [(f"t-{i}", []) for i in range(1203)])
    newest_first = sorted(ids, reverse=True)
    first = user.api("GET", "/training", params={"withTotal": "true"})
    assert first.status_code == 200 and first.headers["X-Total-Count"] == "1203"
    assert [j["id"] for j in first.json()] == newest_first[:1000]
    second = user.api("GET", "/training", params={"page": 2})
    assert [j["id"] for j in second.json()] == newest_first[1000:]


# ----------------------------------------------------------------------- inference values
def test_an_inference_page_reads_the_value_file_only_of_running_inferences(tmp_path):
    from kqi_services.api.inference import OUTPUT_VALUE_KEY, page_output_values
    from kqi_services.jobs.engine import OUTPUT_FOLDER
    from kqi_services.storage.factory import tenant_key
    from kqi_services.storage.local import LocalObjectStore, UrlSigner

    store = LocalObjectStore(str(tmp_path), UrlSigner(b"k" * 32), "/files")
    tenant = Tenant(id=1, name="t1", display_name="t1")
    ended = Job(id=1, tenant_id=1, kind="inference", status="Completed", extra={})
    running = Job(id=2, tenant_id=1, kind="inference", status="Running", extra={})
    kept = Job(id=3, tenant_id=1, kind="inference", status="Failed", extra={OUTPUT_VALUE_KEY: "0.5"})

    def write(job, text):
        key = tenant_key(tenant, f"{OUTPUT_FOLDER['inference']}/{job.id}/value.txt")
        store.write(key, iter([text.encode()]))
        return key

    write(ended, "0.91\nmore")
    write(running, "1")
    kept_file = write(kept, "not read")
    assert page_output_values(store, tenant, [ended, running, kept]) == {1: "0.91", 2: "1", 3: "0.5"}
    assert ended.extra == {OUTPUT_VALUE_KEY: "0.91"} and running.extra == {}
    # the ended one's value is in its row now: its file is not read again; the running one's is
    store.delete(write(ended, "x"))
    store.delete(kept_file)
    write(running, "2")
    assert page_output_values(store, tenant, [ended, running, kept]) == {1: "0.91", 2: "2", 3: "0.5"}


def test_an_inference_list_keeps_the_values_it_reads(platform, factory):
    """An inference that ended before values were kept (no value in its row) has its value read once
    by a list page and kept in its row, so the next pages read no file for it. (The page committed
    only when something was still unflushed after it had shown the jobs' tags and parents, whose
    queries flush: nothing was, and every page read every file again.)"""
    from kqi_services.api.inference import OUTPUT_VALUE_KEY

    user = tenant_user(platform)
    with factory() as db:
        jobs = [Job(tenant_id=user.tenant["id"], kind="inference", display_id=700 + k, name=f"old-{k}",
                    status="Completed", created_by="x", cpu=1, memory=1, extra={}) for k in range(3)]
        db.add_all(jobs)
        db.commit()
        ids = [j.id for j in jobs]
    r = user.api("GET", "/inferences", params={"perPage": 50})
    assert r.status_code == 200 and {j["name"]: j["outputValue"] for j in r.json()} == {
        "old-0": None, "old-1": None, "old-2": None}, r.text
    with factory() as db:
        kept = {j.id: j.extra for j in db.scalars(select(Job).where(Job.id.in_(ids)))}
    assert all(OUTPUT_VALUE_KEY in extra for extra in kept.values()), kept


# ------------------------------------------------------- SQLite trigram search (migration 0012)
from .test_list_paging import empty_db_url  # noqa: E402,F401  (the fixture)


def test_0012_trigram_index_follows_the_rows_and_narrows_selective_searches(empty_db_url):
    from sqlalchemy import inspect

    from kqi_services.db import session as dbs
    from kqi_services.db.models_data import Data
    from kqi_services.domain import data as data_domain
    from kqi_services.domain.data import contains, trigram_candidates

    dbs.upgrade(empty_db_url, "head")
    engine = make_engine(empty_db_url)
    sqlite = engine.dialect.name == "sqlite"
    assert ("data_fts" in inspect(engine).get_table_names()) == sqlite
    with make_session_factory(engine)() as db:
        tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}", display_name="t")
        db.add(tenant)
        db.flush()
        rows = [Data(tenant_id=tenant.id, display_id=i + 1, name=name, memo=memo, created_by="u")
                for i, (name, memo) in enumerate([("Cat photo", "x"), ("a CATALOG", None), ("dog", "café au lait"),
                                                  ("ÉCOLE", "Écrit"), ("100% cat_x", "y")])]
        db.add_all(rows)
        db.commit()

        def found(column, text):
            return sorted(d.name for d in db.scalars(select(Data).where(Data.tenant_id == tenant.id,
                                                                        contains(db, column, text))))

        def reference(attr, text):
            # SQLite's LIKE: ASCII case ignored, other characters as written
            fold = lambda s: "".join(c.lower() if c.isascii() else c for c in s)  # noqa: E731
            return sorted(d.name for d in rows if getattr(d, attr) is not None
                          and fold(text) in fold(getattr(d, attr)))

        cases = [("name", "cat"), ("name", "CAT"), ("name", "talog"), ("name", "% c"), ("name", "t_x"),
                 ("name", "ca"), ("name", "école"), ("name", "ÉCOLE"), ("memo", "CAFÉ"), ("memo", "café"),
                 ("name", 'a"b'), ("name", "zzz")]
        if not sqlite:  # (PostgreSQL's ILIKE folds other letters as its locale says: ASCII cases only)
            cases = [(a, t) for a, t in cases if t.isascii()]
        if sqlite:
            assert trigram_candidates(db, Data.name, "cat") is not None  # the index serves it
            assert trigram_candidates(db, Data.name, "ca") is None  # fewer than 3 characters: the LIKE
            assert trigram_candidates(db, Job.status, "Failed") is None  # a column it does not index
        for attr, text in cases:
            assert found(getattr(Data, attr), text) == reference(attr, text), (attr, text)
        # the triggers: an edit of a searched column, a delete, and an edit of another column
        rows[0].name = "Dog house"
        db.delete(rows[1])
        rows[2].parent_data_id = None
        rows[2].modified_by = "someone"
        db.commit()
        rows = [r for r in rows if r is not rows[1]]
        for attr, text in cases + [("name", "house"), ("name", "photo")]:
            assert found(getattr(Data, attr), text) == reference(attr, text), (attr, text)
        if sqlite:  # FTS5 checks the index against the rows (an error when they differ)
            db.execute(sql_text("insert into data_fts(data_fts, rank) values ('integrity-check', 1)"))
    if sqlite:
        dbs.command.downgrade(dbs.alembic_config(empty_db_url), "0011")
        assert "data_fts" not in inspect(engine).get_table_names()
        assert not [n for n in inspect(engine).get_table_names() if n.endswith("_fts")]
        data_domain._trigram_tables.clear()
    engine.dispose()
