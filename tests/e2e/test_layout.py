"""Every screen of the web UI at 1280×800 and 1920×1080, in English and in Japanese, in a real
browser: the header keeps each item on one line with no two items overlapping (measured with
bounding boxes), no screen logs a console error or throws, list screens page on the server
(perPage, page, withTotal) under the one pager, every `pattern` attribute is a valid regular
expression under the `v` flag (as Chromium compiles it), dates follow the UI language, and the
hub's sign-in page speaks the browser's language.

One browser, one context per language, one sign-in per context; each screen is loaded once and
measured at both sizes (the viewport changes, the page stays)."""
from __future__ import annotations

import os
import re
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from kqi_services.ui.handlers import SCREENS

from ..platform import TenantUser, create_data
from .conftest import sign_in

SIZES = [(1280, 800), (1920, 1080)]
LANGUAGES = [("en-US", "en"), ("ja-JP", "ja")]
# the list routes the UI pages through; a GET of one of these without perPage is a whole-list fetch
LIST_ROUTES = re.compile(r"/api/v2/(data|datasets|preprocessings|preprocessings/\d+/histories|training|inferences|"
                         r"notebook|admin/tenants|admin/git/endpoints|admin/registry/endpoints|admin/nodes|"
                         r"admin/users|admin/tensorboards|admin/storage/endpoints|tenant/users|tenant/shell-sessions)$")
SHOTS = {("", 1280), ("training?new", 1280), ("data", 1920), ("admin/users", 1280)}

# the header's items: brand, each nav link, and each control on the right
HEADER_ITEMS_JS = """() => {
  const nav = document.querySelector('#kqi-navbar');
  const items = Array.from(nav.querySelectorAll(
    '.navbar-brand, .kqi-nav-main > .nav-item > .nav-link, .kqi-nav-side > .nav-item > .btn'));
  const lines = (node) => {
    // how many lines the item's content takes: its boxes (text, icons) grouped into rows that
    // do not overlap vertically
    const range = document.createRange();
    range.selectNodeContents(node);
    const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0 && r.height > 0)
      .sort((a, b) => a.top - b.top);
    let rows = 0;
    let bottom = -Infinity;
    for (const r of rects) {
      if (r.top >= bottom - 1) { rows += 1; bottom = r.bottom; } else bottom = Math.max(bottom, r.bottom);
    }
    return Math.max(1, rows);
  };
  return {
    navbarHeight: nav.getBoundingClientRect().height,
    viewportWidth: document.documentElement.clientWidth,
    items: items.filter((n) => n.offsetParent !== null).map((n) => {
      const b = n.getBoundingClientRect();
      return { id: n.id || n.className, text: n.textContent.trim().replace(/\\s+/g, ' '),
               x: b.left, y: b.top, w: b.width, h: b.height, lines: lines(n) };
    }),
  };
}"""

PATTERNS_JS = """() => Array.from(document.querySelectorAll('[pattern]')).map((n) => {
  const p = n.getAttribute('pattern');
  try { new RegExp('^(?:' + p + ')$', 'v'); return null; } catch (e) { return (n.id || n.name) + ': ' + p + ': ' + e.message; }
}).filter(Boolean)"""


def header_problems(page, where: str) -> list[str]:
    found = page.evaluate(HEADER_ITEMS_JS)
    items = found["items"]
    problems = []
    if len(items) < 8:
        problems.append(f"{where}: only {len(items)} header items visible")
    for item in items:
        if item["x"] < -0.5 or item["x"] + item["w"] > found["viewportWidth"] + 0.5:
            problems.append(f"{where}: {item['text']!r} is cut off at the window's edge")
        if item["lines"] != 1:
            problems.append(f"{where}: {item['text']!r} wraps onto {item['lines']} lines")
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            overlap_x = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            overlap_y = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if overlap_x > 0.5 and overlap_y > 0.5:
                problems.append(f"{where}: {a['text']!r} and {b['text']!r} overlap")
    # one row: every item's middle lies within every other item's height band (nothing stacked)
    middles = [it["y"] + it["h"] / 2 for it in items]
    tops = [it["y"] for it in items]
    bottoms = [it["y"] + it["h"] for it in items]
    if items and not (max(middles) < min(bottoms) and min(middles) > max(tops)):
        rows = sorted({round(m) for m in middles})
        problems.append(f"{where}: header items on more than one row (middles at {rows})")
    if found["navbarHeight"] > 80:
        problems.append(f"{where}: the header is {found['navbarHeight']:.0f} px high")
    return problems


def screen_paths(data_id: int, dataset_id: int, prep_id: int) -> list[str]:
    """Every screen, and the views inside the screens (forms, an item's page)."""
    paths = [s.path for s in SCREENS]
    paths += [
        f"data#/edit/{data_id}", "data#/new",
        "datasets#/new", f"datasets#/edit/{dataset_id}",
        "preprocessing#/new", f"preprocessing#/edit/{prep_id}", f"preprocessing#/history/{prep_id}",
        f"preprocessing#/run?data={data_id}&preprocessing={prep_id}",
        "training?new", "inference?new", "notebooks?new",
        "user-settings#webhook",
    ]
    return paths


@pytest.fixture(scope="module")
def seeded(platform):
    """A data entry and a dataset in the administrator's sandbox tenant, so lists have rows and dates."""
    token = platform.login("admin", platform.admin_password, 1)
    admin = TenantUser(platform, {"id": 1, "name": "sandbox"}, "admin", platform.admin_password, token)
    data = create_data(admin, f"layout-{uuid.uuid4().hex[:6]}", {"a.txt": b"a"}, memo="layout check")
    r = admin.api("POST", "/datasets", json={"name": f"layout-{uuid.uuid4().hex[:6]}",
                                             "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    dataset = r.json()
    r = admin.api("POST", "/preprocessings", json={"name": f"layout-{uuid.uuid4().hex[:6]}", "memo": "layout check"})
    assert r.status_code == 201, r.text
    return {"data": data, "dataset": dataset, "preprocessing": r.json()}


@pytest.mark.sqlite_only
@pytest.mark.parametrize("locale,lang", LANGUAGES)
def test_every_screen_keeps_its_header_on_one_line_without_errors(platform, browser, artifacts_dir, seeded,
                                                                  locale, lang):
    started = time.monotonic()
    context = browser.new_context(locale=locale, viewport={"width": SIZES[0][0], "height": SIZES[0][1]})
    page = context.new_page()
    errors: list[str] = []
    whole_lists: list[str] = []
    where = {"path": "sign-in"}
    page.on("console", lambda m: errors.append(f"{where['path']}: console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{where['path']}: page error: {e}"))

    def on_request(request):
        url = urlparse(request.url)
        if request.method == "GET" and LIST_ROUTES.search(url.path) and "perPage" not in parse_qs(url.query):
            whole_lists.append(f"{where['path']}: {url.path}?{url.query}")
    page.on("request", on_request)

    problems: list[str] = []
    try:
        # the hub's sign-in page in the browser's language
        page.goto(platform.service_url + "/")
        page.wait_for_selector("#username_input")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.locator("#login_submit")).to_have_value("Sign in" if lang == "en" else "サインイン")
        expect(page.locator('label[for="password_input"]')).to_have_text("Password:" if lang == "en" else "パスワード:")
        page.fill("#username_input", "admin")
        page.fill("#password_input", "not-the-password")
        page.click("#login_submit")
        expect(page.locator(".login_error")).to_have_text(
            "Invalid user name or password." if lang == "en" else "ユーザ名またはパスワードが正しくありません。")
        # the hub answers a wrong password with 403, which the browser logs: that one is expected
        errors[:] = [e for e in errors if "status of 403" not in e]
        page.screenshot(path=os.path.join(artifacts_dir, f"layout-{lang}-hub-login.png"))
        sign_in(page, platform, "admin", platform.admin_password)

        data_id, dataset_id = seeded["data"]["id"], seeded["dataset"]["id"]
        for path in screen_paths(data_id, dataset_id, seeded["preprocessing"]["id"]):
            where["path"] = path
            page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
            page.goto("about:blank")
            page.goto(platform.service_url + "/" + path)
            page.wait_for_selector("body[data-kqi-ready]")
            page.wait_for_load_state("networkidle")
            problems += [f"{path}: invalid pattern {p}" for p in page.evaluate(PATTERNS_JS)]
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                problems += header_problems(page, f"{path} at {width}x{height}")
                if (path, width) in SHOTS:
                    name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
                    page.screenshot(path=os.path.join(artifacts_dir, f"layout-{lang}-{name}-{width}.png"),
                                    animations="disabled")
            # a list screen has the one pager with the server's total
            if path in ("data", "datasets", "preprocessing", "training", "inference", "notebooks",
                        "admin/tenants", "admin/users", "admin/git", "admin/registries", "admin/nodes",
                        "admin/tensorboards", "tenant/members"):
                expect(page.locator(".kqi-pager .kqi-total").first).to_be_visible()

        # the hub's own password and sign-up pages speak the same language
        where["path"] = "hub/change-password"
        page.goto(platform.url + "/hub/change-password")
        expect(page.locator("#kqi-change-password h1")).to_have_text(
            "Change your password" if lang == "en" else "パスワード変更")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        where["path"] = "hub/signup"
        page.goto(platform.url + "/hub/signup")
        expect(page.locator("#signup_submit")).to_have_text("Sign up" if lang == "en" else "サインアップ")

        # dates follow the UI language, as the browser's own date inputs do
        page.goto(platform.service_url + "/data")
        page.wait_for_selector("body[data-kqi-ready]")
        cell = page.locator(f'#data-rows tr[data-id="{data_id}"] td.text-nowrap').first
        expect(cell).to_have_text(re.compile(r"^\d\d/\d\d/\d{4}" if lang == "en" else r"^\d{4}/\d\d/\d\d"))
        assert page.evaluate("KQI.dateFormatHint()") == ("mm/dd/yyyy" if lang == "en" else "yyyy/mm/dd")
    finally:
        context.close()
    assert not problems, "\n".join(problems)
    assert not errors, "\n".join(errors)
    assert not whole_lists, "list screens fetched whole lists:\n" + "\n".join(whole_lists)
    print(f"\nlayout check ({lang}): {time.monotonic() - started:.1f} s")


def test_sign_in_page_labels_exist_in_both_languages():
    from kqi_services.hubext.login_page import login_language, translate_login_error
    from kqi_services.ui.i18n_login import EN, HUB_MESSAGES, JA

    assert set(EN) == set(JA) and set(HUB_MESSAGES.values()) <= set(EN)
    assert login_language("ja-JP,ja;q=0.9,en;q=0.8") == "ja"
    assert login_language("en-US,en;q=0.9,ja;q=0.8") == "en"
    assert login_language(None) == "en"
    assert translate_login_error("Invalid username or password", "ja") == JA["login.error.invalid"]
    assert translate_login_error("Something else", "ja") == "Something else"
    assert translate_login_error("Passwords need at least 8 characters.", "ja") == "パスワードは8文字以上にしてください。"
    assert translate_login_error("The current password is wrong.", "en") == "The current password is wrong."
