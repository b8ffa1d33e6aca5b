"""The preprocessing screen in a real browser against a real KQI Hub (issue 5): register a
preprocessing through the form, select two data in the data list and run a preprocessing
over both from there (the guide's third way in), watch the history until both runs are
done, read a run's log, see a second run on the same data refused, delete a history."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import requests
from playwright.sync_api import expect

from ..platform import create_data, tenant_user
from .conftest import sign_in

GIT = ["git", "-c", "user.name=KQI UI Tests", "-c", "user.email=ui-tests@kqi.invalid",
       "-c", "init.defaultBranch=master", "-c", "commit.gpgsign=false"]

# uppercases every input file into /kqi/output/upper_<dataId>/text/<file>; a file directly
# under /kqi/output is not a data
PREP_PY = '''\
import os

greeting = os.environ.get("GREETING", "")
for data_id in sorted(os.listdir("/kqi/input")):
    out = os.path.join("/kqi/output", "upper_" + data_id, "text")
    for folder, _, names in os.walk(os.path.join("/kqi/input", data_id)):
        for name in sorted(names):
            with open(os.path.join(folder, name)) as f:
                text = f.read()
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, name), "w") as f:
                f.write(text.upper())
            print(greeting, "processed", data_id + "/" + name, flush=True)
with open("/kqi/output/summary.txt", "w") as f:
    f.write("not a data\\n")
'''


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-{name}.png"), full_page=True, animations="disabled")


def wait_view(page, view):
    page.wait_for_selector(f'body[data-kqi-view="{view}"]')


def git(cwd, *args) -> str:
    result = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def model_repository(platform, work: str, owner: str, name: str, tenant: str) -> str:
    """A bare repository <data dir>/git/<tenant>/<owner>/<name>.git (the seeded local git server) holding
    prep.py; its commit id."""
    os.makedirs(work)
    with open(os.path.join(work, "prep.py"), "w") as f:
        f.write(PREP_PY)
    git(work, "init", "-q")
    git(work, "add", "prep.py")
    git(work, "commit", "-q", "-m", "uppercase preprocessing")
    bare = os.path.join(platform.data_dir, "git", tenant, owner, name + ".git")
    os.makedirs(os.path.dirname(bare), exist_ok=True)
    git(work, "clone", "-q", "--bare", work, bare)
    return git(work, "rev-parse", "HEAD")


@pytest.mark.sqlite_only
def test_run_a_preprocessing_over_two_selected_data(platform, browser, artifacts_dir, tmp_path):
    user = tenant_user(platform)
    owner, repo = "ui-team", f"prep-{uuid.uuid4().hex[:6]}"
    commit = model_repository(platform, str(tmp_path / "work"), owner, repo, user.tenant["name"])
    local_git = next(g for g in user.api("GET", "/tenant/git/endpoints").json()
                     if g["repositoryUrl"] == "file://" + os.path.join(platform.data_dir, "git"))
    r = user.api("POST", "/preprocessings", json={
        "name": "uppercase", "memo": "registered through the API", "entryPoint": "python3 prep.py",
        "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"gitId": local_git["id"], "owner": owner, "repository": repo, "branch": "master"},
        "cpu": 0.5, "memory": 1, "gpu": 0})
    assert r.status_code == 201, r.text
    prep = r.json()
    d1 = create_data(user, "letters", {"a.txt": b"alpha\n", "b.txt": b"beta\n"})
    d2 = create_data(user, "words", {"w.txt": b"hello world\n"})
    create_data(user, "not-chosen", {"x.txt": b"x\n"})

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        sign_in(page, platform, user.name, user.password, "/preprocessing")
        wait_view(page, "prep-list")
        expect(page.locator(f'#prep-rows tr[data-id="{prep["id"]}"]')).to_contain_text("CPU 0.5 / 1 GB / GPU 0")

        # ---------------------------------------- register one through the form
        page.click("#prep-new")
        wait_view(page, "prep-new")
        page.fill("#prep-name", "uppercase-ui")
        page.fill("#prep-memo", "registered through the form")
        page.fill("#prep-entry-point", "python3 prep.py")
        page.fill("#prep-image", "python")
        page.fill("#prep-tag", "3.11")
        page.select_option("#prep-git", str(local_git["id"]))
        # the repositories of the git server are offered
        expect(page.locator(f'#prep-repository-options option[value="{owner}/{repo}"]')).to_have_count(1)
        page.fill("#prep-repository", f"{owner}/{repo}")
        page.fill("#prep-branch", "master")
        page.fill("#prep-cpu", "1")
        page.fill("#prep-memory", "1")
        page.fill("#prep-gpu", "0")
        shot(page, artifacts_dir, "preprocessing-register")
        page.click("#prep-save")
        wait_view(page, "prep-edit")
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text("Created uppercase-ui.")
        expect(page.locator("#prep-missing")).to_be_hidden()
        made = [p for p in user.api("GET", "/preprocessings", params={"name": "uppercase-ui"}).json()]
        assert len(made) == 1
        details = user.api("GET", f"/preprocessings/{made[0]['id']}").json()
        assert details["entryPoint"] == "python3 prep.py" and details["memo"] == "registered through the form"
        assert details["containerImage"]["image"] == "python" and details["containerImage"]["tag"] == "3.11"
        assert details["gitModel"]["gitId"] == local_git["id"] and details["gitModel"]["owner"] == owner
        assert details["gitModel"]["repository"] == repo and details["gitModel"]["commitId"] == commit
        assert (details["cpu"], details["memory"], details["gpu"]) == (1, 1, 0) and details["missingToRun"] == []

        # ------------------------ select two data in the data list, run from there
        page.click("#kqi-nav-data")
        page.wait_for_selector("body[data-kqi-ready]")
        wait_view(page, "data-list")
        expect(page.locator("#data-run")).to_be_disabled()
        page.locator(f'#data-rows tr[data-id="{d1["id"]}"] .kqi-select').check()
        page.locator(f'#data-rows tr[data-id="{d2["id"]}"] .kqi-select').check()
        expect(page.locator("#data-run")).to_have_text("Run preprocessing (2)")
        shot(page, artifacts_dir, "data-list-selected")
        page.click("#data-run")
        page.wait_for_url("**/services/kqi/preprocessing#/run?data=*")
        page.wait_for_selector("body[data-kqi-ready]")
        wait_view(page, "prep-run")
        expect(page.locator("#run-data-chosen .kqi-chosen")).to_have_count(2)
        expect(page.locator("#run-data-chosen")).to_contain_text(f"{d1['id']}: letters")
        expect(page.locator("#run-data-chosen")).to_contain_text(f"{d2['id']}: words")
        page.select_option("#run-preprocessing", str(prep["id"]))
        # the definition's defaults fill the resources
        expect(page.locator("#run-cpu")).to_have_value("0.5")
        expect(page.locator("#run-memory")).to_have_value("1")
        expect(page.locator("#run-gpu")).to_have_value("0")
        page.click("#run-env-add")
        page.locator("#run-env-rows .kqi-env-name").fill("GREETING")
        page.locator("#run-env-rows .kqi-env-value").fill("hello-from-the-ui")
        expect(page.locator("#run-open-history")).to_be_checked()
        shot(page, artifacts_dir, "preprocessing-run")
        page.click("#run-submit")

        # ------------------------------------------- the history: both runs end
        wait_view(page, "prep-history")
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text("Started uppercase over 2 data.")
        expect(page.locator("#history-title")).to_have_text("History of uppercase")
        rows = page.locator("#history-rows tr[data-data-id]")
        expect(rows).to_have_count(2)
        expect(page.locator('#history-rows tr[data-status="Completed"]')).to_have_count(2, timeout=120_000)
        expect(page.locator("#history-rows .kqi-status")).to_have_text(["Completed", "Completed"])
        expect(page.locator("#history-rows .kqi-output")).to_have_count(2)
        shot(page, artifacts_dir, "preprocessing-history")

        histories = {h["dataId"]: h for h in user.api("GET", f"/preprocessings/{prep['id']}/histories").json()}
        assert set(histories) == {d1["id"], d2["id"]}
        for data, expected in ((d1, {"a.txt": b"ALPHA\n", "b.txt": b"BETA\n"}), (d2, {"w.txt": b"HELLO WORLD\n"})):
            [out_id] = histories[data["id"]]["outputDataIds"]
            out = user.api("GET", f"/data/{out_id}").json()
            assert out["name"] == f"upper_{data['id']}" and out["parentDataId"] == data["id"]
            files = user.api("GET", f"/data/{out_id}/files", params={"withUrl": "true"}).json()
            assert {f["fileName"]: requests.get(f["url"], timeout=30).content for f in files} == expected

        # ------------------------------------------------------------ the log
        page.locator(f'#history-rows tr[data-data-id="{d1["id"]}"] .kqi-log').click()
        wait_view(page, "prep-log")
        expect(page.locator("#log-title")).to_have_text("Log of uppercase on letters")
        log = page.locator("#log-text")
        expect(log).to_contain_text(f"hello-from-the-ui processed {d1['id']}/a.txt")
        expect(log).to_contain_text(f"hello-from-the-ui processed {d1['id']}/b.txt")
        expect(log).not_to_contain_text(f"processed {d2['id']}/")
        expect(page.locator("#log-info .kqi-status")).to_have_text("Completed")
        shot(page, artifacts_dir, "preprocessing-log")

        # the produced data is on the data screen, with what made it
        page.locator("#log-info .kqi-output").click()
        page.wait_for_selector("body[data-kqi-ready]")
        wait_view(page, "data-edit")
        expect(page.locator("#data-name")).to_have_value(f"upper_{d1['id']}")
        expect(page.locator("#data-info")).to_contain_text("uppercase")
        expect(page.locator("#data-file-rows tr[data-file-id]")).to_have_count(2)

        # ------------------------------- a second run on the same data is refused
        page.goto(platform.service_url + f"/preprocessing#/run?data={d1['id']}&preprocessing={prep['id']}")
        wait_view(page, "prep-run")
        page.click("#run-submit")
        expect(page.locator("#run-messages .alert-danger")).to_contain_text("delete that history to run it again")
        assert len(user.api("GET", f"/preprocessings/{prep['id']}/histories").json()) == 2

        # it has run: only name, memo and resources can change
        page.goto(platform.service_url + f"/preprocessing#/edit/{prep['id']}")
        wait_view(page, "prep-edit")
        expect(page.locator("#prep-locked")).to_be_visible()
        expect(page.locator("#prep-entry-point")).to_be_disabled()
        expect(page.locator("#prep-entry-point")).to_have_value("python3 prep.py")
        page.fill("#prep-memo", "ran twice")
        page.click("#prep-save")
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text("Updated uppercase.")
        assert user.api("GET", f"/preprocessings/{prep['id']}").json()["memo"] == "ran twice"

        # deleting a history deletes the data it made
        out2 = histories[d2["id"]]["outputDataIds"][0]
        page.click("#prep-edit-history")
        wait_view(page, "prep-history")
        page.locator(f'#history-rows tr[data-data-id="{d2["id"]}"] .kqi-delete').click()
        expect(page.locator(f'#history-rows tr[data-data-id="{d2["id"]}"]')).to_have_count(0)
        expect(page.locator("#kqi-alerts .alert-success")).to_contain_text("Deleted the history of words")
        assert user.api("GET", f"/data/{out2}").status_code == 404
        assert not script_errors, script_errors
    finally:
        context.close()
