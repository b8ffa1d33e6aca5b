"""The training page's TensorBoard card in a real browser: start it over the training and a second
one (time and trainings to add), see it running with its time left, open it through the proxy
with the browser's hub sign-in (its data read and a POST of its own sent from its page), stop it."""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from ..platform import wait_job
from ..test_tensorboard import World
from .conftest import sign_in


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    return World(platform, str(tmp_path_factory.mktemp("ui-tensorboard")))


@pytest.mark.sqlite_only
def test_start_open_and_stop_a_tensorboard(platform, browser, world, artifacts_dir):
    first = world.train("ui-tb-first", "loss", 1.0)
    second = world.train("ui-tb-second", "accuracy", 2.0)
    for job_id in (first, second):
        assert wait_job(world.user, job_id, ("Completed", "Failed", "Error"), timeout=180)["status"] == "Completed"
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        sign_in(page, platform, world.user.name, world.user.password, f"/training?id={first}")
        card = page.locator("#tb-card")
        expect(card).to_be_visible()
        expect(card.locator('.kqi-tb-status[data-status="None"]')).to_be_visible()
        expect(page.locator("#tb-open")).to_be_hidden()
        page.select_option("#tb-expires", str(3600))
        page.check(f"#tb-trainings-{second}")
        page.click("#tb-start")
        expect(card.locator('.kqi-tb-status[data-status="Running"]')).to_be_visible(timeout=60000)
        remaining = card.locator(".kqi-tb-remaining").text_content()
        assert remaining.startswith("0:5") or remaining.startswith("1:00"), remaining
        expect(card.locator(f'a[href$="?id={second}"]')).to_be_visible()
        open_link = page.locator("#tb-open")
        expect(open_link).to_be_visible()
        assert open_link.get_attribute("href") == f"/services/kqi/proxy/tensorboard/{first}/"
        page.screenshot(path=os.path.join(artifacts_dir, "ui-tensorboard-card.png"), full_page=True,
                        animations="disabled")

        with context.expect_page() as opened:
            open_link.click()
        board = opened.value
        board.wait_for_load_state()
        expect(board.locator("tb-webapp")).to_be_attached()
        runs = None
        for _ in range(60):
            runs = board.evaluate("fetch('data/runs').then(r => r.json())")
            if len(runs) == 2:
                break
            board.wait_for_timeout(500)
        assert sorted(runs) == sorted([f"{first}/.", f"{second}/."]), runs
        # TensorBoard's own POSTs come from its page (same site): accepted with the hub cookie
        status = board.evaluate("""() => {
            const form = new FormData();
            form.append('requests', JSON.stringify([{plugin: 'scalars', tag: 'loss'}]));
            return fetch('data/plugin/timeseries/timeSeries', {method: 'POST', body: form}).then(r => r.status);
        }""")
        assert status == 200, status
        board.screenshot(path=os.path.join(artifacts_dir, "ui-tensorboard-open.png"))
        board.close()

        page.click("#tb-stop")
        expect(card.locator('.kqi-tb-status[data-status="None"]')).to_be_visible(timeout=30000)
        expect(page.locator("#tb-open")).to_be_hidden()
        assert world.board(first).json()["status"] == "None"
    finally:
        context.close()
        world.user.api("DELETE", f"/training/{first}/tensorboard")


@pytest.mark.sqlite_only
def test_a_system_administrator_lists_and_stops_tensorboards(platform, browser, world, artifacts_dir):
    training = world.train("ui-tb-admin", "loss", 3.0)
    assert wait_job(world.user, training, ("Completed", "Failed", "Error"), timeout=180)["status"] == "Completed"
    r = world.user.api("PUT", f"/training/{training}/tensorboard", json={"expiresIn": 900})
    assert r.status_code == 200, r.text
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        sign_in(page, platform, "admin", platform.admin_password, "/admin/tensorboards")
        row = page.locator(f'#kqi-list-body tr[data-id="{training}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text(world.user.tenant["name"])
        expect(row).to_contain_text(world.user.name)
        page.screenshot(path=os.path.join(artifacts_dir, "ui-tensorboard-admin.png"), full_page=True,
                        animations="disabled")
        row.locator(".kqi-delete").click()
        expect(row).to_have_count(0)
        assert world.board(training).json()["status"] == "None"
    finally:
        context.close()
        world.user.api("DELETE", f"/training/{training}/tensorboard")
