"""The data and dataset screens in a real browser against a real KQI Hub (issue 3): register
a data with two files through the form (the browser runs the upload protocol in 16 MiB
slices, with a progress bar), download them back, search the list, then build a dataset by
drag and drop, copy it into a flat one; and the Japanese labels of these screens."""
from __future__ import annotations

import datetime
import hashlib
import os
import re
import uuid

import subprocess

import pytest
from playwright.sync_api import expect

from ..platform import create_data, tenant_user
from .conftest import sign_in

MIB = 1024 * 1024


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-{name}.png"), full_page=True, animations="disabled")


def wait_view(page, view):
    page.wait_for_selector(f'body[data-kqi-view="{view}"]')


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def start_training_on(user, platform, dataset_id: int, work: str) -> int:
    """A training that uses the dataset (which locks it): a one-commit repository of the seeded
    local git server and the command `true`."""
    git = ["git", "-c", "user.name=KQI UI Tests", "-c", "user.email=ui-tests@kqi.invalid",
           "-c", "init.defaultBranch=master", "-c", "commit.gpgsign=false"]
    owner, name = "ui-data", f"model-{uuid.uuid4().hex[:6]}"
    os.makedirs(work)
    with open(os.path.join(work, "README.md"), "w") as f:
        f.write("a model\n")
    for args in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "model"],
                 ["clone", "-q", "--bare", work,
                  os.path.join(platform.data_dir, "git", user.tenant["name"], owner, name + ".git")]):
        subprocess.run([*git, *args], cwd=work, check=True, capture_output=True, timeout=60)
    local_git = next(g for g in user.api("GET", "/tenant/git/endpoints").json()
                     if g["repositoryUrl"] == "file://" + os.path.join(platform.data_dir, "git"))
    r = user.api("POST", "/training/run", json={
        "name": "uses-the-dataset", "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": dataset_id,
        "gitModel": {"gitId": local_git["id"], "owner": owner, "repository": name, "branch": "master"},
        "entryPoint": "true", "cpu": 0.5, "memory": 0.5, "gpu": 0})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.sqlite_only
def test_register_data_with_two_files_and_build_a_dataset(platform, browser, artifacts_dir, tmp_path):
    user = tenant_user(platform)
    # one file over a part (17 MiB: two slices of the 16 MiB parts), one small with a Japanese name
    big = os.urandom(17 * MIB + 12345)
    small = "番号,名前\n1,<b>alpha</b>\n".encode()
    files = {"weights.bin": big, "サンプル 1.csv": small}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    data_name = f"ui-data-{uuid.uuid4().hex[:6]}"
    other = create_data(user, f"ui-other-{uuid.uuid4().hex[:6]}", {"other.txt": b"other data\n"}, tags=["spare"])

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        sign_in(page, platform, user.name, user.password, "/data")
        wait_view(page, "data-list")
        expect(page.locator("#data-list-view h1")).to_have_text("Data")
        expect(page.locator("#kqi-nav-data")).to_have_class("nav-link active")

        # ---------------------------------------------------------------- register
        page.click("#data-new")
        wait_view(page, "data-new")
        expect(page.locator("#data-edit-title")).to_have_text("Register data")
        page.fill("#data-name", data_name)
        page.fill("#data-memo", "two files <i>from the browser</i>")
        page.fill("#data-tag-input", "camera-1")
        page.keyboard.press("Enter")
        page.locator("#data-tag-input").press_sequentially("2026-11,")
        expect(page.locator("#data-tags .kqi-tag-chip")).to_have_count(2)
        page.set_input_files("#data-file-input", [str(tmp_path / n) for n in files])
        items = page.locator("#data-upload-list .kqi-upload-item")
        expect(items).to_have_count(2)
        expect(items.filter(has_text="weights.bin")).to_contain_text("17.0 MiB")
        expect(items.filter(has_text="サンプル 1.csv")).to_contain_text("Waiting")
        shot(page, artifacts_dir, "data-register")
        # every value the overall progress bar takes, from the page's side
        page.evaluate("""() => {
            window.kqiProgress = [];
            const bar = document.getElementById('data-progress');
            new MutationObserver(() => window.kqiProgress.push(Number(bar.getAttribute('aria-valuenow'))))
                .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
        }""")
        page.click("#data-save")
        wait_view(page, "data-edit")
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text(f"Saved {data_name} with 2 new file(s).")
        expect(page.locator("#data-progress")).to_have_attribute("aria-valuenow", "100")
        expect(page.locator("#data-progress-bar")).to_have_text("100%")
        expect(page.locator("#data-upload-list .kqi-upload-state")).to_have_text(["Uploaded", "Uploaded"])
        progress = [v for v in page.evaluate("window.kqiProgress") if v]
        assert progress and progress[-1] == 100 and progress == sorted(progress), progress

        # what the browser registered is what the API has, byte for byte
        found = user.api("GET", "/data", params={"name": data_name}).json()
        assert [d["name"] for d in found] == [data_name]
        data = user.api("GET", f"/data/{found[0]['id']}").json()
        assert data["memo"] == "two files <i>from the browser</i>"
        assert sorted(data["tags"]) == ["2026-11", "camera-1"]
        listed = {f["fileName"]: f for f in user.api("GET", f"/data/{data['id']}/files").json()}
        assert {n: f["fileSize"] for n, f in listed.items()} == {n: len(c) for n, c in files.items()}
        expect(page.locator("#data-edit-title")).to_have_text(f"Edit data {data_name}")
        file_rows = page.locator("#data-file-rows tr[data-file-id]")
        expect(file_rows).to_have_count(2)
        for name, content in files.items():
            row = page.locator(f'#data-file-rows tr[data-name="{name}"]')
            expect(row.locator(".kqi-file-size")).to_have_attribute("data-bytes", str(len(content)))
            with page.expect_download() as info:
                row.locator("a.kqi-download").click()
            download = info.value
            assert download.suggested_filename == name
            with open(download.path(), "rb") as f:
                assert sha(f.read()) == sha(content), name
        # the memo is text, not markup
        expect(page.locator("#data-memo")).to_have_value("two files <i>from the browser</i>")
        shot(page, artifacts_dir, "data-edit")

        # a file of the same name is refused before anything is sent
        page.set_input_files("#data-file-input", [str(tmp_path / "サンプル 1.csv")])
        expect(page.locator("#data-upload-list .kqi-upload-state")).to_have_text(["Name used already"])
        page.click("#data-save")
        expect(page.locator("#data-edit-messages .alert-danger")).to_contain_text("サンプル 1.csv")
        page.locator("#data-upload-list .kqi-upload-remove").click()
        assert len(user.api("GET", f"/data/{data['id']}/files").json()) == 2

        # ------------------------------------------------------------ list, search
        page.click("#data-back")
        wait_view(page, "data-list")
        row = page.locator(f'#data-rows tr[data-id="{data["id"]}"]')
        expect(row).to_contain_text(data_name)
        expect(row.locator(".kqi-tag")).to_have_text(["2026-11", "camera-1"])
        expect(page.locator("#data-pager .kqi-total")).to_have_text("2 in all")
        shot(page, artifacts_dir, "data-list")
        page.fill("#data-search-tag", "camera-1")
        page.click("#data-search-submit")
        wait_view(page, "data-list")
        expect(page.locator("#data-rows tr[data-id]")).to_have_count(1)
        expect(page.locator("#data-rows tr[data-id]")).to_have_attribute("data-id", str(data["id"]))
        page.click("#data-search-clear")
        wait_view(page, "data-list")
        today = datetime.datetime.now(datetime.timezone.utc).date()
        page.fill("#data-search-date", (today + datetime.timedelta(days=1)).isoformat())
        page.select_option("#data-search-date-op", "since")
        page.click("#data-search-submit")
        wait_view(page, "data-list")
        expect(page.locator("#data-rows tr.kqi-empty")).to_contain_text("No data matches")
        page.select_option("#data-search-date-op", "until")
        page.click("#data-search-submit")
        wait_view(page, "data-list")
        expect(page.locator("#data-rows tr[data-id]")).to_have_count(2)

        # ------------------------------------------------- dataset by drag and drop
        page.click("#kqi-nav-datasets")
        page.wait_for_selector("body[data-kqi-ready]")
        wait_view(page, "datasets-list")
        page.click("#datasets-new")
        wait_view(page, "dataset-new")
        dataset_name = f"ui-set-{uuid.uuid4().hex[:6]}"
        page.fill("#dataset-name", dataset_name)
        page.fill("#dataset-memo", "made by drag and drop")
        expect(page.locator("#dataset-areas [data-area] .card-header .fw-semibold")).to_have_text(
            ["training", "validation", "testing"])
        pool = page.locator("#dataset-all-list")
        pool.locator(f'li[data-id="{data["id"]}"]').drag_to(page.locator("#dataset-area-training"))
        expect(page.locator(f'#dataset-area-training li[data-id="{data["id"]}"]')).to_be_visible()
        expect(pool.locator(f'li[data-id="{data["id"]}"]')).to_have_count(0)
        # into testing, then moved on to validation
        pool.locator(f'li[data-id="{other["id"]}"]').drag_to(page.locator("#dataset-area-testing"))
        page.locator(f'#dataset-area-testing li[data-id="{other["id"]}"]').drag_to(page.locator("#dataset-area-validation"))
        expect(page.locator(f'#dataset-area-validation li[data-id="{other["id"]}"]')).to_be_visible()
        expect(page.locator("#dataset-area-testing li")).to_have_count(0)
        expect(page.locator('#dataset-areas [data-area="training"] .kqi-area-count')).to_have_text("1")
        shot(page, artifacts_dir, "dataset-drag-and-drop")
        page.click("#dataset-save")
        wait_view(page, "datasets-list")
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text(f"Created {dataset_name}.")
        dataset_row = page.locator(f'#datasets-rows tr[data-name="{dataset_name}"]')
        expect(dataset_row).to_be_visible()
        dataset_id = int(dataset_row.get_attribute("data-id"))
        details = user.api("GET", f"/datasets/{dataset_id}").json()
        assert details["isFlat"] is False and details["memo"] == "made by drag and drop"
        assert [d["id"] for d in details["entries"]["training"]] == [data["id"]]
        assert [d["id"] for d in details["entries"]["validation"]] == [other["id"]]
        assert details["entries"]["testing"] == [] and details["isLocked"] is False
        pairs = user.api("GET", f"/datasets/{dataset_id}/pathpairs").json()
        assert sorted(p["dataPath"] for p in pairs) == sorted(
            [f"training/{data['id']}/{n}" for n in files] + [f"validation/{other['id']}/other.txt"])
        shot(page, artifacts_dir, "datasets-list")

        # ---------------------------------------------- a training locks the dataset
        training_id = start_training_on(user, platform, dataset_id, str(tmp_path / "model"))
        dataset_row.locator(".kqi-edit").click()
        wait_view(page, "dataset-edit")
        expect(page.locator("#dataset-locked")).to_be_visible()
        # every job that uses it is named (a link each), with the whole list of them one click away
        expect(page.locator(f'#dataset-lock-reasons a[href$="/training?id={training_id}"]')).to_be_visible()
        expect(page.locator("#dataset-lock-reasons a.kqi-lock-all")).to_have_attribute(
            "href", re.compile(r"/training\?dataSet="))
        expect(page.locator(f'#dataset-area-training li[data-id="{data["id"]}"]')).to_be_visible()
        expect(page.locator("#dataset-areas li[draggable]")).to_have_count(0)
        expect(page.locator("#dataset-areas .kqi-unassign")).to_have_count(0)
        expect(page.locator("#dataset-all-list .kqi-assign")).to_have_count(0)
        expect(page.locator("#dataset-flat")).to_be_disabled()
        expect(page.locator("#dataset-delete")).to_be_hidden()
        # name and memo stay editable
        page.fill("#dataset-memo", "used by a training")
        shot(page, artifacts_dir, "dataset-locked")
        page.click("#dataset-save")
        wait_view(page, "datasets-list")
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text(f"Updated {dataset_name}.")
        details = user.api("GET", f"/datasets/{dataset_id}").json()
        assert details["isLocked"] is True and details["memo"] == "used by a training"
        assert [d["id"] for d in details["entries"]["training"]] == [data["id"]]

        # the data is in a dataset now: deleting it is refused with the API's reason
        page.goto(platform.service_url + f"/data#/edit/{data['id']}")
        wait_view(page, "data-edit")
        page.click("#data-delete")
        expect(page.locator("#data-edit-messages .alert-danger")).to_contain_text(dataset_name)

        # ------------------------------------------------------ copy into a flat one
        page.goto(platform.service_url + "/datasets")
        wait_view(page, "datasets-list")
        page.locator(f'#datasets-rows tr[data-id="{dataset_id}"] .kqi-copy').click()
        wait_view(page, "dataset-copy")
        expect(page.locator("#dataset-name")).to_have_value(f"{dataset_name} (copy)")
        expect(page.locator("#dataset-memo")).to_have_value("used by a training")
        expect(page.locator("#dataset-locked")).to_be_hidden()
        expect(page.locator(f'#dataset-area-training li[data-id="{data["id"]}"]')).to_be_visible()
        expect(page.locator(f'#dataset-area-validation li[data-id="{other["id"]}"]')).to_be_visible()
        page.check("#dataset-flat")
        expect(page.locator("#dataset-areas section[data-area]")).to_have_count(1)
        expect(page.locator("#dataset-area-flat li")).to_have_count(2)
        # take one out by dragging it back to all data
        page.locator(f'#dataset-area-flat li[data-id="{other["id"]}"]').drag_to(pool)
        expect(pool.locator(f'li[data-id="{other["id"]}"]')).to_be_visible()
        shot(page, artifacts_dir, "dataset-copy-flat")
        page.click("#dataset-save")
        wait_view(page, "datasets-list")
        copy_row = page.locator(f'#datasets-rows tr[data-name="{dataset_name} (copy)"]')
        expect(copy_row).to_contain_text("Flat")
        copy = user.api("GET", f"/datasets/{copy_row.get_attribute('data-id')}").json()
        assert copy["isFlat"] is True and [d["id"] for d in copy["flatEntries"]] == [data["id"]]
        assert user.api("GET", f"/datasets/{dataset_id}").json()["entries"]["validation"][0]["id"] == other["id"]
        assert not script_errors, script_errors
    finally:
        context.close()


@pytest.mark.sqlite_only
def test_data_screens_in_japanese(platform, browser, artifacts_dir):
    user = tenant_user(platform)
    create_data(user, "ja-data", {"a.txt": b"a"}, tags=["受領 2026-11"])
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, platform, user.name, user.password, "/data")
        wait_view(page, "data-list")
        expect(page.locator("#data-list-view h1")).to_have_text("データ管理")
        expect(page.locator("#kqi-nav-data")).to_have_text("データ管理")
        expect(page.locator("#kqi-nav-datasets")).to_have_text("データセット管理")
        expect(page.locator("#kqi-nav-preprocessing")).to_have_text("前処理管理")
        expect(page.locator("#data-new")).to_have_text("新規登録")
        expect(page.locator("#data-run")).to_have_text("前処理実行")
        expect(page.locator("#data-run")).to_be_disabled()
        expect(page.locator("#data-table thead")).to_contain_text("データ名")
        expect(page.locator("#data-rows .kqi-tag")).to_have_text(["受領 2026-11"])
        page.locator("#data-rows .kqi-select").check()
        expect(page.locator("#data-run")).to_have_text("前処理実行 (1)")
        expect(page.locator("#data-pager .kqi-total")).to_have_text("全1件")
        shot(page, artifacts_dir, "data-list-ja")
        page.click("#data-new")
        wait_view(page, "data-new")
        expect(page.locator("#data-edit-title")).to_have_text("データの登録")
        expect(page.locator('label[for="data-name"]')).to_have_text("データ名 *")
        expect(page.locator('label[for="data-memo"]')).to_have_text("メモ")
        expect(page.locator('label[for="data-tag-input"]')).to_have_text("タグ")
        expect(page.locator('label[for="data-file-input"]')).to_have_text("ファイル")
        expect(page.locator("#data-save")).to_have_text("保存")
        # an empty name: the API's field message lands next to the field
        page.click("#data-save")
        expect(page.locator("#data-name")).to_have_class("form-control is-invalid")

        page.click("#kqi-nav-datasets")
        page.wait_for_selector("body[data-kqi-ready]")
        wait_view(page, "datasets-list")
        page.click("#datasets-new")
        wait_view(page, "dataset-new")
        expect(page.locator("#dataset-edit-title")).to_have_text("データセットの作成")
        expect(page.locator('label[for="dataset-name"]')).to_have_text("データセット名 *")
        expect(page.locator('label[for="dataset-flat"]')).to_have_text("フラット")
        expect(page.locator("#dataset-form")).to_contain_text("配置種別")
        expect(page.locator("#dataset-all .card-header")).to_contain_text("すべてのデータ")
        shot(page, artifacts_dir, "dataset-new-ja")

        page.click("#kqi-nav-preprocessing")
        page.wait_for_selector("body[data-kqi-ready]")
        wait_view(page, "prep-list")
        expect(page.locator("#prep-run")).to_have_text("前処理実行")
        page.click("#prep-new")
        wait_view(page, "prep-new")
        expect(page.locator('label[for="prep-name"]')).to_have_text("前処理名 *")
        expect(page.locator('label[for="prep-entry-point"]')).to_have_text("実行コマンド")
        expect(page.locator("#prep-form")).to_contain_text("コンテナイメージ")
        expect(page.locator('label[for="prep-commit"]')).to_have_text("コミットID")
        shot(page, artifacts_dir, "preprocessing-new-ja")
    finally:
        context.close()
