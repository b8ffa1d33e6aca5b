"""The web UI shell in a real browser against a real KQI Hub: sign-in through the hub, the
tenant switcher, user settings (webhook with a test notification), the language choice and
the system administrator's tenant and user screens."""
from __future__ import annotations

import os
import re
import socket
import uuid

import pytest
import requests
from playwright.sync_api import expect

from .conftest import sign_in


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-{name}.png"), full_page=True, animations="disabled")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.sqlite_only
def test_switch_tenant_and_webhook_test_notification(platform, browser, webhook_receiver, artifacts_dir):
    team = platform.create_tenant()
    name, password = platform.create_user(tenants=["sandbox", team["name"]])
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, platform, name, password)
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#kqi-user-name")).to_have_text(name)
        expect(page.locator("#kqi-current-tenant")).to_have_text("Sandbox")
        expect(page.locator("#kqi-home-tenant-name")).to_have_text("sandbox")
        # a plain member sees no administration
        expect(page.locator("#kqi-nav-admin")).to_have_count(0)
        expect(page.locator("#kqi-home-link-hub")).to_have_attribute("href", "/hub/token")
        shot(page, artifacts_dir, "home-sandbox")

        # the switcher lists both tenants; choosing the team switches and reloads
        page.click("#kqi-tenant-switcher")
        items = page.locator("#kqi-tenant-list button.dropdown-item")
        expect(items).to_have_count(2)
        shot(page, artifacts_dir, "tenant-switcher")
        with page.expect_navigation():
            page.click(f'#kqi-tenant-list button[data-tenant-id="{team["id"]}"]')
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#kqi-current-tenant")).to_have_text(team["displayName"])
        expect(page.locator("#kqi-home-tenant-name")).to_have_text(team["name"])
        # the choice sticks for the browser session: a fresh page load stays in the team
        page.reload()
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#kqi-current-tenant")).to_have_text(team["displayName"])
        shot(page, artifacts_dir, "home-team")

        # user menu -> user settings -> Webhook
        page.click("#kqi-user-menu")
        expect(page.locator("#kqi-menu-password")).to_have_attribute("href", "/hub/change-password")
        expect(page.locator("#kqi-menu-logout")).to_have_attribute("href", "/hub/logout")
        page.click("#kqi-menu-settings")
        page.wait_for_url("**/services/kqi/user-settings")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#kqi-current-tenant")).to_have_text(team["displayName"])
        page.click("#tab-webhook-button")
        expect(page.locator("#tab-webhook")).to_be_visible()
        expect(page.locator("#webhook-url-set")).to_be_hidden()

        hook_url = webhook_receiver.url + "/services/T000/B000/" + uuid.uuid4().hex
        page.fill("#webhook-url", hook_url)
        page.fill("#webhook-mention", "U012AB3CD")
        page.click("#webhook-save")
        expect(page.locator("#webhook-messages .alert-success")).to_have_text("Saved.")
        # the URL is stored but never shown again
        expect(page.locator("#webhook-url-set")).to_be_visible()
        expect(page.locator("#webhook-url")).to_have_value("")
        expect(page.locator("#webhook-mention")).to_have_value("U012AB3CD")
        assert hook_url not in page.content()

        page.click("#webhook-test")
        expect(page.locator("#webhook-test-result .alert-success")).to_have_text("The test notification was sent.")
        shot(page, artifacts_dir, "settings-webhook-ok")
        bodies = webhook_receiver.json_bodies()
        assert len(bodies) == 1, bodies
        assert "<@U012AB3CD>" in bodies[0]["text"]
        assert webhook_receiver.requests[0]["path"] == hook_url[len(webhook_receiver.url):]
        assert webhook_receiver.requests[0]["content_type"].startswith("application/json")

        # a URL where nothing listens: the page shows why the notification failed
        page.fill("#webhook-url", f"http://127.0.0.1:{closed_port()}/hook")
        page.click("#webhook-test")
        failure = page.locator("#webhook-test-result .alert-danger")
        expect(failure).to_contain_text("The test notification failed:")
        expect(failure).to_contain_text(re.compile("refused|connect", re.I))
        shot(page, artifacts_dir, "settings-webhook-failed")
        assert len(webhook_receiver.json_bodies()) == 1

        # a bad URL is refused with the field's message, and nothing is saved
        page.fill("#webhook-url", "ftp://example.org/x")
        page.click("#webhook-save")
        expect(page.locator("#webhook-messages .alert-danger")).to_contain_text("slackUrl")
        expect(page.locator("#webhook-url")).to_have_class(re.compile(r"\bis-invalid\b"))

        # what the browser saved is what the API has, in the tenant the switcher chose
        token = platform.login(name, password)
        r = platform.api("GET", "/account/webhook/slack", token)
        assert r.json() == {"slackUrl": None, "slackUrlSet": True, "mention": "U012AB3CD"}

        # Git Token and Registry Token: the current tenant's servers, secrets in, never out
        page.click("#tab-git-button")
        git_row = page.locator("#git-rows tr[data-git-id]").first
        expect(git_row.locator(".kqi-secret-state")).to_have_text("Not set")
        git_token = "ghp_" + uuid.uuid4().hex
        git_row.locator(".kqi-git-token").fill(git_token)
        page.click("#git-save")
        expect(page.locator("#git-messages .alert-success")).to_have_text("Saved.")
        expect(git_row.locator(".kqi-secret-state")).to_have_text("Set")
        expect(git_row.locator(".kqi-git-token")).to_have_value("")
        gits = platform.api("GET", "/account/gits", token).json()["gits"]
        assert gits[0]["tokenSet"] is True and gits[0]["token"] is None

        page.click("#tab-registry-button")
        expect(page).to_have_url(re.compile(r"#registry$"))
        reg_row = page.locator("#registry-rows tr[data-registry-id]").first
        reg_row.locator(".kqi-registry-user").fill("robot")
        reg_row.locator(".kqi-registry-password").fill("s3cret-" + uuid.uuid4().hex[:6])
        page.click("#registry-save")
        expect(page.locator("#registry-messages .alert-success")).to_have_text("Saved.")
        expect(reg_row.locator(".kqi-secret-state")).to_have_text("Set")
        expect(reg_row.locator(".kqi-registry-user")).to_have_value("robot")
        shot(page, artifacts_dir, "settings-registry")
        # a tab can be opened by its address
        page.goto(platform.service_url + "/user-settings#webhook")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#tab-webhook")).to_be_visible()
        expect(page.locator("#webhook-mention")).to_have_value("U012AB3CD")
    finally:
        context.close()


@pytest.mark.sqlite_only
def test_japanese_browser_gets_japanese_labels(platform, browser, artifacts_dir):
    name, password = platform.create_user(tenants=["sandbox"])
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, platform, name, password, "/user-settings")
        expect(page.locator("html")).to_have_attribute("lang", "ja")
        expect(page.locator("h1")).to_have_text("ユーザ情報設定")
        expect(page.locator("#tab-git-button")).to_have_text("Gitトークン")
        expect(page.locator("#tab-registry-button")).to_have_text("レジストリトークン")
        expect(page.locator("#tab-webhook-button")).to_have_text("通知 (Webhook)")
        expect(page.locator("#kqi-tenant-switcher")).to_contain_text("テナント")
        page.click("#tab-webhook-button")
        expect(page.locator('label[for="webhook-url"]')).to_have_text("通知先URL")
        expect(page.locator('label[for="webhook-mention"]')).to_have_text("メンション")
        expect(page.locator("#webhook-test")).to_have_text("テスト通知")
        expect(page.locator("#webhook-save")).to_have_text("保存")
        page.click("#kqi-user-menu")
        expect(page.locator("#kqi-menu-settings")).to_have_text("ユーザ情報設定")
        expect(page.locator("#kqi-menu-password")).to_have_text("パスワード変更")
        expect(page.locator("#kqi-menu-logout")).to_have_text("ログアウト")
        shot(page, artifacts_dir, "settings-ja")
        # an error from the browser side is in Japanese too (the API's detail stays as it is)
        page.keyboard.press("Escape")
        page.fill("#webhook-url", "")
        page.click("#webhook-test")
        expect(page.locator("#webhook-test-result .alert-danger")).to_contain_text("テスト通知に失敗しました")

        page.goto(platform.service_url + "/")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#kqi-home-tenant .card-header")).to_have_text("現在のテナント")
        expect(page.locator("#kqi-home-tenant-roles")).to_contain_text("テナントユーザ")
        shot(page, artifacts_dir, "home-ja")

        # an administration page is refused to a plain member, in Japanese
        r = page.goto(platform.service_url + "/admin/tenants")
        assert r.status == 403
        expect(page.locator("#kqi-error")).to_contain_text("システム管理者")
    finally:
        context.close()


@pytest.mark.sqlite_only
def test_system_admin_manages_tenants_and_users(platform, browser, artifacts_dir):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    tenant_name = f"ui-{uuid.uuid4().hex[:8]}"
    user_name = f"ui-user-{uuid.uuid4().hex[:6]}"
    user_password = "Pw-" + uuid.uuid4().hex
    try:
        sign_in(page, platform, "admin", platform.admin_password)
        page.click("#kqi-nav-admin")
        page.click("#kqi-nav-tenants")
        page.wait_for_url("**/services/kqi/admin/tenants")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator('#kqi-list-body tr[data-name="sandbox"]')).to_be_visible()

        # create: a wrong name first shows the API's field message, then a good one
        page.click("#kqi-new")
        page.fill("#field-tenantName", "Bad Name")
        page.fill("#field-displayName", "UI tenant <b>bold</b>")
        page.check("#field-gitIds input >> nth=0")
        page.check("#field-registryIds input >> nth=0")
        page.select_option("#field-storageId", index=1)
        page.fill("#field-limitCpu", "4")
        page.click("#kqi-editor-save")
        expect(page.locator("#kqi-editor-messages .alert-danger")).to_contain_text("tenantName")
        expect(page.locator("#field-tenantName")).to_have_class(re.compile(r"\bis-invalid\b"))
        shot(page, artifacts_dir, "admin-tenant-editor")
        page.fill("#field-tenantName", tenant_name)
        page.click("#kqi-editor-save")
        expect(page.locator("#kqi-alerts .alert-success")).to_contain_text(tenant_name)
        row = page.locator(f'#kqi-list-body tr[data-name="{tenant_name}"]')
        # the display name is shown as text, not as markup
        expect(row).to_contain_text("UI tenant <b>bold</b>")
        expect(row.locator("b")).to_have_count(0)
        shot(page, artifacts_dir, "admin-tenants")

        tenant = next(t for t in platform.api("GET", "/admin/tenants", platform.admin_token()).json()
                      if t["name"] == tenant_name)
        details = platform.api("GET", f"/admin/tenants/{tenant['id']}", platform.admin_token()).json()
        assert details["limitCpu"] == 4 and details["gitIds"] and details["registryIds"]

        # edit keeps the lists and changes the display name
        row.locator(".kqi-edit").click()
        expect(page.locator("#field-tenantName")).to_have_count(0)
        expect(page.locator("#field-limitCpu")).to_have_value("4")
        page.fill("#field-displayName", "UI Tenant")
        page.click("#kqi-editor-save")
        expect(row).to_contain_text("UI Tenant")
        details = platform.api("GET", f"/admin/tenants/{tenant['id']}", platform.admin_token()).json()
        assert details["displayName"] == "UI Tenant" and details["limitCpu"] == 4

        # users: create one with a password in the new tenant; it can then sign in there
        page.click("#kqi-nav-admin")
        page.click("#kqi-nav-users")
        page.wait_for_url("**/services/kqi/admin/users")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator('#kqi-list-body tr[data-name="admin"]')).to_be_visible()
        page.click("#kqi-new")
        page.fill("#field-name", user_name)
        page.fill("#field-password", user_password)
        page.fill("#field-displayName", "UI User")
        page.check(f'#field-tenants tr[data-tenant-id="{tenant["id"]}"] .kqi-admin')
        page.click("#kqi-editor-save")
        user_row = page.locator(f'#kqi-list-body tr[data-name="{user_name}"]')
        expect(user_row).to_contain_text("UI Tenant (Tenant administrator)")
        shot(page, artifacts_dir, "admin-users")
        r = requests.post(f"{platform.api_url}/account/login",
                          json={"userName": user_name, "password": user_password}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["tenantName"] == "UI Tenant"  # login names the tenant by its display name, as KAMONOHASHI

        # edit: another display name, membership of sandbox too, and a new password
        new_password = "Pw-" + uuid.uuid4().hex
        user_row.locator(".kqi-edit").click()
        expect(page.locator("#field-name")).to_have_count(0)
        expect(page.locator(f'#field-tenants tr[data-tenant-id="{tenant["id"]}"] .kqi-admin')).to_be_checked()
        page.fill("#field-displayName", "UI User 2")
        page.fill("#field-password", new_password)
        page.check('#field-tenants tr[data-tenant-id="1"] .kqi-member')
        page.click("#kqi-editor-save")
        expect(user_row).to_contain_text("UI User 2")
        expect(user_row).to_contain_text("Sandbox")
        platform.login(user_name, new_password)
        r = requests.post(f"{platform.api_url}/account/login",
                          json={"userName": user_name, "password": user_password}, timeout=30)
        assert r.status_code == 401

        # the tenant administrator's members screen (admin administers sandbox)
        page.click("#kqi-tenant-switcher")  # the tenant's administration is in the tenant menu
        page.click("#kqi-nav-members")
        page.wait_for_url("**/services/kqi/tenant/members")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("h1")).to_have_text("Members of Sandbox")
        member_row = page.locator(f'#kqi-list-body tr[data-name="{user_name}"]')
        expect(member_row).to_contain_text("Tenant user")
        expect(member_row).not_to_contain_text("Tenant administrator")
        member_row.locator(".kqi-edit").click()
        page.check("#field-isTenantAdmin")
        page.click("#kqi-editor-save")
        expect(member_row).to_contain_text("Tenant administrator")
        shot(page, artifacts_dir, "tenant-members")
        member_row.locator(".kqi-delete").click()
        expect(member_row).to_have_count(0)
        r = platform.api("GET", f"/admin/users/{user_name}", platform.admin_token())
        assert [t["name"] for t in r.json()["tenants"]] == [tenant_name]

        # the other administration screens open and list what the API has
        for nav, marker in (("gits", "#kqi-list-body tr[data-id]"), ("registries", "#kqi-list-body tr[data-id]"),
                            ("nodes", "#kqi-partition-list")):
            page.click("#kqi-nav-admin")
            page.click(f"#kqi-nav-{nav}")
            page.wait_for_selector("body[data-kqi-ready]")
            expect(page.locator(marker).first).to_be_visible()
            expect(page.locator("#kqi-alerts .alert-danger")).to_have_count(0)
            shot(page, artifacts_dir, f"admin-{nav}")

        # delete the tenant from the list
        page.click("#kqi-nav-admin")
        page.click("#kqi-nav-tenants")
        page.wait_for_selector("body[data-kqi-ready]")
        page.locator(f'#kqi-list-body tr[data-name="{tenant_name}"] .kqi-delete').click()
        expect(page.locator(f'#kqi-list-body tr[data-name="{tenant_name}"]')).to_have_count(0)
        r = platform.api("GET", f"/admin/tenants/{tenant['id']}", platform.admin_token())
        assert r.status_code == 404
    finally:
        context.close()


@pytest.mark.sqlite_only
def test_pages_need_a_session(platform):
    # without a session the page sends the browser to the hub's OAuth sign-in
    r = requests.get(platform.service_url + "/user-settings", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert "/hub/api/oauth2/authorize" in r.headers["Location"]
    # the UI's own static files are served
    r = requests.get(platform.service_url + "/static/kqi.js", timeout=10)
    assert r.status_code == 200 and "KQI.api" in r.text


def test_catalogs_cover_every_message_the_ui_uses():
    """Both languages have the same messages, and every key the templates and scripts use exists."""
    from kqi_services.ui import handlers, i18n

    assert set(i18n.EN) == set(i18n.JA)
    for key, text in i18n.EN.items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", i18n.JA[key])), key
    ui = os.path.dirname(handlers.__file__)
    used = set()
    for folder, pattern in (("templates", r"""_\(\s*["']([\w.-]+)["']"""),
                            ("static", r"""\bt\(\s*["']([\w.-]+)["']""")):
        for name in os.listdir(os.path.join(ui, folder)):
            with open(os.path.join(ui, folder, name), encoding="utf-8") as f:
                used |= set(re.findall(pattern, f.read()))
    # keys given to the generic list/editor as labels, titles and help texts
    with open(os.path.join(ui, "static", "admin.js"), encoding="utf-8") as f:
        used |= set(re.findall(r"""(?:label|title\w*|help|newLabel|removeLabel|confirmRemove|removed|placeholder):\s*"([\w.-]+)\"""",
                               f.read()))
    for screen in handlers.SCREENS:
        used |= {k for k in (screen.title, screen.nav, screen.description) if k}
    # a key ending in "_" is the stem of keys made in the script (nodes.access_ + level)
    missing = sorted(k for k in used if k not in i18n.EN
                     and not (k.endswith("_") and any(e.startswith(k) for e in i18n.EN)))
    assert not missing, missing
    assert len(used) > 150


def test_language_choice_follows_accept_language():
    from kqi_services.ui.i18n import choose_language

    assert choose_language("ja-JP,ja;q=0.9,en-US;q=0.8") == "ja"
    assert choose_language("ja") == "ja"
    assert choose_language("en-US,en;q=0.9,ja;q=0.8") == "en"
    assert choose_language("fr-FR,ja;q=0.5") == "ja"
    assert choose_language("ja;q=0,en") == "en"
    assert choose_language("de-DE") == "en"
    assert choose_language("") == "en"
    assert choose_language(None) == "en"
