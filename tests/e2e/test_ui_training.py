"""The training screen (学習管理) in a real browser against a real KQI Hub: a training made
through the four-step form (with a refused first try), its live log growing on the detail
page, the file list while it runs, output.zip and the log downloaded from the page and
checked, the list with its filters, copy-run prefilled, and halt then delete of a running one.
"""
from __future__ import annotations

import io
import os
import re
import uuid
import zipfile

import pytest
from playwright.sync_api import expect

from ..platform import ModelRepo, create_data, tenant_user, wait_job
from .conftest import sign_in

# The model: prints a line every half second (the page follows them) and writes /kqi/output
# (progress.txt at once, model/weights.txt at the end, with what it read from /kqi/input).
TRAIN_PY = r'''
import os, time

inputs = {}
for dirpath, _dirs, files in os.walk("/kqi/input"):
    for name in files:
        full = os.path.join(dirpath, name)
        inputs[os.path.relpath(full, "/kqi/input")] = open(full).read()
os.makedirs("/kqi/output", exist_ok=True)
with open("/kqi/output/progress.txt", "w") as f:
    f.write("started\n")
print("inputs:", sorted(inputs), flush=True)
for epoch in range(1, 13):
    print(f"epoch {epoch} loss {1 / epoch:.4f}", flush=True)
    time.sleep(0.5)
os.makedirs("/kqi/output/model", exist_ok=True)
with open("/kqi/output/model/weights.txt", "w") as f:
    f.write(os.environ["MY_GREETING"] + " " + os.environ["TRAINING_ID"] + "\n")
    for key in sorted(inputs):
        f.write(f"{key}={inputs[key]}\n")
print("training finished", flush=True)
'''


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-training-{name}.png"), full_page=True, animations="disabled")


def page_log(page) -> str:
    return page.locator("#job-log").evaluate("el => el.textContent")


def status_of(page) -> str:
    return page.locator("#job-status .kqi-status").get_attribute("data-status")


@pytest.fixture(scope="module")
def env(platform, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ui-training"))
    user = tenant_user(platform)
    repo = ModelRepo(platform, os.path.join(tmp, "work"), "team", f"ui-model-{uuid.uuid4().hex[:8]}",
                     tenant=user.tenant)
    first = repo.commit({"train.py": "print('an older model')\n"}, "older model")
    commit = repo.commit({"train.py": TRAIN_PY}, "the model")
    data = create_data(user, "ui-train-data", {"a.txt": b"alpha"})
    r = user.api("POST", "/datasets", json={"name": "ui-train-set", "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    return {"user": user, "repo": repo, "commit": commit, "older": first, "data": data, "dataset": r.json(),
            "tmp": tmp}


@pytest.mark.sqlite_only
def test_four_step_form_live_log_and_downloads(platform, browser, env, artifacts_dir):
    user, repo, dataset = env["user"], env["repo"], env["dataset"]
    name = f"ui-train-{uuid.uuid4().hex[:6]}"
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        sign_in(page, platform, user.name, user.password, "/training")
        expect(page.locator("#kqi-view-list")).to_be_visible()
        page.click("#job-new")
        page.wait_for_url("**/training?new")
        page.wait_for_selector("body[data-kqi-form-ready]")

        # step 1: the name is checked before going on
        page.click("#job-next")
        expect(page.locator("#job-name")).to_have_class(re.compile(r"\bis-invalid\b"))
        expect(page.locator("#job-step-2")).to_be_hidden()
        page.fill("#job-name", name)
        page.select_option("#job-dataset", str(dataset["id"]))
        expect(page.locator("#job-method-symlink")).to_be_checked()
        shot(page, artifacts_dir, "form-step1")
        page.click("#job-next")

        # step 2: image, model (the repository's branches and commits are listed), command
        expect(page.locator("#job-step-2")).to_be_visible()
        page.fill("#job-image", "python")
        page.fill("#job-tag", "3.11")
        expect(page.locator(f'#job-repo-list option[value="{repo.owner}/{repo.name}"]')).to_have_count(1)
        page.fill("#job-repo", f"{repo.owner}/{repo.name}")
        page.locator("#job-repo").blur()
        expect(page.locator("#job-branch option[value=master]")).to_have_count(1)
        expect(page.locator("#job-branch")).to_have_value("master")
        expect(page.locator(f'#job-commit option[value="{env["older"]}"]')).to_have_count(1)
        page.select_option("#job-commit", env["commit"])
        page.fill("#job-entry", "python3 -u train.py")
        shot(page, artifacts_dir, "form-step2")
        page.click("#job-next")

        # step 3: resources
        expect(page.locator("#job-step-3")).to_be_visible()
        page.fill("#job-cpu", "1")
        page.fill("#job-memory", "1")
        page.fill("#job-gpu", "0")
        page.click("#job-next")

        # step 4: a variable the platform sets is refused by the API: the form shows why
        expect(page.locator("#job-step-4")).to_be_visible()
        page.click("#job-env-add")
        page.locator(".kqi-env-key").last.fill("KQI_TOKEN")
        page.locator(".kqi-env-value").last.fill("mine")
        page.click("#job-env-add")
        page.locator(".kqi-env-key").last.fill("MY_GREETING")
        page.locator(".kqi-env-value").last.fill("hello-from-ui")
        page.fill("#job-tags", "ui, e2e")
        page.fill("#job-memo", "made in the browser")
        expect(page.locator("#job-zip")).to_be_checked()
        before = len(user.api("GET", "/training").json())
        page.click("#job-submit")
        expect(page.locator("#job-form-messages .alert-danger")).to_contain_text("KQI_TOKEN is set by the platform")
        expect(page.locator("#job-step-4")).to_be_visible()
        assert len(user.api("GET", "/training").json()) == before
        shot(page, artifacts_dir, "form-refused")
        page.locator(".kqi-env-remove").first.click()
        expect(page.locator(".kqi-env-row")).to_have_count(1)
        page.click("#job-submit")

        # the detail page: the log grows while it runs
        page.wait_for_url(re.compile(r".*/training\?id=\d+$"))
        job_id = int(page.url.rsplit("=", 1)[1])
        expect(page.locator("#job-title")).to_have_text(f"{job_id}:{name}")
        expect(page.locator("#job-log")).to_contain_text("epoch 2", timeout=30000)
        early = page_log(page)
        assert "training finished" not in early, early
        assert status_of(page) == "Running"
        # the file list while it runs: progress.txt is there, the model not yet
        expect(page.locator('#job-cfile-rows tr.kqi-cfile[data-name="progress.txt"]')).to_be_visible(timeout=10000)
        assert status_of(page) == "Running"
        expect(page.locator('#job-cfile-rows tr.kqi-cfile-dir[data-name="model"]')).to_have_count(0)
        expect(page.locator("#job-halt")).to_be_visible()
        shot(page, artifacts_dir, "detail-running")
        expect(page.locator("#job-log")).to_contain_text("epoch 8", timeout=20000)
        assert page_log(page).startswith(early)  # followed, not reloaded

        expect(page.locator("#job-status .kqi-status")).to_have_attribute("data-status", "Completed", timeout=60000)
        expect(page.locator("#job-log")).to_contain_text("training finished")
        expect(page.locator("#job-log-state")).to_have_text("complete")
        expect(page.locator("#job-halt")).to_be_hidden()
        expect(page.locator("#job-delete")).to_be_visible()
        expect(page.locator('#job-state dd[data-key="jobs.exit_code"]')).to_have_text("0")
        expect(page.locator('#job-info dd[data-key="jobs.commit"]')).to_have_text(env["commit"])
        expect(page.locator('#job-info dd[data-key="jobs.env"]')).to_have_text("MY_GREETING=hello-from-ui")
        expect(page.locator('#job-cfile-rows tr.kqi-cfile-dir[data-name="model"]')).to_be_visible()
        shot(page, artifacts_dir, "detail-completed")

        # output.zip and the log, downloaded from the page
        with page.expect_download() as info:
            page.click('#job-file-rows a.kqi-download[data-file-name="output.zip"]')
        download = info.value
        assert download.suggested_filename == "output.zip"
        archive = zipfile.ZipFile(io.BytesIO(open(download.path(), "rb").read()))
        names = set(archive.namelist())
        assert {"progress.txt", "model/weights.txt"} <= names, names
        weights = archive.read("model/weights.txt").decode()
        assert weights == f"hello-from-ui {job_id}\ntraining/{env['data']['id']}/a.txt=alpha\n", weights

        with page.expect_download() as info:
            page.click("#job-log-download")
        assert info.value.suggested_filename == f"training_stdout_stderr_{job_id}.log"
        log = open(info.value.path(), encoding="utf-8").read()
        assert "epoch 12 loss 0.0833" in log and "training finished" in log
        assert log == page_log(page)  # the page showed the whole log, nothing more

        # what the form sent is what the platform ran
        job = wait_job(user, job_id, "Completed")
        assert job["gitModel"]["commitId"] == env["commit"]
        assert job["gitModel"]["owner"] == repo.owner and job["gitModel"]["repository"] == repo.name
        assert job["containerImage"]["image"] == "python" and job["containerImage"]["tag"] == "3.11"
        assert job["options"] == [{"key": "MY_GREETING", "value": "hello-from-ui"}]
        assert sorted(job["tags"]) == ["e2e", "ui"] and job["memo"] == "made in the browser"
        assert job["dataSet"]["id"] == dataset["id"] and job["zip"] is True and job["localDataSet"] is False

        # name, tags, memo and favorite can change afterwards
        page.fill("#job-edit-memo", "edited in the browser")
        page.fill("#job-edit-tags", "ui, best")
        page.check("#job-edit-favorite")
        page.click("#job-edit-save")
        expect(page.locator("#job-edit-messages .alert-success")).to_have_text("Saved.")
        expect(page.locator('#job-info dd[data-key="common.memo"]')).to_have_text("edited in the browser")
        job = user.api("GET", f"/training/{job_id}").json()
        assert job["memo"] == "edited in the browser" and sorted(job["tags"]) == ["best", "ui"] and job["favorite"]
        page.fill("#job-edit-name", "Not A Name")
        page.click("#job-edit-save")
        expect(page.locator("#job-edit-name")).to_have_class(re.compile(r"\bis-invalid\b"))
        assert user.api("GET", f"/training/{job_id}").json()["name"] == name

        # the list, with filters
        page.click("#job-back-list")
        page.wait_for_selector("body[data-kqi-ready]")
        row = page.locator(f'#job-rows tr[data-job-id="{job_id}"]')
        expect(row.locator(".kqi-status")).to_have_attribute("data-status", "Completed")
        expect(row).to_contain_text(f"{dataset['id']}:ui-train-set")
        expect(row.locator(".kqi-job-name + span")).to_have_text("★")
        page.fill("#filter-name", name)
        page.click("#job-filter-apply")
        expect(page.locator("#job-rows tr[data-job-id]")).to_have_count(1)
        page.select_option("#filter-status", "Failed")
        page.click("#job-filter-apply")
        expect(page.locator("#job-rows")).to_contain_text("Nothing matches these filters.")
        page.click("#job-filter-clear")
        expect(row).to_be_visible()
        shot(page, artifacts_dir, "list")

        # copy-run: the form comes prefilled with the old training
        page.goto(f"{platform.service_url}/training?id={job_id}")
        page.wait_for_selector("body[data-kqi-ready]")
        page.click("#job-copy")
        page.wait_for_url(f"**/training?copy={job_id}")
        page.wait_for_selector("body[data-kqi-form-ready]")
        expect(page.locator("#job-form-title")).to_have_text("Run a copy of a training")
        expect(page.locator("#job-name")).to_have_value(name)
        expect(page.locator("#job-dataset")).to_have_value(str(dataset["id"]))
        expect(page.locator("#job-memo")).to_have_value("edited in the browser")
        page.click("#job-step-2-tab")
        expect(page.locator("#job-repo")).to_have_value(f"{repo.owner}/{repo.name}")
        expect(page.locator("#job-commit")).to_have_value(env["commit"])
        expect(page.locator("#job-entry")).to_have_value("python3 -u train.py")
        page.click("#job-step-4-tab")
        expect(page.locator(".kqi-env-key")).to_have_value("MY_GREETING")
        expect(page.locator("#job-tags")).to_have_value("best, ui")  # as the API keeps them
        shot(page, artifacts_dir, "copy-form")
    finally:
        context.close()


@pytest.mark.sqlite_only
def test_queue_position_halt_and_delete_from_the_detail_page(platform, browser, env, artifacts_dir):
    """With a tenant quota of 1 CPU, a second job waits: its page shows its place in the queue
    and why; halting the first (in Japanese) and deleting it lets the second one run."""
    user, repo = env["user"], env["repo"]
    admin = platform.admin_token()
    r = platform.api("POST", "/admin/quotas", admin, json=[{"tenantId": user.tenant["id"], "cpu": 1, "memory": 0, "gpu": 0}])
    assert r.status_code == 200, r.text

    def run(name):
        r = user.api("POST", "/training/run", json={
            "name": name, "entryPoint": "echo waiting; sleep 120", "dataSetId": env["dataset"]["id"],
            "containerImage": {"image": "python", "tag": "3.11"},
            "gitModel": {"owner": repo.owner, "repository": repo.name}, "cpu": 1, "memory": 1, "gpu": 0})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    first = run("ui-long")
    wait_job(user, first, "Running", timeout=30)
    second = run("ui-waiting")
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    questions = []

    def answer(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    try:
        # the waiting one: its place in the queue and the reason
        sign_in(page, platform, user.name, user.password, f"/training?id={second}")
        expect(page.locator("#job-status .kqi-status")).to_have_attribute("data-status", "Queued")
        expect(page.locator('#job-state dd[data-key="jobs.queue_position"]')).to_have_text("1")
        expect(page.locator('#job-state dd[data-key="jobs.wait_reason"]')).to_contain_text("tenant quota: cpu 1 in use of 1")
        expect(page.locator("#job-log")).to_have_text("出力はまだありません。")
        expect(page.locator("#job-halt")).to_be_visible()
        shot(page, artifacts_dir, "queued-ja")

        # halt the running one
        page.goto(f"{platform.service_url}/training?id={first}")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#job-log")).to_contain_text("waiting", timeout=30000)
        expect(page.locator("#job-status .kqi-status")).to_have_attribute("data-status", "Running")
        expect(page.locator("#job-delete")).to_be_hidden()
        page.click("#job-halt")
        expect(page.locator("#job-status .kqi-status")).to_have_attribute("data-status", "Killed", timeout=20000)
        assert questions == [f"学習 {first}:ui-long を停止しますか?"]
        expect(page.locator("#job-detail-messages .alert-success")).to_have_text(f"{first}:ui-long を停止しました。")
        expect(page.locator('#job-state dd[data-key="jobs.condition"]')).to_have_text("halted by the user")
        expect(page.locator("#job-log-state")).to_have_text("完了")
        shot(page, artifacts_dir, "halted-ja")
        assert user.api("GET", f"/training/{first}").json()["status"] == "Killed"

        # delete it: back to the list, gone
        page.click("#job-delete")
        page.wait_for_url(re.compile(r".*/training$"))
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator(f'#job-rows tr[data-job-id="{first}"]')).to_have_count(0)
        assert questions[1] == f"{first}:ui-long を削除しますか? 元に戻せません。"
        assert user.api("GET", f"/training/{first}").status_code == 404

        # the waiting one got the CPU: its row turns Running without a reload
        row = page.locator(f'#job-rows tr[data-job-id="{second}"]')
        expect(row.locator(".kqi-status")).to_have_attribute("data-status", "Running", timeout=20000)
    finally:
        context.close()
        user.api("POST", f"/training/{second}/halt")
        platform.api("POST", "/admin/quotas", admin, json=[{"tenantId": user.tenant["id"], "cpu": 0, "memory": 0, "gpu": 0}])
