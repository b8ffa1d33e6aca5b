"""Sign-in with a real OpenLDAP directory (issue 16): KQI_AUTHENTICATOR=ldap.

A slapd of the test's own (tests/ldapserver.py) holds the users and groups, made with ldapadd and
changed with ldapmodify. The platform under test is a dedicated KQI Hub whose hub signs users in
against it (jupyterhub-ldapauthenticator) and maps the directory groups to two tenants and to a
tenant's administrators. Users sign in through the hub's form and through `kqi account login`.
"""
from __future__ import annotations

import json
import os
import uuid

import pytest
import requests

from .ldapserver import GROUPS, PEOPLE, LdapServer, available
from .platform import ModelRepo, TenantUser, create_data, new_platform, remove_tree, wait_job

pytestmark = pytest.mark.skipif(not available(), reason="slapd and ldap-utils are not installed (setup.sh --test)")

PASSWORDS = {"alice": "alice-" + uuid.uuid4().hex[:10], "bob": "bob-" + uuid.uuid4().hex[:10],
             "carol": "carol-" + uuid.uuid4().hex[:10]}


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    server = LdapServer(str(tmp_path_factory.mktemp("slapd"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ldap_platform(directory, tmp_path_factory, request):
    base = str(tmp_path_factory.mktemp("platform-ldap"))
    db = request.config.getoption("--db").split(",")[0].strip()
    plat = new_platform(base)
    # the platform's administrator is a directory user too
    directory.add_user("admin", plat.admin_password, "The Administrator")
    directory.add_user("alice", PASSWORDS["alice"], "Alice Liddell")
    directory.add_user("bob", PASSWORDS["bob"], "Bob Builder")
    directory.add_user("carol", PASSWORDS["carol"], "Carol Danvers")
    # a reader for the sync (only the test's root can read the whole tree otherwise)
    directory.add(f"dn: cn=reader,{PEOPLE}\nobjectClass: inetOrgPerson\ncn: reader\nsn: reader\n"
                  f"userPassword: reader-secret\n")
    # groupOfNames needs a member: "admin" stays in every group
    directory.add_user("mallory", "mallory-secret-1", "Mallory Blocked")
    directory.add_group("vision", ["admin", "alice", "bob", "mallory"])
    directory.add_group("speech", ["admin", "alice"])
    directory.add_group("vision-leads", ["admin", "carol"])
    config = os.path.join(base, "hub_ldap.py")
    with open(config, "w") as f:
        f.write(f"""
c.KqiLDAPAuthenticator.server_address = "127.0.0.1"
c.KqiLDAPAuthenticator.server_port = {directory.port}
c.KqiLDAPAuthenticator.tls_strategy = "insecure"
c.KqiLDAPAuthenticator.bind_dn_template = ["uid={{username}},{PEOPLE}"]
c.KqiLDAPAuthenticator.group_search_base = "{GROUPS}"
c.KqiLDAPAuthenticator.sync_bind_dn = "cn=reader,{PEOPLE}"
c.KqiLDAPAuthenticator.sync_bind_password = "reader-secret"
c.KqiLDAPAuthenticator.sync_user_search_base = "{PEOPLE}"
c.KqiLDAPAuthenticator.group_tenants = {{"vision": "vision", "speech": "speech"}}
c.KqiLDAPAuthenticator.tenant_admin_groups = {{"vision-leads": "vision"}}
c.Authenticator.blocked_users = {{"mallory"}}
""")
    plat.env.update(KQI_AUTHENTICATOR="ldap", KQI_HUB_CONFIG=config)
    if db == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        plat.env.update(KQI_DB_URL=pg.create_database(f"kqi_ldap_{suffix}"),
                        KQI_HUB_DB_URL=pg.create_database(f"hub_ldap_{suffix}"))
    plat.start()
    for name in ("vision", "speech"):
        plat.create_tenant(name)
    yield plat
    plat.stop()
    remove_tree(base)


def hub_form_login(plat, name: str, password: str) -> requests.Response:
    session = requests.Session()
    session.get(f"{plat.url}/hub/login", timeout=30)
    return session.post(f"{plat.url}/hub/login", data={"username": name, "password": password,
                                                       "_xsrf": session.cookies.get("_xsrf", "")},
                        allow_redirects=False, timeout=30)


def hub_groups(plat, name: str) -> set[str]:
    r = plat.hub("GET", f"/users/{name}")
    assert r.status_code == 200, r.text
    return set(r.json()["groups"])


def tenant_admins(plat, tenant: str) -> list[str]:
    return plat.hub("GET", f"/kqi/tenants/{tenant}").json()["admins"]


def test_form_sign_in_maps_groups_and_refuses_a_wrong_password(ldap_platform):
    plat = ldap_platform
    page = requests.get(f"{plat.url}/hub/login", timeout=30).text
    assert "signup" not in page  # no sign-up link: the directory makes the accounts
    r = hub_form_login(plat, "alice", PASSWORDS["alice"])
    assert r.status_code == 302, r.text
    assert hub_groups(plat, "alice") >= {"vision", "speech"}
    r = hub_form_login(plat, "alice", "not-" + PASSWORDS["alice"])
    assert r.status_code == 403
    r = hub_form_login(plat, "nobody", "whatever-password")
    assert r.status_code == 403
    # carol leads vision: its administrator, and so a member
    assert hub_form_login(plat, "carol", PASSWORDS["carol"]).status_code == 302
    assert "vision" in hub_groups(plat, "carol") and "speech" not in hub_groups(plat, "carol")
    assert "carol" in tenant_admins(plat, "vision")
    assert "alice" not in tenant_admins(plat, "vision")


def test_a_blocked_user_is_neither_signed_in_nor_made(ldap_platform):
    plat = ldap_platform
    assert hub_form_login(plat, "mallory", "mallory-secret-1").status_code == 403
    r = requests.post(f"{plat.api_url}/account/login", json={"userName": "mallory", "password": "mallory-secret-1"},
                      timeout=30)
    assert r.status_code == 401
    assert plat.hub("GET", "/users/mallory").status_code == 404


def test_cli_login_with_directory_password(ldap_platform, cli_home):
    plat = ldap_platform
    # bob has never signed in: the login makes his hub user and his tenants from the directory
    r = plat.cli(cli_home, "account", "login", "-s", plat.service_url, "-u", "bob", "-p", "wrong-password",
                 check=False)
    assert r.returncode != 0
    out = plat.cli(cli_home, "account", "login", "-s", plat.service_url, "-u", "bob", "-p", PASSWORDS["bob"]).stdout
    assert "user name: bob" in out
    assert "tenant: VISION" in out
    out = plat.cli(cli_home, "account", "get").stdout
    assert "VISION" in out and "SPEECH" not in out
    config = json.load(open(os.path.join(cli_home, ".kqi", "config.json")))
    r = plat.api("GET", "/account", config["token"])
    assert r.status_code == 200 and r.json()["selectedTenant"]["name"] == "vision"
    r = requests.post(f"{plat.api_url}/account/login", json={"userName": "bob", "password": "x" + PASSWORDS["bob"]},
                      timeout=30)
    assert r.status_code == 401


def test_tenant_admin_group_gives_tenant_admin_role(ldap_platform):
    plat = ldap_platform
    token = plat.login("carol", PASSWORDS["carol"])
    account = plat.api("GET", "/account", token).json()
    vision = next(t for t in account["tenants"] if t["name"] == "vision")
    assert "tenant-admin" in {r["name"] for r in vision["roles"]}
    assert plat.api("GET", "/tenant", token).status_code == 200  # a tenant administrator's route
    alice = plat.login("alice", PASSWORDS["alice"], tenant_id=vision["id"])
    assert plat.api("GET", "/tenant", alice).status_code == 403


def test_leaving_a_group_removes_the_tenant_at_next_sign_in(ldap_platform, directory):
    plat = ldap_platform
    assert hub_form_login(plat, "alice", PASSWORDS["alice"]).status_code == 302
    assert "speech" in hub_groups(plat, "alice")
    directory.remove_member("speech", "alice")
    try:
        assert hub_form_login(plat, "alice", PASSWORDS["alice"]).status_code == 302
        assert "speech" not in hub_groups(plat, "alice")
        assert "vision" in hub_groups(plat, "alice")
        # and through the API's login as well: only vision is left
        token = plat.login("alice", PASSWORDS["alice"])
        names = {t["name"] for t in plat.api("GET", "/account", token).json()["tenants"]}
        assert names == {"vision"}
    finally:
        directory.add_member("speech", "alice")
    token = plat.login("alice", PASSWORDS["alice"])
    names = {t["name"] for t in plat.api("GET", "/account", token).json()["tenants"]}
    assert names == {"vision", "speech"}


def test_running_job_of_a_user_who_left_the_group_is_listed_as_an_orphan(ldap_platform, directory, tmp_path):
    """Removed from a directory group, a user loses the tenant at the next sign-in (no sync): the
    administrator's orphans view lists the training they left running there, until they are back."""
    plat = ldap_platform
    admin = plat.admin_token()
    token = plat.login("alice", PASSWORDS["alice"])
    speech = next(t for t in plat.api("GET", "/account", token).json()["tenants"] if t["name"] == "speech")
    alice = TenantUser(plat, speech, "alice", PASSWORDS["alice"],
                       plat.login("alice", PASSWORDS["alice"], tenant_id=speech["id"]), None)
    repo = ModelRepo(plat, str(tmp_path / "model"), "team", f"orphan-{uuid.uuid4().hex[:6]}", tenant="speech")
    repo.commit({"train.py": "print('hi')\n"}, "a model")
    data = create_data(alice, "orphan-data", {"a.txt": b"a"})["id"]
    r = alice.api("POST", "/datasets", json={"name": "orphan-set", "entries": {"training": [{"id": data}]}})
    assert r.status_code == 201, r.text
    r = alice.api("POST", "/training/run", json={
        "name": "left-behind", "entryPoint": "sleep 300", "containerImage": {"image": "python", "tag": "3.11"},
        "dataSetId": r.json()["id"], "gitModel": {"owner": repo.owner, "repository": repo.name},
        "cpu": 0.1, "memory": 0.1, "gpu": 0})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    try:
        wait_job(alice, job_id, "Running", timeout=180)

        def orphans():
            r = plat.api("GET", "/admin/directory/orphans", admin)
            assert r.status_code == 200, r.text
            return [o for o in r.json()["items"] if o["tenantName"] == "speech" and o["owner"] == "alice"]

        assert orphans() == []  # still a member
        directory.remove_member("speech", "alice")
        try:
            assert hub_form_login(plat, "alice", PASSWORDS["alice"]).status_code == 302
            assert "speech" not in hub_groups(plat, "alice")
            assert orphans() == [{"kind": "training", "id": job_id, "name": "left-behind", "status": "Running",
                                  "tenantId": speech["id"], "tenantName": "speech", "owner": "alice",
                                  "ownerExists": True}]
            # not for a tenant user: the administrator's view
            assert plat.api("GET", "/admin/directory/orphans", token).status_code == 403
            # and on the administrator's users screen, next to Sync now
            row = orphans_in_browser(plat, job_id)
            assert "speech" in row and "alice" in row and "left-behind" in row and "Running" in row
        finally:
            directory.add_member("speech", "alice")
        assert hub_form_login(plat, "alice", PASSWORDS["alice"]).status_code == 302
        assert orphans() == []  # a member again
    finally:
        alice.token = plat.login("alice", PASSWORDS["alice"], tenant_id=speech["id"])
        alice.api("POST", f"/training/{job_id}/halt")


def orphans_in_browser(plat, job_id: int) -> str:
    """The row of alice's training on the users screen's orphans card (Japanese labels too); its text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            texts = []
            for locale, title in (("en-US", "Still running without a member"), ("ja-JP", "メンバーでなくなった")):
                page = browser.new_page(locale=locale)
                page.goto(f"{plat.url}/hub/login")
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", plat.admin_password)
                page.click("#login_submit")
                page.wait_for_url(lambda url: "/services/kqi/" in url, timeout=30000)
                page.goto(f"{plat.service_url}/admin/users")
                page.wait_for_selector("body[data-kqi-ready=true]")
                assert title in page.locator("#orphans-card").text_content()
                row = page.locator(f'#orphans-table tr[data-owner="alice"][data-kind="training"][data-id="{job_id}"]')
                row.wait_for(timeout=30000)
                texts.append(row.text_content())
                if locale == "en-US":
                    artifacts = os.path.join(os.path.dirname(__file__), "artifacts")
                    os.makedirs(artifacts, exist_ok=True)
                    page.set_viewport_size({"width": 1280, "height": 900})
                    page.screenshot(path=os.path.join(artifacts, "ui-directory-orphans.png"), full_page=True)
                page.close()
            return texts[0]
        finally:
            browser.close()


def test_sync_applies_groups_and_display_names(ldap_platform, directory):
    plat = ldap_platform
    admin = plat.admin_token()
    plat.login("bob", PASSWORDS["bob"])  # bob is in vision
    assert "vision" in hub_groups(plat, "bob")
    directory.remove_member("vision", "bob")
    directory.remove_member("vision-leads", "carol")
    directory.add_user("dave", "dave-" + uuid.uuid4().hex[:8], "Dave Directory")
    directory.add_member("speech", "dave")
    assert plat.api("GET", "/admin/directory/sync", admin).json() == {"available": True}
    # the administrator's "Sync now" on the users screen, in the browser
    sync_in_browser(plat)
    assert "vision" not in hub_groups(plat, "bob")
    # back into the groups; dave leaves the directory: a hub user it does not know loses the mapped tenants
    directory.add_member("vision", "bob")
    directory.add_member("vision-leads", "carol")
    directory.delete_user("dave")
    assert plat.api("POST", "/admin/directory/sync", admin).status_code == 200
    assert "vision" in hub_groups(plat, "bob") and "carol" in tenant_admins(plat, "vision")
    assert "speech" not in hub_groups(plat, "dave")
    # out of the groups again, dave back (still in speech's member list)
    directory.remove_member("vision", "bob")
    directory.remove_member("vision-leads", "carol")
    directory.add_user("dave", "dave-" + uuid.uuid4().hex[:8], "Dave Directory")
    # the API's answer: who joined or left what
    r = plat.api("POST", "/admin/directory/sync", admin)
    assert r.status_code == 200, r.text
    users = {u["name"]: u for u in r.json()["users"]}
    assert users["bob"]["removed"] == ["vision"]
    assert users["bob"]["stillRunning"] == []  # none of his notebooks or jobs runs there
    assert users["carol"]["adminRemoved"] == ["vision"] and users["carol"]["removed"] == ["vision"]
    assert users["dave"]["created"] is False and users["dave"]["added"] == ["speech"]
    assert users["dave"]["displayName"] == "Dave Directory"
    assert "mallory" not in users and plat.hub("GET", "/users/mallory").status_code == 404  # blocked
    assert "vision" not in hub_groups(plat, "bob")
    assert "carol" not in tenant_admins(plat, "vision")
    assert "speech" in hub_groups(plat, "dave")
    # the display name reaches the kqi service's users list
    r = plat.api("GET", "/admin/users", admin, params={"perPage": 100})
    assert r.status_code == 200, r.text
    names = {u["name"]: u for u in r.json()}
    assert names["dave"]["displayName"] == "Dave Directory"
    # a second sync changes nothing
    r = plat.api("POST", "/admin/directory/sync", admin)
    assert all(not (u["added"] or u["removed"] or u["adminAdded"] or u["adminRemoved"]) for u in r.json()["users"])
    # a tenant user may not sync
    alice = plat.login("alice", PASSWORDS["alice"])
    assert plat.api("POST", "/admin/directory/sync", alice).status_code == 403


def sync_in_browser(plat):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(locale="en-US")
            page.goto(f"{plat.url}/hub/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", plat.admin_password)
            page.click("#login_submit")
            page.wait_for_url(lambda url: "/services/kqi/" in url, timeout=30000)
            page.goto(f"{plat.service_url}/admin/users")
            page.wait_for_selector("body[data-kqi-ready=true]")
            page.click("#sync-run")
            table = page.locator("#sync-table")
            table.wait_for(timeout=30000)
            bob = page.locator('#sync-table tr[data-user="bob"]')
            assert "vision" in bob.text_content()
            dave = page.locator('#sync-table tr[data-user="dave"]')
            assert "Dave Directory" in dave.text_content() and "speech" in dave.text_content()
            assert "carol" in page.locator("#sync-table").text_content()
            # the users list below follows: bob's tenants and the directory's display names
            page.locator("#kqi-list-body tr[data-name=bob]", has_text="Bob Builder").wait_for(timeout=30000)
            assert "VISION" not in page.locator("#kqi-list-body tr[data-name=bob]").text_content()
            page.wait_for_selector("#sync-run:enabled")
            artifacts = os.path.join(os.path.dirname(__file__), "artifacts")
            os.makedirs(artifacts, exist_ok=True)
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=os.path.join(artifacts, "ui-directory-sync.png"), full_page=True)
        finally:
            browser.close()


def test_default_tenant_is_where_sign_in_lands(ldap_platform, cli_home):
    plat = ldap_platform
    token = plat.login("alice", PASSWORDS["alice"])
    tenants = {t["name"]: t for t in plat.api("GET", "/account", token).json()["tenants"]}
    r = plat.api("PUT", f"/account?defaultTenant={tenants['speech']['id']}", token)
    assert r.status_code == 200, r.text
    out = plat.cli(cli_home, "account", "login", "-s", plat.service_url, "-u", "alice", "-p", PASSWORDS["alice"]).stdout
    assert "tenant: SPEECH" in out
    r = plat.api("PUT", f"/account?defaultTenant={tenants['vision']['id']}", token)
    assert r.status_code == 200
    out = plat.cli(cli_home, "account", "login", "-s", plat.service_url, "-u", "alice", "-p", PASSWORDS["alice"]).stdout
    assert "tenant: VISION" in out


def test_passwords_are_the_directorys(ldap_platform):
    plat = ldap_platform
    admin = plat.admin_token()
    r = plat.api("POST", "/admin/users", admin, json={"name": "made-here", "password": "a-Long-password-1"})
    assert r.status_code == 400 and "directory" in r.json()["detail"], r.text
    assert plat.hub("GET", "/users/made-here").status_code == 404
    # the service knows: /account says passwords cannot be changed here
    assert plat.api("GET", "/account", plat.login("alice", PASSWORDS["alice"])).json()["passwordChangeEnabled"] is False
    session = requests.Session()
    session.get(f"{plat.url}/hub/login", timeout=30)
    r = session.post(f"{plat.url}/hub/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                                    "_xsrf": session.cookies.get("_xsrf", "")}, timeout=30)
    assert r.status_code == 200
    r = session.get(f"{plat.url}/hub/change-password", timeout=30)
    assert r.status_code == 200 and "kept by your organisation" in r.text
    r = session.get(f"{plat.url}/hub/change-password", headers={"Accept-Language": "ja"}, timeout=30)
    assert "組織のディレクトリで管理されています" in r.text


def test_no_password_in_the_logs(ldap_platform):
    log = open(ldap_platform.log_path, errors="replace").read()
    for password in PASSWORDS.values():
        assert password not in log


def test_still_running_lists_the_users_notebooks_and_jobs_in_tenants_left():
    """What a sync names for the administrator: the user's running or queued notebooks and jobs in the
    tenants they left, none of others or of other tenants (a real SQLite database with the kqi schema)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from kqi_services.api.directory import still_running
    from kqi_services.db.models import Base, Tenant
    from kqi_services.db.models_jobs import Job
    from kqi_services.db.models_notebooks import Notebook

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        left, kept = Tenant(name="vision", display_name="VISION"), Tenant(name="speech", display_name="SPEECH")
        db.add_all([left, kept])
        db.flush()

        def job(tenant, number, status, owner="bob", kind="training"):
            return Job(tenant_id=tenant.id, kind=kind, display_id=number, name=f"job{number}", status=status,
                       cpu=1, memory=1, created_by=owner)

        def notebook(tenant, number, status, owner="bob"):
            return Notebook(tenant_id=tenant.id, display_id=number, name=f"nb{number}", server_name=f"nb{number}",
                            status=status, created_by=owner)

        db.add_all([job(left, 1, "Running"), job(left, 2, "Completed"), job(left, 3, "Queued", kind="inference"),
                    job(left, 4, "Running", owner="alice"), job(kept, 1, "Running"),
                    notebook(left, 1, "Running"), notebook(left, 2, "Stopped"), notebook(kept, 1, "Running")])
        db.commit()
        found = still_running(db, "bob", ["vision"])
        assert [(f["kind"], f["id"], f["status"], f["tenantName"]) for f in found] == [
            ("notebook", 1, "Running", "vision"), ("training", 1, "Running", "vision"),
            ("inference", 3, "Queued", "vision")]
        assert still_running(db, "bob", []) == []
        assert still_running(db, "carol", ["vision"]) == []


def test_orphans_are_what_runs_in_tenants_the_owner_is_not_a_member_of():
    """The orphans view's rule over a real SQLite database with the kqi schema: running or queued
    notebooks, jobs of every kind and TensorBoards (by who started them) whose owner's hub groups lack
    the tenant, or whose owner the hub no longer has; nothing ended, nothing of members."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from kqi_services.api.directory import orphans, running_objects
    from kqi_services.db.models import Base, Tenant
    from kqi_services.db.models_jobs import Job
    from kqi_services.db.models_notebooks import Notebook

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        vision, speech = Tenant(name="vision", display_name="VISION"), Tenant(name="speech", display_name="SPEECH")
        db.add_all([vision, speech])
        db.flush()

        def job(tenant, number, status, owner, kind="training", extra=None):
            return Job(tenant_id=tenant.id, kind=kind, display_id=number, name=f"{kind}{number}", status=status,
                       cpu=1, memory=1, created_by=owner, extra=extra,
                       tensorboard_port=(extra or {}).get("tensorboard", {}).get("port"))  # (as set_state keeps it)

        board = {"tensorboard": {"key": "tensorboard-9", "port": 1, "startedBy": "bob", "trainingIds": [],
                                 "expiresAt": 0, "startedAt": 0}}
        db.add_all([
            job(vision, 1, "Running", "bob"), job(vision, 2, "Completed", "bob"),
            job(vision, 3, "Queued", "bob", kind="preprocessing"), job(speech, 1, "Running", "bob", kind="inference"),
            job(vision, 4, "Running", "alice"), job(vision, 5, "Completed", "alice", extra=board),
            job(vision, 6, "Running", "gone"),
            Notebook(tenant_id=vision.id, display_id=1, name="nb1", server_name="nb1", status="Pending",
                     created_by="bob"),
            Notebook(tenant_id=vision.id, display_id=2, name="nb2", server_name="nb2", status="Stopped",
                     created_by="bob"),
        ])
        db.commit()
        owners = {"bob": {"name": "bob", "groups": ["speech"]}, "alice": {"name": "alice", "groups": ["vision"]},
                  "gone": None}
        found = orphans(running_objects(db), owners)
        assert [(o["tenantName"], o["owner"], o["kind"], o["id"], o["status"], o["ownerExists"]) for o in found] == [
            ("vision", "bob", "notebook", 1, "Pending", True), ("vision", "bob", "preprocessing", 3, "Queued", True),
            ("vision", "bob", "tensorboard", 5, "Running", True), ("vision", "bob", "training", 1, "Running", True),
            ("vision", "gone", "training", 6, "Running", False)]
        owners["bob"]["groups"] = ["vision", "speech"]
        assert [o["owner"] for o in orphans(running_objects(db), owners)] == ["gone"]


def test_mapping_rules():
    from kqi_hub_config.directory_auth import authenticator_class, managed_tenants, mapped_tenants

    group_tenants = {"vision": "vision", "staff": ["sandbox", "shared"]}
    admin_groups = {"vision-leads": "vision", "ops": ["shared"]}
    assert mapped_tenants(["vision", "unrelated"], group_tenants, admin_groups) == ({"vision"}, set())
    assert mapped_tenants(["staff", "ops"], group_tenants, admin_groups) == ({"sandbox", "shared"}, {"shared"})
    # an administrator's group alone makes a member too
    assert mapped_tenants(["vision-leads"], group_tenants, admin_groups) == ({"vision"}, {"vision"})
    assert mapped_tenants([], group_tenants, admin_groups) == (set(), set())
    assert managed_tenants(group_tenants, admin_groups) == ({"vision", "sandbox", "shared"}, {"vision", "shared"})
    assert authenticator_class("") == "kqi" and authenticator_class("LDAP").endswith("KqiLDAPAuthenticator")
    assert authenticator_class("oidc").endswith("KqiOIDCAuthenticator")
    with pytest.raises(SystemExit, match="KQI_AUTHENTICATOR must be one of"):
        authenticator_class("saml")


def test_apply_keeps_memberships_the_mapping_does_not_name():
    """On the hub's own database: mapped tenants follow the groups, others stay as given by hand."""
    from jupyterhub import orm, roles

    from kqi_hub_config.directory_auth import apply_directory_groups
    from kqi_services.hubext.tenant_roles import tenant_role_specs

    from jupyterhub import scopes

    missing = {name: {"description": name} for name in ("custom:kqi:user", "custom:kqi:tenant-admin")
               if name not in scopes.scope_definitions}
    if missing:  # as the hub's configuration defines them (JupyterHub.custom_scopes)
        scopes.define_custom_scopes(missing)
    db = orm.new_session_factory("sqlite://")()
    for name in ("vision", "speech", "handmade"):
        db.add(orm.Group(name=name))
        for spec in tenant_role_specs(name, "kqi"):
            roles.create_role(db, spec, commit=False)
    user = orm.User(name="erin")
    db.add(user)
    db.commit()
    handmade = orm.Group.find(db, "handmade")
    handmade.users.append(user)
    db.commit()
    mapping, admins = {"g-vision": "vision", "g-speech": "speech", "g-new": "not-made-yet"}, {"g-lead": "vision"}

    change = apply_directory_groups(db, user, ["g-vision", "g-lead", "g-new"], mapping, admins)
    assert change.added == ["vision"] and change.admin_added == ["vision"] and change.missing == ["not-made-yet"]
    assert {g.name for g in user.groups} == {"vision", "handmade"}
    assert user in orm.Role.find(db, "kqi-tenant-admin.vision").users

    change = apply_directory_groups(db, user, ["g-speech"], mapping, admins)
    assert change.removed == ["vision"] and change.added == ["speech"] and change.admin_removed == ["vision"]
    assert {g.name for g in user.groups} == {"speech", "handmade"}
    assert user not in orm.Role.find(db, "kqi-tenant-admin.vision").users

    change = apply_directory_groups(db, user, ["g-speech"], mapping, admins)
    assert not (change.added or change.removed or change.admin_added or change.admin_removed)


def test_kqi_hub_flags_choose_the_authenticator(tmp_path):
    import io

    from kqi_services import launcher

    args = launcher.parse_args(["--data-dir", str(tmp_path / "d"), "--authenticator", "ldap",
                                "--hub-config", "hub_ldap.py"])
    env = launcher.prepare_environment(args, environ={"PATH": "/usr/bin"}, out=io.StringIO())
    assert env["KQI_AUTHENTICATOR"] == "ldap" and env["KQI_HUB_CONFIG"] == os.path.abspath("hub_ldap.py")
    with pytest.raises(SystemExit):
        launcher.parse_args(["--authenticator", "saml"])
