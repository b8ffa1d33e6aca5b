"""The notebook screen (ノートブック管理) in a real browser against a real KQI Hub: a notebook
created from the web form with a dataset, a model repository and a training to mount; once
Running, the "open notebook" link opens JupyterLab, whose file browser (home /kqi/output)
shows the links input, git and parent (and not inference: none was mounted), with the
dataset and the model inside; then stop and re-run from the list.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from ..platform import ModelRepo, create_data, tenant_user, wait_job, wait_notebook
from .conftest import sign_in


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-notebooks-{name}.png"), full_page=True, animations="disabled")


def listing_item(lab, name):
    """A JupyterLab file browser entry by its exact name."""
    return lab.locator(".jp-DirListing-content .jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))


@pytest.mark.sqlite_only
def test_create_open_stop_and_rerun_a_notebook(platform, browser, tmp_path, artifacts_dir):
    user = tenant_user(platform)
    repo = ModelRepo(platform, str(tmp_path / "work"), "team", f"ui-nb-model-{uuid.uuid4().hex[:8]}",
                     tenant=user.tenant)
    repo.commit({"README.md": "the notebook's model\n", "src/model.py": "WEIGHTS = 3\n"}, "a model")
    data = create_data(user, "ui-nb-data", {"a.txt": b"alpha"})
    r = user.api("POST", "/datasets", json={"name": "ui-nb-set", "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    dataset = r.json()
    r = user.api("POST", "/training/run", json={
        "name": "ui-nb-parent", "entryPoint": "mkdir -p /kqi/output/weights && echo 3 > /kqi/output/weights/w.txt",
        "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": dataset["id"],
        "gitModel": {"owner": repo.owner, "repository": repo.name}, "cpu": 1, "memory": 1, "gpu": 0})
    assert r.status_code == 201, r.text
    training_id = r.json()["id"]
    assert wait_job(user, training_id, ("Completed", "Failed", "Error"), timeout=90)["status"] == "Completed"

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    notebook_id = None
    try:
        sign_in(page, platform, user.name, user.password, "/notebooks")
        expect(page.locator("#nb-rows")).to_contain_text("No notebooks yet.")
        page.click("#nb-new")
        page.wait_for_url("**/notebooks?new")
        page.wait_for_selector("body[data-kqi-form-ready]")

        # the guide's table; this tenant does not allow notebooks without a lifetime
        expect(page.locator("#nb-lifetime-on")).to_be_checked()
        expect(page.locator("#nb-lifetime-on")).to_be_disabled()
        expect(page.locator("#nb-lifetime-help")).to_have_text("This tenant needs a lifetime for every notebook.")
        page.fill("#nb-name", "Bad Name")
        page.click("#nb-submit")
        expect(page.locator("#nb-name")).to_have_class(re.compile(r"\bis-invalid\b"))
        name = f"ui-nb-{uuid.uuid4().hex[:6]}"
        page.fill("#nb-name", name)
        page.fill("#nb-cpu", "1")
        page.fill("#nb-memory", "1")
        page.fill("#nb-gpu", "0")
        page.fill("#nb-lifetime", "2")
        page.select_option("#nb-dataset", str(dataset["id"]))
        page.fill("#nb-repo", f"{repo.owner}/{repo.name}")
        page.locator("#nb-repo").blur()
        expect(page.locator("#nb-branch")).to_have_value("master")
        page.check(f"#nb-parents-{training_id}")
        page.fill("#nb-memo", "from the browser")
        shot(page, artifacts_dir, "form")
        page.click("#nb-submit")

        # the list: Pending, then Running with the "open notebook" link
        page.wait_for_url(re.compile(r".*/notebooks$"), timeout=60000)
        page.wait_for_selector("body[data-kqi-ready]")
        row = page.locator("#nb-rows tr[data-notebook-id]")
        expect(row).to_have_count(1)
        notebook_id = int(row.get_attribute("data-notebook-id"))
        expect(row.locator(".kqi-status")).to_have_attribute("data-status", "Running", timeout=90000)
        expect(row.locator(".kqi-notebook-name")).to_have_text(name)
        expect(row).to_contain_text("from the browser")
        expect(row).to_contain_text(f"{dataset['id']}:ui-nb-set")
        link = row.locator("a.kqi-open-notebook")
        expect(link).to_have_text("Open notebook")
        expect(link).to_have_attribute("href", f"/user/{user.name}/kqi-{notebook_id}/lab")
        shot(page, artifacts_dir, "list-running")

        # JupyterLab through the link: the home /kqi/output holds the links to the /kqi folders
        with context.expect_page() as opened:
            link.click()
        lab = opened.value
        lab.wait_for_selector(".jp-LabShell", timeout=60000)
        for folder in ("input", "git", "parent"):
            expect(listing_item(lab, folder)).to_be_visible(timeout=30000)
        expect(listing_item(lab, "inference")).to_have_count(0)
        shot(lab, artifacts_dir, "jupyterlab-home")
        listing_item(lab, "git").dblclick()
        expect(listing_item(lab, "README.md")).to_be_visible(timeout=15000)
        expect(listing_item(lab, "src")).to_be_visible()
        lab.locator(".jp-BreadCrumbs-home").click()
        listing_item(lab, "input").dblclick()
        expect(listing_item(lab, "training")).to_be_visible(timeout=15000)
        listing_item(lab, "training").dblclick()
        expect(listing_item(lab, str(data["id"]))).to_be_visible(timeout=15000)
        lab.locator(".jp-BreadCrumbs-home").click()
        listing_item(lab, "parent").dblclick()
        expect(listing_item(lab, "weights")).to_be_visible(timeout=15000)
        shot(lab, artifacts_dir, "jupyterlab-parent")
        lab.close()

        # the notebook's page
        page.goto(f"{platform.service_url}/notebooks?id={notebook_id}")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#nb-title")).to_have_text(f"{notebook_id}:{name}")
        expect(page.locator("#nb-actions a.kqi-open-notebook")).to_be_visible()
        expect(page.locator('#nb-info dd[data-key="jobs.parents_to_mount"]')).to_have_text(f"{training_id}:ui-nb-parent")
        expect(page.locator('#nb-info dd[data-key="jobs.dataset"]')).to_have_text(f"{dataset['id']}:ui-nb-set")
        expect(page.locator('#nb-info dd[data-key="jobs.repository"]')).to_have_text(f"{repo.owner}/{repo.name}")
        expect(page.locator('#nb-info dd[data-key="notebooks.lifetime_hours"]')).to_have_text("2")
        shot(page, artifacts_dir, "detail")

        # stop it from the list
        page.goto(f"{platform.service_url}/notebooks")
        page.wait_for_selector("body[data-kqi-ready]")
        row = page.locator(f'#nb-rows tr[data-notebook-id="{notebook_id}"]')
        row.locator(".kqi-stop-notebook").click()
        expect(row.locator(".kqi-status")).to_have_attribute("data-status", "Killed", timeout=30000)
        expect(page.locator("#nb-list-messages .alert-success")).to_have_text(
            f"The notebook {notebook_id}:{name} was stopped.")
        expect(row.locator("a.kqi-open-notebook")).to_have_count(0)
        expect(row.locator(".kqi-rerun-notebook")).to_be_visible()
        token = platform.login(user.name, user.password)
        assert wait_notebook(platform, token, notebook_id, "Killed", timeout=10)["conditionNote"] == "halted by the user"
        shot(page, artifacts_dir, "list-stopped")

        # and run it again with the same conditions
        row.locator(".kqi-rerun-notebook").click()
        expect(row.locator(".kqi-status")).to_have_attribute("data-status", re.compile("Pending|Running"), timeout=60000)
        expect(page.locator("#nb-list-messages .alert-success")).to_have_text(
            f"The notebook {notebook_id}:{name} is starting again.")
        again = user.api("GET", f"/notebook/{notebook_id}").json()
        assert again["status"] in ("Pending", "Running") and again["dataSetId"] == dataset["id"]
        assert again["parentIds"] == [training_id] and again["expiresIn"] == 7200
    finally:
        context.close()
        if notebook_id is not None:
            user.api("POST", f"/notebook/{notebook_id}/halt")
