"""The KQI sidebar of the lab extension in a real browser, inside a notebook that the platform
started (local spawner, podman; the extension is bound into every notebook): the sidebar opens,
the data list shows the tenant's data (and a tag search narrows it), a data's files open, files
selected in JupyterLab's file browser become a new data entry (with its progress bar), "Train
from here" is prefilled from the notebook's repository and dataset and names the uncommitted
change before it submits, the training appears in the trainings list and its log tab shows the
training's output while it runs, then the whole log once it ends. The notebook's facts and a
palette command, the datasets panel and the Japanese labels are looked at on the way.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from ..platform import (JupyterServer, ModelRepo, create_data, tenant_user, user_hub_token, wait_job,
                        wait_notebook)
from .conftest import sign_in

TRAIN_PY = """import time
for i in range(8):
    print(f"epoch {i} of the lab", flush=True)
    time.sleep(1.5)
"""


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"lab-extension-{name}.png"), animations="disabled")


def listing_item(lab, name):
    """A JupyterLab file browser entry by its exact name."""
    return lab.locator(".jp-DirListing-content .jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))


def dismiss_news(lab):
    """JupyterLab's first-start question about its news, in the way of the screenshots."""
    no = lab.locator(".jp-toast-button", has_text=re.compile("^No$"))
    try:
        no.wait_for(timeout=5000)
        no.click()
    except Exception:  # noqa: BLE001 - not asked this time
        pass


@pytest.mark.sqlite_only
def test_kqi_sidebar_in_a_notebook(platform, browser, tmp_path, artifacts_dir):
    user = tenant_user(platform)
    marker = uuid.uuid4().hex[:8]
    tag = f"lab-{marker}"
    data = create_data(user, f"lab-ui-{marker}", {"a.txt": b"alpha"}, tags=[tag])
    other = create_data(user, f"lab-ui-other-{marker}", {"b.txt": b"beta"})
    r = user.api("POST", "/datasets", json={"name": f"lab-ui-set-{marker}", "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    repo = ModelRepo(platform, str(tmp_path / "model"), "team", f"lab-ui-model-{marker}", tenant=user.tenant)
    commit = repo.commit({"train.py": TRAIN_PY}, "a model that prints as it trains")

    r = user.api("POST", "/notebook/run", json={
        "name": f"lab-ui-{marker}", "cpu": 1, "memory": 1, "gpu": 0, "expiresIn": 3600, "dataSetId": dataset_id,
        "gitModel": {"owner": repo.owner, "repository": repo.name}})
    assert r.status_code == 201, r.text
    notebook_id = r.json()["id"]
    context = None
    try:
        wait_notebook(platform, user.token, notebook_id, "Running", timeout=180)
        server = JupyterServer(platform, user.name, f"kqi-{notebook_id}", user_hub_token(platform, user.name, user.password))
        # files to register as data, and an uncommitted change in the model's work tree
        assert server.request("PUT", "/api/contents/upload-me", json={"type": "directory"}).status_code in (200, 201)
        for name, text in (("one.txt", "one\n"), ("two.csv", "x,y\n1,2\n")):
            assert server.write_text(f"upload-me/{name}", text).status_code in (200, 201)
        assert server.write_text("git/notes-from-lab.txt", "not committed\n").status_code in (200, 201)

        context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
        lab = context.new_page()
        sign_in(lab, platform, user.name, user.password)
        lab.goto(f"{platform.url}/user/{user.name}/kqi-{notebook_id}/lab")
        lab.wait_for_selector(".jp-LabShell", timeout=90000)
        dismiss_news(lab)

        # select the two files in the file browser
        if not lab.locator("#filebrowser").is_visible():
            lab.click('[data-id="filebrowser"]')
        listing_item(lab, "upload-me").dblclick()
        expect(listing_item(lab, "one.txt")).to_be_visible(timeout=30000)
        listing_item(lab, "one.txt").click()
        listing_item(lab, "two.csv").click(modifiers=["Shift"])

        # the KQI sidebar: the tenant's data
        lab.click('[data-id="kqi-sidebar"]')
        side = lab.locator("#kqi-sidebar")
        rows = side.locator(".kqi-data-list .kqi-data")
        expect(rows).to_have_count(2, timeout=30000)
        expect(side.locator(f'.kqi-data[data-data-id="{data["id"]}"] .kqi-data-name')).to_have_text(
            f"{data['id']}:{data['name']}")
        expect(side.locator(f'.kqi-data[data-data-id="{other["id"]}"] .kqi-data-name')).to_have_text(
            f"{other['id']}:{other['name']}")
        shot(lab, artifacts_dir, "data")
        side.locator(".kqi-data-search").fill(f"tag:{tag}")
        side.locator(".kqi-data-search-button").click()
        expect(rows).to_have_count(1)
        side.locator(".kqi-data-name").click()
        expect(side.locator(".kqi-data .kqi-file")).to_have_attribute("data-file-name", "a.txt")

        # "register as data" on the file browser's selection, with its progress
        side.locator(".kqi-register").click()
        expect(side.locator(".kqi-register-paths")).to_have_text("Selected: upload-me/one.txt, upload-me/two.csv")
        new_name = f"lab-upload-{marker}"
        side.locator(".kqi-register-name").fill(new_name)
        side.locator(".kqi-register-tags").fill("from-lab")
        side.locator(".kqi-register-submit").click()
        done = side.locator(".kqi-register-form .kqi-message-success")
        expect(done).to_have_text(re.compile(r"^Registered as data \d+\.$"), timeout=60000)
        expect(side.locator(".kqi-progress")).to_have_attribute("data-state", "done")
        assert side.locator(".kqi-register-progress").evaluate("p => p.value") == 100
        new_id = int(re.search(r"\d+", done.inner_text()).group())
        shot(lab, artifacts_dir, "register")
        r = user.api("GET", f"/data/{new_id}")
        assert r.status_code == 200 and r.json()["name"] == new_name and r.json()["tags"] == ["from-lab"], r.text
        files = {f["fileName"]: f["fileSize"] for f in user.api("GET", f"/data/{new_id}/files").json()}
        assert files == {"one.txt": 4, "two.csv": 8}, files
        side.locator(".kqi-register-close").click()
        side.locator(".kqi-data-search").fill("")
        side.locator(".kqi-data-search-button").click()
        expect(rows).to_have_count(3)

        # the datasets: entries by area and the lock state (the notebook uses this one)
        side.locator('.kqi-tab[data-tab="datasets"]').click()
        dataset_row = side.locator(f'.kqi-dataset[data-dataset-id="{dataset_id}"]')
        dataset_row.locator(".kqi-dataset-name").click()
        details = user.api("GET", f"/datasets/{dataset_id}").json()
        expect(dataset_row.locator(".kqi-dataset-details")).to_have_attribute(
            "data-locked", "true" if details["isLocked"] else "false", timeout=30000)
        expect(dataset_row.locator('.kqi-area[data-area="training"] li')).to_have_text(f"{data['id']}:{data['name']}")
        expect(dataset_row.locator('.kqi-area[data-area="training"] .kqi-area-name')).to_have_text("training (1)")

        # the notebook's own facts
        side.locator('.kqi-tab[data-tab="notebook"]').click()
        expect(side.locator('.kqi-facts dd[data-key="dataset"]')).to_have_text(str(dataset_id))
        expect(side.locator('.kqi-facts dd[data-key="notebook"]')).to_have_text(str(notebook_id))
        expect(side.locator('.kqi-facts dd[data-key="time-left"]')).to_have_text(re.compile(r"^(5\d|60) min \d+ s$|^1 h 0 min$"))

        # "Train from here" through the command palette, prefilled from the notebook
        lab.locator("#jp-main-dock-panel").click(position={"x": 600, "y": 400})
        lab.keyboard.press("Control+Shift+C")
        lab.locator(".lm-CommandPalette-input").fill("Train from here")
        lab.locator(".lm-CommandPalette-item", has_text="Train from here").first.click()
        expect(side.locator(".kqi-tab-active")).to_have_text("Train from here")
        expect(side.locator(".kqi-train-commit")).to_have_text(commit[:10], timeout=30000)
        expect(side.locator(".kqi-train-dataSetId")).to_have_value(str(dataset_id))
        expect(side.locator(".kqi-dirty")).to_contain_text("notes-from-lab.txt")
        train_name = f"lab-train-{marker}"
        side.locator(".kqi-train-name").fill(train_name)
        side.locator(".kqi-train-entryPoint").fill("python3 -u train.py")
        shot(lab, artifacts_dir, "train-form")
        side.locator(".kqi-train-submit").click()
        # the service refuses while the work tree has the change: named again, then sent anyway
        expect(side.locator(".kqi-train-submit-anyway")).to_be_visible(timeout=30000)
        expect(side.locator(".kqi-dirty")).to_contain_text("notes-from-lab.txt")
        shot(lab, artifacts_dir, "train-dirty")
        side.locator(".kqi-train-submit-anyway").click()

        # the trainings list, then the log tab that follows the running training
        expect(side.locator(".kqi-tab-active")).to_have_text("Trainings", timeout=30000)
        job_row = side.locator(".kqi-job", has=lab.locator(".kqi-job-name", has_text=train_name))
        expect(job_row).to_have_count(1, timeout=30000)
        training_id = int(job_row.get_attribute("data-job-id"))
        job = user.api("GET", f"/training/{training_id}").json()
        assert job["name"] == train_name and job["gitModel"]["commitId"] == commit, job
        assert job["gitModel"]["repository"] == repo.name and job["gitModel"]["owner"] == repo.owner, job
        assert job["dataSet"]["id"] == dataset_id, job
        job_row.locator(".kqi-job-log").click()
        log_view = lab.locator(f'.kqi-LogView[data-job-id="{training_id}"]')
        log = log_view.locator(".kqi-LogView-log")
        expect(log).to_contain_text("epoch 1 of the lab", timeout=120000)
        # shown while it runs: the tab still follows and the training has lines left to print
        assert log_view.get_attribute("data-following") == "true"
        assert "epoch 7 of the lab" not in log.inner_text()
        expect(job_row.locator(".kqi-status")).to_have_text("Running", timeout=10000)
        shot(lab, artifacts_dir, "log-running")
        expect(log).to_contain_text("epoch 7 of the lab", timeout=60000)
        expect(log_view).to_have_attribute("data-state", "ended", timeout=30000)
        expect(log_view.locator(".kqi-LogView-state")).to_have_text("The job has ended; this is the whole log.")
        assert wait_job(user, training_id, ("Completed", "Failed", "Error"), timeout=30)["status"] == "Completed"
        text = log.inner_text()
        assert [line for line in text.splitlines() if "of the lab" in line] == [f"epoch {i} of the lab" for i in range(8)]
        expect(job_row.locator(".kqi-status")).to_have_text("Completed", timeout=15000)
        shot(lab, artifacts_dir, "log-ended")

        # the same sidebar in Japanese for a browser that asks for it (as the web UI's labels)
        ja = browser.new_context(locale="ja-JP", viewport={"width": 1400, "height": 900})
        try:
            page = ja.new_page()
            sign_in(page, platform, user.name, user.password)
            page.goto(f"{platform.url}/user/{user.name}/kqi-{notebook_id}/lab")
            page.wait_for_selector(".jp-LabShell", timeout=90000)
            dismiss_news(page)
            if not page.locator("#kqi-sidebar").is_visible():
                page.click('[data-id="kqi-sidebar"]')
            side_ja = page.locator("#kqi-sidebar")
            expect(side_ja.locator('.kqi-tab[data-tab="data"]')).to_have_text("データ")
            expect(side_ja.locator(".kqi-register")).to_have_text("選択したファイルをデータ登録")
            side_ja.locator('.kqi-tab[data-tab="training"]').click()
            row_ja = side_ja.locator(f'.kqi-job[data-job-id="{training_id}"]')
            expect(row_ja.locator(".kqi-job-log")).to_have_text("ログ", timeout=30000)
            expect(row_ja.locator(".kqi-job-halt")).to_have_count(0)
            shot(page, artifacts_dir, "ja")
        finally:
            ja.close()
    finally:
        if context is not None:
            context.close()
        user.api("POST", f"/notebook/{notebook_id}/halt")
