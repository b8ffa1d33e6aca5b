"""The job environment screens in a real browser against a real KQI Hub: the system
administrator edits the system setting (a refused name first, nothing saved), and, as the
administrator of the sandbox tenant, its override on the tenant settings screen."""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from .conftest import sign_in


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-{name}.png"), full_page=True, animations="disabled")


def fill_row(page, prefix, index, name, value):
    row = page.locator(f"#{prefix}-rows tr.kqi-jobenv-row").nth(index)
    row.locator(".kqi-jobenv-name").fill(name)
    row.locator(".kqi-jobenv-value").fill(value)


@pytest.mark.sqlite_only
def test_system_admin_edits_the_job_environment(platform, browser, artifacts_dir):
    admin = platform.admin_token()
    before = platform.api("GET", "/admin/job-environment", admin).json()
    sandbox_before = platform.api("GET", "/admin/tenants/1/job-environment", admin).json()
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        sign_in(page, platform, "admin", platform.admin_password)
        page.click("#kqi-nav-admin")
        page.click("#kqi-nav-jobenv")
        page.wait_for_url("**/services/kqi/admin/job-environment")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("h1")).to_have_text("Job environment")
        prefix = "jobenv-system-env"

        # start from no variables
        remove = page.locator(f"#{prefix}-rows .kqi-jobenv-remove")
        while remove.count():  # (the tests' platform has the host's package index variables set)
            remove.first.click()
        expect(page.locator(f"#{prefix}-rows .kqi-jobenv-empty")).to_be_visible()

        # a reserved name is refused by the API, with its message; nothing is saved
        page.click(f"#{prefix}-add")
        fill_row(page, prefix, 0, "KQI_TOKEN", "x")
        page.select_option(f"#{prefix}-network", "bridge")
        page.click("#jobenv-system-save")
        expect(page.locator("#jobenv-system-messages .alert-danger")).to_contain_text("KQI_TOKEN")
        expect(page.locator('#jobenv-system-form .invalid-feedback[data-field="env"]')).to_contain_text(
            "set by the platform")
        assert platform.api("GET", "/admin/job-environment", admin).json()["networkMode"] == before["networkMode"]

        # two good variables and the bridge network
        fill_row(page, prefix, 0, "PIP_INDEX_URL", "https://pypi.example/simple")
        page.click(f"#{prefix}-add")
        fill_row(page, prefix, 1, "HTTPS_PROXY", "http://user:secret@proxy.example:3128")
        shot(page, artifacts_dir, "admin-job-environment")
        page.click("#jobenv-system-save")
        expect(page.locator("#jobenv-system-messages .alert-success")).to_have_text("Saved.")
        saved = platform.api("GET", "/admin/job-environment", admin).json()
        assert saved["env"] == {"PIP_INDEX_URL": "https://pypi.example/simple",
                                "HTTPS_PROXY": "http://user:secret@proxy.example:3128"}
        assert saved["networkMode"] == "bridge"

        # a fresh load shows what is stored
        page.reload()
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator(f"#{prefix}-network")).to_have_value("bridge")
        expect(page.locator(f"#{prefix}-rows .kqi-jobenv-name")).to_have_count(2)
        expect(page.locator(f"#{prefix}-rows .kqi-jobenv-name").first).to_have_value("PIP_INDEX_URL")

        # a tenant's override from the same screen: the effective result is shown
        page.select_option("#jobenv-tenant-select", "1")
        tenant_prefix = "jobenv-tenant-env"
        expect(page.locator(f"#{tenant_prefix}-network")).to_be_visible()
        page.select_option(f"#{tenant_prefix}-network", "none")
        page.click("#jobenv-tenant-save")
        expect(page.locator("#jobenv-tenant-messages .alert-success")).to_have_text("Saved.")
        expect(page.locator("#jobenv-tenant-effective .kqi-jobenv-effective-network")).to_have_text("none")
        expect(page.locator('#jobenv-tenant-effective tr[data-name="PIP_INDEX_URL"]')).to_be_visible()

        # the sandbox's administrator (admin) on the tenant settings screen
        page.click("#kqi-tenant-switcher")  # the tenant's administration is in the tenant menu
        page.click("#kqi-nav-tenant_settings")
        page.wait_for_url("**/services/kqi/tenant/settings")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("h1")).to_have_text("Settings of Sandbox")
        own = "tenant-jobenv-env"
        expect(page.locator(f"#{own}-network")).to_have_value("none")
        page.select_option(f"#{own}-network", "")
        page.click(f"#{own}-add")
        fill_row(page, own, 0, "PIP_INDEX_URL", "https://sandbox.example/simple")
        page.click("#tenant-jobenv-save")
        expect(page.locator("#tenant-jobenv-messages .alert-success")).to_have_text("Saved.")
        expect(page.locator("#tenant-jobenv-effective .kqi-jobenv-effective-network")).to_have_text("bridge")
        expect(page.locator('#tenant-jobenv-effective tr[data-name="PIP_INDEX_URL"]')).to_contain_text(
            "https://sandbox.example/simple")
        shot(page, artifacts_dir, "tenant-settings")
        r = platform.api("GET", "/admin/tenants/1/job-environment", admin).json()
        assert r["env"] == {"PIP_INDEX_URL": "https://sandbox.example/simple"} and r["networkMode"] is None
    finally:
        context.close()
        platform.api("PUT", "/admin/job-environment", admin,
                     json={"env": before["env"], "networkMode": before["networkMode"]})
        platform.api("PUT", "/admin/tenants/1/job-environment", admin,
                     json={"env": sandbox_before["env"], "networkMode": sandbox_before["networkMode"]})
