"""The web shell (シェル起動) in a real browser against a real KQI Hub: the "Shell" button of a
running training's page opens an xterm.js terminal into its container; a command typed there
runs as root and its output shows in the terminal; the session is listed for the tenant's
administrator on the same page, and closed when the terminal is.
"""
from __future__ import annotations

import os
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from ..platform import ModelRepo, TenantUser, create_data, wait_job
from .conftest import sign_in


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-shell-{name}.png"), full_page=True, animations="disabled")


def terminal_text(page) -> str:
    return page.locator("#job-shell-terminal .xterm-rows").evaluate("el => el.innerText")


@pytest.mark.sqlite_only
def test_shell_of_a_running_training_from_its_page(platform, browser, tmp_path, artifacts_dir):
    tenant = platform.create_tenant()
    name, password = platform.create_user(admin_of=[tenant["name"]])
    user = TenantUser(platform, tenant, name, password, platform.login(name, password, tenant["id"]))
    repo = ModelRepo(platform, str(tmp_path / "work"), "team", f"ui-shell-{uuid.uuid4().hex[:8]}",
                     tenant=tenant)
    commit = repo.commit({"README.md": "shell\n"}, "a model")
    data = create_data(user, "ui-shell-data", {"a.txt": b"alpha"})
    r = user.api("POST", "/datasets", json={"name": "ui-shell-set", "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    r = user.api("POST", "/training/run", json={
        "name": "ui-shell", "entryPoint": "sleep 600", "dataSetId": r.json()["id"],
        "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
        "cpu": 0.2, "memory": 0.2, "gpu": 0})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        wait_job(user, job_id, ("Running",), timeout=120)
        sign_in(page, platform, user.name, user.password, f"/training?id={job_id}")
        button = page.locator("#job-shell-open")
        expect(button).to_be_visible(timeout=20000)
        expect(button).to_have_text("Shell")
        # a container just started may answer 409 for a moment: the page says so; try again
        deadline = time.monotonic() + 60
        while True:
            button.click()
            try:
                page.wait_for_selector("body[data-kqi-shell=open]", timeout=5000)
                break
            except Exception:
                assert time.monotonic() < deadline, page.locator("#job-shell-state").inner_text()
                page.locator("#job-shell-close").click()
        expect(page.locator("#job-shell-state")).to_have_text("Connected")
        page.locator("#job-shell-terminal").click()
        page.keyboard.type("echo hi-$((40+2)) from $(id -un)")
        page.keyboard.press("Enter")
        deadline = time.monotonic() + 30
        while "hi-42 from root" not in terminal_text(page):
            assert time.monotonic() < deadline, terminal_text(page)
            time.sleep(0.2)
        # the terminal fills its box: more than the 80 columns a terminal starts with
        page.keyboard.type("stty size")
        page.keyboard.press("Enter")
        expect(page.locator("#job-shell-terminal .xterm-rows")).to_contain_text(
            re.compile(r"stty size\s*\d+ \d{3,}"), timeout=10000)
        shot(page, artifacts_dir, "terminal")

        # the tenant administrator sees the session on the job's page
        rows = page.locator("#job-shell-sessions .kqi-shell-session")
        expect(rows.first).to_contain_text(user.name, timeout=10000)
        expect(rows.first).to_contain_text("open")
        page.locator("#job-shell-close").click()
        expect(page.locator("#job-shell")).to_be_hidden()
        deadline = time.monotonic() + 10
        while True:
            listed = user.api("GET", "/tenant/shell-sessions", params={"jobId": job_id}).json()
            if listed and listed[0]["closedAt"]:
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        assert listed[0]["userName"] == user.name and listed[0]["jobKind"] == "training"
        page.reload()
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#job-shell-sessions .kqi-shell-session").first).to_contain_text("closed by the user")
        shot(page, artifacts_dir, "sessions")
    finally:
        context.close()
        user.api("POST", f"/training/{job_id}/halt")
