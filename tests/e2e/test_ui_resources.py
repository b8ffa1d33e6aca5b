"""The resource screens in a real browser: after a member's short training, the system
administrator's resource page lists the nodes, draws the usage chart (chart.js) with the
tenant's CPU hours and offers the CSVs; the tenant administrator's page shows their tenant;
the training form tells what the member can use now and whether the request would start."""
from __future__ import annotations

import os
import uuid

import pytest
from playwright.sync_api import expect

from ..platform import ModelRepo, create_data, tenant_user, wait_job
from .conftest import sign_in


@pytest.mark.sqlite_only
def test_resource_pages_chart_and_what_can_i_use(platform, browser, artifacts_dir, tmp_path):
    tenant = platform.create_tenant(limitCpu=4)
    user = tenant_user(platform, tenant=tenant)
    admin_name, admin_password = platform.create_user(admin_of=[tenant["name"]])
    repo = ModelRepo(platform, str(tmp_path / "work"), "res-ui", f"model-{uuid.uuid4().hex[:6]}", tenant=tenant)
    repo.commit({"README": "a model\n"}, "first")
    data = create_data(user, "input", {"x.txt": b"x"})
    r = user.api("POST", "/datasets", json={"name": "set", "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    r = user.api("POST", "/training/run", json={
        "name": "short", "dataSetId": r.json()["id"], "entryPoint": "sleep 2", "cpu": 1, "memory": 1, "gpu": 0,
        "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"gitId": 1, "owner": repo.owner, "repository": repo.name}})
    assert r.status_code == 201, r.text
    assert wait_job(user, r.json()["id"], ("Completed", "Failed", "Error", "Killed"), 180)["status"] == "Completed"

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1200})
    page = context.new_page()
    try:
        sign_in(page, platform, "admin", platform.admin_password, "/admin/resources")
        expect(page.locator("#kqi-res-nodes tbody tr").first).to_be_visible()
        row = page.locator("#kqi-usage-totals tbody tr", has_text=tenant["name"])
        expect(row).to_be_visible(timeout=20000)
        # the chart is chart.js's, with a dataset for the tenant
        labels = page.evaluate("() => Chart.getChart('kqi-usage-chart').data.datasets.map(d => d.label)")
        assert tenant["name"] in labels, labels
        assert "/api/v2/admin/resource/usage/csv?" in page.locator("#kqi-usage-csv").get_attribute("href")
        expect(page.locator("#kqi-history-csv")).to_be_visible()
        page.screenshot(path=os.path.join(artifacts_dir, "ui-resources-admin.png"), full_page=True,
                        animations="disabled")
        context.clear_cookies()

        # the tenant administrator: their tenant's page
        sign_in(page, platform, admin_name, admin_password, "/tenant/resources")
        expect(page.locator("#kqi-usage-totals tbody tr", has_text=tenant["name"])).to_be_visible(timeout=20000)
        expect(page.locator("#kqi-history-csv-box")).to_be_hidden()
        context.clear_cookies()

        # the member: the training form says what can be used now
        sign_in(page, platform, user.name, user.password, "/training?new")
        box = page.locator(".kqi-available")
        expect(box).to_contain_text("Tenant quota: cpu 4", timeout=20000)
        expect(box.locator(".kqi-available-outcome")).to_have_attribute("data-outcome", "startsNow")
        page.locator("#job-cpu").evaluate("(el) => { el.value = '9'; el.dispatchEvent(new Event('input')); }")
        expect(box.locator(".kqi-available-outcome")).to_have_attribute("data-outcome", "never", timeout=10000)
        expect(box).to_contain_text("over the tenant quota of 4")
    finally:
        context.close()
