"""Sign-in with a real OpenID Connect provider (issue 16): KQI_AUTHENTICATOR=oidc.

`oidc-provider-mock` (a real OpenID Connect provider for tests, from PyPI) runs on a loopback port
with a user whose `groups` claim names a directory group; the platform maps it to a tenant. In
Chromium the user signs in through the hub's OAuth login, makes a personal access token on the
user settings page, the official `kqi` CLI lists the tenant's data with it, and after the page
revokes it the CLI is refused.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid

import pytest
import requests

from kqi_services.datadir import free_port

from .platform import Platform, new_platform, remove_tree

CHROMIUM = "/usr/bin/chromium"
PROVIDER = os.path.join(os.path.dirname(sys.executable), "oidc-provider-mock")

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(PROVIDER)),
                                reason="needs /usr/bin/chromium and oidc-provider-mock (setup.sh --test)")


class TokenPlatform(Platform):
    """A platform whose administrator has no password (OIDC): a hub API token given in the hub's
    configuration (JupyterHub.api_tokens) stands in for the administrator's sign-in."""

    admin_api_token: str = ""

    def _first_tenant_ready(self) -> bool:
        try:
            r = requests.get(f"{self.api_url}/account", headers={"Authorization": f"Bearer {self.admin_api_token}"},
                             timeout=5)
        except requests.RequestException:
            return False
        return r.status_code == 200 and any(t["name"] == "sandbox" for t in r.json()["tenants"])

    def admin_hub_token(self) -> str:
        return self.admin_api_token

    def admin_token(self) -> str:
        return self.admin_api_token


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    port = free_port()
    log = open(os.path.join(str(tmp_path_factory.mktemp("oidc")), "provider.log"), "ab")
    olga = {"sub": "olga", "name": "Olga OIDC", "preferred_username": "olga", "groups": ["vision-team", "other"]}
    process = subprocess.Popen([PROVIDER, "--port", str(port), "--user-claims", json.dumps(olga)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.3)
    else:
        process.kill()
        raise RuntimeError("oidc-provider-mock did not start")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def oidc_platform(provider, tmp_path_factory, request):
    base = str(tmp_path_factory.mktemp("platform-oidc"))
    env = {}
    if request.config.getoption("--db").split(",")[0].strip() == "postgresql":  # the first backend asked for
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        env = {"KQI_DB_URL": pg.create_database(f"kqi_oidc_{suffix}"),
               "KQI_HUB_DB_URL": pg.create_database(f"hub_oidc_{suffix}")}
    plain = new_platform(base, env)
    plat = TokenPlatform(data_dir=plain.data_dir, port=plain.port, admin_password="", env=plain.env)
    plat.admin_api_token = secrets.token_hex(32)
    config = os.path.join(base, "hub_oidc.py")
    with open(config, "w") as f:
        f.write(f"""
c.KqiOIDCAuthenticator.client_id = "kqi-hub"
c.KqiOIDCAuthenticator.client_secret = "kqi-hub-secret"
c.KqiOIDCAuthenticator.oauth_callback_url = "{plat.url}/hub/oauth_callback"
c.KqiOIDCAuthenticator.authorize_url = "{provider}/oauth2/authorize"
c.KqiOIDCAuthenticator.token_url = "{provider}/oauth2/token"
c.KqiOIDCAuthenticator.userdata_url = "{provider}/userinfo"
c.KqiOIDCAuthenticator.scope = ["openid", "profile"]
c.KqiOIDCAuthenticator.username_claim = "sub"
c.KqiOIDCAuthenticator.login_service = "Test provider"
c.KqiOIDCAuthenticator.group_claim = "groups"
c.KqiOIDCAuthenticator.group_tenants = {{"vision-team": "vision"}}
import os
c.JupyterHub.api_tokens = {{os.environ["KQI_TEST_ADMIN_TOKEN"]: "admin"}}
""")
    plat.env.update(KQI_AUTHENTICATOR="oidc", KQI_HUB_CONFIG=config, KQI_TEST_ADMIN_TOKEN=plat.admin_api_token)
    plat.start()
    yield plat
    plat.stop()
    remove_tree(base)


def oidc_sign_in(context, plat, sub: str, in_a_tenant: bool = True):
    """Sign in through the hub's OAuth login and the provider's form, in a fresh browser context
    (its own cookies)."""
    page = context.new_page()
    page.goto(f"{plat.url}/hub/login")
    page.get_by_text("Sign in with Test provider").click()
    # the provider's authorization form
    page.wait_for_url(lambda url: "/oauth2/authorize" in url, timeout=30000)
    page.fill("input[name=sub]", sub)
    page.get_by_role("button", name="Authorize").click()
    if not in_a_tenant:
        # signed in, but in no tenant: the hub does not let the user into the kqi service
        page.wait_for_url(lambda url: "/hub/api/oauth2/authorize" in url, timeout=30000)
        assert "403" in page.content()
        return page
    try:
        page.wait_for_url(lambda url: "/services/kqi/" in url, timeout=30000)
    except Exception:
        raise AssertionError(f"the sign-in ended at {page.url}: {page.content()[:1500]}")
    page.wait_for_selector("body[data-kqi-ready=true]", timeout=30000)
    return page


def test_browser_sign_in_group_claim_and_personal_token(oidc_platform, provider, tmp_path):
    from playwright.sync_api import sync_playwright

    plat = oidc_platform
    # an OIDC provider has no list of users: no Sync now (the groups come at each sign-in)
    assert plat.api("GET", "/admin/directory/sync", plat.admin_token()).json() == {"available": False}
    r = plat.api("POST", "/admin/directory/sync", plat.admin_token())
    assert r.status_code == 400 and "cannot list the directory" in r.json()["detail"], r.text
    vision = plat.create_tenant("vision")
    plat.create_tenant("speech")  # not mapped: olga stays out
    home = str(tmp_path / "home")
    os.makedirs(home)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = oidc_sign_in(browser.new_context(locale="en-US"), plat, "olga")

            # the group claim made olga a member of vision, not of speech
            groups = set(plat.hub("GET", "/users/olga").json()["groups"])
            assert "vision" in groups and "speech" not in groups

            page.goto(f"{plat.service_url}/user-settings#tokens")
            page.wait_for_selector("body[data-kqi-ready=true]")
            page.click("#tab-tokens-button")
            page.select_option("#tokens-tenant", str(vision["id"]))
            page.fill("#tokens-note", "cli on my laptop")
            page.fill("#tokens-expires", "30")
            page.click("#tokens-create")
            page.wait_for_selector("#tokens-created-value")
            token = page.input_value("#tokens-created-value")
            commands = page.text_content("#tokens-cli")
            assert token in commands and plat.service_url in commands and "kqi data list" in commands
            row = page.locator("#tokens-rows tr", has_text="cli on my laptop")
            row.wait_for()
            assert "VISION" in row.text_content()

            # the official CLI with the token from the page: the tenant's data
            os.makedirs(os.path.join(home, ".kqi"))
            with open(os.path.join(home, ".kqi", "config.json"), "w") as f:
                json.dump({"server": plat.service_url, "token": token}, f)
            data_name = f"oidc-{uuid.uuid4().hex[:6]}"
            r = plat.api("POST", "/data", token, json={"name": data_name})
            assert r.status_code in (200, 201), r.text
            out = plat.cli(home, "data", "list").stdout
            assert data_name in out
            out = plat.cli(home, "account", "get").stdout
            assert f"selected tenant: {vision['id']} VISION" in out
            # the provider keeps olga's password: /account says KQI cannot change it
            assert plat.api("GET", "/account", token).json()["passwordChangeEnabled"] is False

            # the page lists it with its last use; the page revokes it
            page.reload()
            page.wait_for_selector("body[data-kqi-ready=true]")
            page.click("#tab-tokens-button")
            row = page.locator("#tokens-rows tr", has_text="cli on my laptop")
            row.wait_for()
            assert token not in page.content()
            artifacts = os.path.join(os.path.dirname(__file__), "artifacts")
            os.makedirs(artifacts, exist_ok=True)
            page.set_viewport_size({"width": 1280, "height": 800})
            page.wait_for_selector("#tab-tokens.show")
            page.wait_for_timeout(500)  # the tab's fade-in
            page.screenshot(path=os.path.join(artifacts, "ui-personal-tokens.png"), full_page=True)
            page.on("dialog", lambda dialog: dialog.accept())
            row.locator(".kqi-token-revoke").click()
            page.locator("#tokens-rows", has_text="No personal access tokens").wait_for()

            # the provider drops the group: the next sign-in removes the tenant
            r = requests.put(f"{provider}/users/olga", json={"preferred_username": "olga", "groups": ["other"]},
                             timeout=10)
            assert r.status_code == 204, r.text
            again = browser.new_context(locale="en-US")
            oidc_sign_in(again, plat, "olga", in_a_tenant=False)
            assert "vision" not in set(plat.hub("GET", "/users/olga").json()["groups"])
        finally:
            browser.close()

    result = plat.cli(home, "data", "list", check=False)
    assert result.returncode != 0 and data_name not in result.stdout
    assert plat.api("GET", "/account", token).status_code == 401
    assert token not in open(plat.log_path, errors="replace").read()
    # no password to check here: kqi account login is refused (personal tokens are the way)
    r = requests.post(f"{plat.api_url}/account/login", json={"userName": "olga", "password": "anything"}, timeout=30)
    assert r.status_code == 401
