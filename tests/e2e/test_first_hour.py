"""A new user's first screens in a real browser against a real KQI Hub (issue 14): the start-up
line names the KQI UI; signing in from the hub's root lands in it, not on a hub page; the home
page says where the user is (tenant, role) and what to do first, each step a link that works;
the user guide is served, linked from the home page and the user menu in the user's language,
and needs no sign-in; a user without a tenant is told so."""
from __future__ import annotations

import os
import re

import pytest
import requests
from playwright.sync_api import expect


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUIDE_BUILT = all(os.path.isfile(os.path.join(ROOT, "build", "docs", lang, "index.html")) for lang in ("en", "ja"))
needs_guide = pytest.mark.skipif(not GUIDE_BUILT, reason="the guide is not built: run `bash setup.sh`")

STEPS = {  # step -> (screen path + what opens its form, guide chapter)
    "data": ("/data#/new", "data/"),
    "dataset": ("/datasets#/new", "data/#datasets"),
    "training": ("/training?new", "jobs/"),
    "notebook": ("/notebooks?new", "notebooks/"),
}


def console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def sign_in_at_hub_root(page, platform, name, password):
    page.goto(platform.url + "/")
    page.wait_for_selector("#username_input")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(re.escape(platform.service_url) + r"/?$"))
    page.wait_for_selector("body[data-kqi-ready]")


def test_the_start_up_line_names_the_kqi_ui(platform):
    with open(platform.log_path, errors="replace") as f:
        first = f.readline()
    assert f"KQI Hub on {platform.service_url}/ " in first, first


@needs_guide
def test_the_guide_is_served_without_sign_in_in_each_language(platform):
    for language, accept in (("en", "en-US,en;q=0.9"), ("ja", "ja,en-US;q=0.8")):
        r = requests.get(f"{platform.service_url}/docs/", headers={"Accept-Language": accept},
                         allow_redirects=False, timeout=10)
        assert r.status_code == 302 and r.headers["Location"].endswith(f"/services/kqi/docs/{language}/"), r.headers
        page = requests.get(f"{platform.service_url}/docs/{language}/", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        for chapter in ("tenants/", "data/", "jobs/", "cli/", "notebooks/", "interactive/", "admin/", "kubernetes/"):
            r = requests.get(f"{platform.service_url}/docs/{language}/{chapter}", timeout=10)
            assert r.status_code == 200, (language, chapter, r.status_code)
        img = requests.get(f"{platform.service_url}/docs/{language}/img/home.png", timeout=10)
        assert img.status_code == 200 and img.headers["Content-Type"] == "image/png"
    assert requests.get(f"{platform.service_url}/docs/en/no-such-page/", timeout=10).status_code == 404
    # a job's /kqi mounts are in the guide as the runtime makes them
    jobs = requests.get(f"{platform.service_url}/docs/en/jobs/", timeout=10).text
    for path in ("/kqi/input", "/kqi/git", "/kqi/output", "/kqi/attach", "/kqi/parent", "KQI_TOKEN", "DATASET_ID"):
        assert path in jobs, path


@pytest.mark.sqlite_only
@needs_guide
@pytest.mark.parametrize("locale,language", [("en-US", "en"), ("ja-JP", "ja")])
def test_sign_in_from_the_hub_root_lands_on_the_kqi_home(platform, browser, artifacts_dir, locale, language):
    name, password = platform.create_user(tenants=["sandbox"])
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = console_errors(page)
    try:
        sign_in_at_hub_root(page, platform, name, password)
        assert page.locator("body").get_attribute("data-page") == "home"
        assert page.locator("html").get_attribute("lang") == language
        # where the user is: the tenant and the role
        expect(page.locator("#kqi-home-tenant-name")).to_have_text("sandbox")
        expect(page.locator("#kqi-home-tenant-display")).to_have_text("Sandbox")
        expect(page.locator("#kqi-home-tenant-roles")).to_contain_text("Tenant user" if language == "en" else "テナントユーザ")
        expect(page.locator("#kqi-current-tenant")).to_contain_text("Sandbox")
        intro = "Everything you make here belongs to your current tenant" if language == "en" else "現在のテナント"
        expect(page.locator("#kqi-home-intro")).to_contain_text(intro)
        # what to do first: four steps, each a link to the screen's form and to the guide's chapter
        expect(page.locator("#kqi-home-first-steps li")).to_have_count(4)
        guide = f"/services/kqi/docs/{language}/"
        for step, (target, chapter) in STEPS.items():
            link = page.locator(f"#kqi-home-step-{step}-link")
            assert link.get_attribute("href") == "/services/kqi" + target
            expect(page.locator(f"#kqi-home-step-{step} a").last).to_have_attribute("href", guide + chapter)
        expect(page.locator("#kqi-home-first-steps")).to_contain_text(
            "Upload data" if language == "en" else "データをアップロードする")
        page.screenshot(path=os.path.join(artifacts_dir, f"first-hour-home-{language}.png"))

        # the steps lead to the forms
        page.click("#kqi-home-step-data-link")
        page.wait_for_selector('body[data-kqi-view="data-new"]')
        expect(page.locator("#data-form")).to_be_visible()
        page.go_back()
        page.wait_for_selector("body[data-kqi-ready]")
        page.click("#kqi-home-step-training-link")
        page.wait_for_url("**/training?new")
        page.wait_for_selector("body[data-kqi-form-ready]")
        page.goto(platform.service_url + "/")
        page.wait_for_selector("body[data-kqi-ready]")

        # the guide: from the home page, in the user's language
        page.click("#kqi-home-guide")
        page.wait_for_url(f"**/services/kqi/docs/{language}/")
        expect(page.locator("h1").first).to_have_text("KQI Hub user guide" if language == "en" else "KQI Hub ユーザガイド")
        assert page.locator("html").get_attribute("lang") == language
        expect(page.locator("img[src='img/home.png']")).to_be_visible()
        # and from the user menu of any screen
        page.goto(platform.service_url + "/data")
        page.wait_for_selector("body[data-kqi-ready]")
        page.click("#kqi-user-menu")
        page.click("#kqi-menu-guide")
        page.wait_for_url(f"**/services/kqi/docs/{language}/")
        assert not errors, errors
    finally:
        context.close()
