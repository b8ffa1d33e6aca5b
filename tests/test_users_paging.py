"""GET /admin/users asks the hub for one page (sorted, paged and counted in the hub's database)
and GET /tenant/users pages the tenant's member names; both read the kqi-side settings only for
the users of the page.

The answers are compared with an in-memory reference built as KQI built the list before: every
hub user (all the hub's pages), sorted by name in Python, paged by perPage/page (a request
without perPage: KAMONOHASHI's page of 1000), each row as GET /admin/users/{name} answers it.
More than 200 users exist while the module runs, so a page of more than the hub's
api_page_max_limit (200) takes several hub requests.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from kqi_services.db.models import UserSetting
from kqi_services.db.session import make_engine, make_session_factory

#: users this module makes (with the admin and the session's other users, more than the hub's 200 a request)
USERS = 205
TAG = uuid.uuid4().hex[:6]
# names whose code-point order differs from a plain alphabetical one: '-' < '.' < digits < '_' < letters
SEPARATORS = ["-", ".", "_", ""]


@pytest.fixture(scope="module")
def factory(platform):
    engine = make_engine(platform.kqi_db_url)
    yield make_session_factory(engine)
    engine.dispose()


def with_settings(factory, names) -> set[str]:
    with factory() as db:
        return set(db.scalars(select(UserSetting.name).where(UserSetting.name.in_(sorted(names)))).all())


def _delete_users(platform, admin, names):
    with ThreadPoolExecutor(8) as pool:  # side by side (test_concurrent_deletes_all_succeed)
        answers = list(pool.map(lambda name: platform.api("DELETE", f"/admin/users/{name}", admin), names))
    bad = [(name, r.status_code, r.text[:200]) for name, r in zip(names, answers) if r.status_code not in (204, 404)]
    assert not bad, bad


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


@pytest.fixture(scope="module")
def made(platform, admin):
    """USERS hub users made through the hub (so KQI has no settings for them yet)."""
    names = [f"p{TAG}{SEPARATORS[i % len(SEPARATORS)]}{(i * 37) % USERS:03d}" for i in range(USERS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: platform.create_user(n), names))
    yield names
    _delete_users(platform, admin, names)


def hub_names(platform) -> list[str]:
    """Every hub user's name, through all of the hub's pages."""
    names, offset = [], 0
    while True:
        r = requests.get(f"{platform.hub_api_url}/users", params={"offset": offset, "limit": 200}, timeout=30,
                         headers={"Authorization": f"token {platform.admin_hub_token()}",
                                  "Accept": "application/jupyterhub-pagination+json"})
        assert r.status_code == 200, r.text
        names += [u["name"] for u in r.json()["items"]]
        if not r.json()["_pagination"]["next"]:
            return names
        offset = len(names)


def ref_page(rows: list, params: dict) -> list:
    per = min(int(params.get("perPage", 1000)), 1000)
    page = int(params.get("page", 1))
    return rows[(page - 1) * per:page * per]


def same_rows(got: list[dict], want: list[dict]) -> bool:
    """Rows equal but for lastActivity (the hub updates it as the tokens of the test are used)."""
    return [{**g, "lastActivity": None} for g in got] == [{**w, "lastActivity": None} for w in want]


def test_a_page_makes_settings_only_for_its_users(platform, admin, made, factory):
    # runs first: nothing has listed the made users yet, so none of them has settings
    assert with_settings(factory, made) == set()
    everyone = sorted(hub_names(platform))
    number = min(everyone.index(n) for n in made) // 20 + 2  # a page of made users only
    page = ref_page(everyone, {"perPage": 20, "page": number})
    assert set(page) <= set(made) and len(page) == 20

    r = platform.api("GET", "/admin/users", admin, params={"perPage": 20, "page": number})
    assert r.status_code == 200, r.text
    assert [u["name"] for u in r.json()] == page
    assert with_settings(factory, made) == set(page) & set(made)


def test_pages_equal_the_in_memory_reference(platform, admin, made):
    everyone = sorted(hub_names(platform))  # the order KQI listed users in when it sorted them itself
    assert len(everyone) > 200 and set(made) <= set(everyone)

    r = platform.api("GET", "/admin/users", admin)  # no perPage: KAMONOHASHI's page of 1000
    assert r.status_code == 200, r.text
    assert "X-Total-Count" not in r.headers
    full = r.json()
    assert [u["name"] for u in full] == everyone
    assert len({u["id"] for u in full}) == len(full)

    # each row as the single-user route answers it (the rows of the former in-memory list)
    def one(name):
        got = platform.api("GET", f"/admin/users/{name}", admin)
        assert got.status_code == 200, got.text
        return got.json()

    with ThreadPoolExecutor(8) as pool:
        reference = list(pool.map(one, everyone))
    assert same_rows(full, reference)

    total = len(everyone)
    cases = [
        {"perPage": 20, "page": 1, "withTotal": "true"},
        {"perPage": 20, "page": 2, "withTotal": "true"},
        {"perPage": 20, "page": 3, "withTotal": "true"},
        {"perPage": 20, "page": 3},
        {"perPage": 20, "page": total // 20 + 1, "withTotal": "true"},  # the last, partial page
        {"perPage": 20, "page": total // 20 + 2, "withTotal": "true"},  # past the end
        {"perPage": 7, "page": 29},
        {"perPage": 250, "page": 1, "withTotal": "true"},  # more than the hub gives a request
        {"perPage": 150, "page": 2},  # across the hub's pages of 200
        {"perPage": 2000, "withTotal": "true"},  # at most 1000
        {"page": 2, "withTotal": "true"},  # no perPage: the second page of 1000
        {"perPage": 1000, "page": 2**53, "withTotal": "true"},  # an offset past any table (and int64)
    ]
    for params in cases:
        r = platform.api("GET", "/admin/users", admin, params=params)
        assert r.status_code == 200, (params, r.text[:300])
        want = ref_page(reference, params)
        assert [u["name"] for u in r.json()] == [w["name"] for w in want], params
        assert same_rows(r.json(), want), params
        if params.get("withTotal"):
            assert r.headers.get("X-Total-Count") == str(total), params
        else:
            assert "X-Total-Count" not in r.headers, params
    assert len(ref_page(reference, {"perPage": 250})) > 200  # the case above really needed two hub requests

    # pages 1, 2, 3 of 20 follow one another
    pages = [platform.api("GET", "/admin/users", admin, params={"perPage": 20, "page": p}).json() for p in (1, 2, 3)]
    assert [u["name"] for page in pages for u in page] == everyone[:60]


def test_bad_paging_is_refused(platform, admin):
    for params in ({"perPage": 0}, {"page": 0}, {"perPage": "x"}, {"withTotal": "maybe"}):
        r = platform.api("GET", "/admin/users", admin, params=params)
        assert r.status_code == 400, (params, r.text[:300])


def test_tenant_members_are_paged_and_settings_read_for_the_page(platform, admin, factory):
    team = platform.create_tenant()
    boss, boss_pw = platform.create_user(f"q{TAG}-boss", admin_of=[team["name"]])
    members = [f"q{TAG}{SEPARATORS[i % len(SEPARATORS)]}{i:02d}" for i in range(25)]
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: platform.create_user(n, tenants=[team["name"]]), members))
        token = platform.login(boss, boss_pw, team["id"])
        everyone = sorted(members + [boss])
        assert with_settings(factory, members) == set()

        r = platform.api("GET", "/tenant/users", token, params={"perPage": 10, "page": 2, "withTotal": "true"})
        assert r.status_code == 200, r.text
        assert [u["name"] for u in r.json()] == everyone[10:20]
        assert r.headers.get("X-Total-Count") == str(len(everyone))
        assert with_settings(factory, members) == set(everyone[10:20]) - {boss}

        pages = []
        for page in (1, 2, 3):
            r = platform.api("GET", "/tenant/users", token, params={"perPage": 10, "page": page})
            assert r.status_code == 200 and "X-Total-Count" not in r.headers, r.text
            pages += r.json()
        r = platform.api("GET", "/tenant/users", token)  # no perPage: every member
        assert r.status_code == 200, r.text
        assert r.json() == pages
        assert [(u["name"], u["isTenantAdmin"]) for u in pages] == [(n, n == boss) for n in everyone]
        assert len({u["id"] for u in pages}) == len(pages)
        assert platform.api("GET", "/tenant/users", token, params={"perPage": 10, "page": 4}).json() == []
    finally:
        _delete_users(platform, admin, members + [boss])


def test_concurrent_deletes_all_succeed(platform, admin, factory):
    """Deleting users side by side: each delete removes the user from the hub, then its settings,
    with no hub call while its database write is open. (It held SQLite's write lock across the
    hub call: with 8 deletes at once some waited out the busy timeout, blocking the event loop,
    and answered 500 "database is locked".)"""
    names = [f"d{TAG}-{i:02d}" for i in range(48)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: platform.create_user(n), names))
    r = platform.api("GET", "/admin/users", admin)  # (makes their settings rows: the deletes remove them)
    assert r.status_code == 200 and set(names) <= {u["name"] for u in r.json()}, r.text
    assert with_settings(factory, names) == set(names)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: platform.api("DELETE", f"/admin/users/{n}", admin), names))
    assert [r.status_code for r in answers] == [204] * len(names), [r.text[:300] for r in answers if r.status_code != 204]
    assert not set(names) & set(hub_names(platform))
    assert with_settings(factory, names) == set()
