"""A training's own port in a real browser: the training serves a page with `python3 -m http.server`,
its detail page shows the port's link while it runs, and the link opens the page through the
authenticated proxy with the browser's hub sign-in (no token in the page)."""
from __future__ import annotations

import os
import uuid

import pytest
from playwright.sync_api import expect

from ..platform import wait_job
from ..test_job_ports import World, free_port, serve_entry
from .conftest import sign_in


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    return World(platform, str(tmp_path_factory.mktemp("ui-ports")))


@pytest.mark.sqlite_only
def test_the_port_link_opens_the_trainings_page(platform, browser, world, artifacts_dir):
    port = free_port()
    marker = f"browser-{uuid.uuid4().hex[:8]}"
    job_id = world.run("ui-serve", serve_entry(port, marker), [port])
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        wait_job(world.user, job_id, "Running", timeout=120)
        sign_in(page, platform, world.user.name, world.user.password, f"/training?id={job_id}")
        link = page.locator(f'a.kqi-port-link[data-port="{port}"]')
        expect(link).to_be_visible(timeout=20000)
        assert link.get_attribute("href") == f"/services/kqi/proxy/training/{job_id}/{port}/"
        page.screenshot(path=os.path.join(artifacts_dir, "ui-job-ports-detail.png"), full_page=True,
                        animations="disabled")
        for _ in range(60):  # the server in the training may still be starting
            with context.expect_page() as opened:
                link.click()
            served = opened.value
            served.wait_for_load_state()
            if marker in served.content():
                break
            served.close()
            page.wait_for_timeout(500)
        assert marker in served.content()
        assert served.url == f"{platform.service_url}/proxy/training/{job_id}/{port}/"
        served.screenshot(path=os.path.join(artifacts_dir, "ui-job-ports-served.png"))
        # the link goes away when the training ends
        world.user.api("POST", f"/training/{job_id}/halt")
        expect(page.locator("a.kqi-port-link")).to_have_count(0, timeout=20000)
    finally:
        context.close()
        world.user.api("POST", f"/training/{job_id}/halt")
