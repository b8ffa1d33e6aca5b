"""The inference screen (推論管理) in a real browser against a real KQI Hub: an inference
started from a completed training's detail page (the form comes prefilled from it), whose
script reads the training's output at /kqi/parent and writes /kqi/output/value.txt; its
detail page and the inference list show that value.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from ..platform import ModelRepo, create_data, job_row_id, tenant_user, wait_job
from .conftest import sign_in

TRAIN_PY = r'''
import os
os.makedirs("/kqi/output/model", exist_ok=True)
with open("/kqi/output/model/score.txt", "w") as f:
    f.write("0.875\n")
print("trained", flush=True)
'''

# reads the parent training's output (read-only at /kqi/parent) and reports a value
INFER_PY = r'''
import os
score = float(open("/kqi/parent/model/score.txt").read())
inputs = sorted(os.listdir("/kqi/input/training"))
value = score * 2 - 0.5
with open("/kqi/output/value.txt", "w") as f:
    f.write(f"{value}\n")
print("inference value", value, "inputs", inputs, "parent", os.environ["PARENT_ID"], flush=True)
'''


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-inference-{name}.png"), full_page=True, animations="disabled")


@pytest.mark.sqlite_only
def test_inference_from_a_training_shows_its_output_value(platform, browser, tmp_path, artifacts_dir):
    user = tenant_user(platform)
    repo = ModelRepo(platform, str(tmp_path / "work"), "team", f"ui-infer-model-{uuid.uuid4().hex[:8]}",
                     tenant=user.tenant)
    commit = repo.commit({"train.py": TRAIN_PY, "infer.py": INFER_PY}, "train and infer")
    data = create_data(user, "ui-infer-data", {"x.txt": b"x"})
    r = user.api("POST", "/datasets", json={"name": "ui-infer-set", "entries": {"training": [{"id": data["id"]}]}})
    assert r.status_code == 201, r.text
    dataset = r.json()
    r = user.api("POST", "/training/run", json={
        "name": "ui-trained", "entryPoint": "python3 -u train.py", "dataSetId": dataset["id"],
        "containerImage": {"image": "python", "tag": "3.11"}, "options": {"SEED": "7"},
        "gitModel": {"owner": repo.owner, "repository": repo.name, "branch": "master"},
        "cpu": 1, "memory": 1, "gpu": 0, "tags": ["base"]})
    assert r.status_code == 201, r.text
    training_id = r.json()["id"]
    assert wait_job(user, training_id, ("Completed", "Failed", "Error"), timeout=90)["status"] == "Completed"

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        # the training's detail page offers "Start an inference"
        sign_in(page, platform, user.name, user.password, f"/training?id={training_id}")
        expect(page.locator("#job-status .kqi-status")).to_have_attribute("data-status", "Completed")
        page.click("#job-infer")
        page.wait_for_url(f"**/inference?training={training_id}")
        page.wait_for_selector("body[data-kqi-form-ready]")

        # prefilled from the training: mounted as parent, its dataset, image, model and settings
        expect(page.locator("#job-form-title")).to_have_text("Run an inference from a training")
        expect(page.locator(f"#job-parents-{training_id}")).to_be_checked()
        expect(page.locator("#job-parents input:checked")).to_have_count(1)
        expect(page.locator("#job-parent-note .alert-info")).to_contain_text(f"{training_id}:ui-trained")
        expect(page.locator("#job-dataset")).to_have_value(str(dataset["id"]))
        expect(page.locator("#job-name")).to_have_value("ui-trained")
        name = f"ui-infer-{uuid.uuid4().hex[:6]}"
        page.fill("#job-name", name)
        shot(page, artifacts_dir, "form-from-training")
        page.click("#job-next")
        expect(page.locator("#job-image")).to_have_value("python")
        expect(page.locator("#job-tag")).to_have_value("3.11")
        expect(page.locator("#job-repo")).to_have_value(f"{repo.owner}/{repo.name}")
        expect(page.locator("#job-branch")).to_have_value("master")
        expect(page.locator("#job-commit")).to_have_value(commit)
        expect(page.locator("#job-entry")).to_have_value("python3 -u train.py")
        page.fill("#job-entry", "python3 -u infer.py")
        page.click("#job-next")
        expect(page.locator("#job-cpu")).to_have_value("1")
        page.click("#job-next")
        expect(page.locator(".kqi-env-key")).to_have_value("SEED")
        expect(page.locator(".kqi-env-value")).to_have_value("7")
        expect(page.locator("#job-tags")).to_have_value("base")
        page.fill("#job-tags", "")
        page.click("#job-submit")

        # its detail page: the value once it completed
        page.wait_for_url(re.compile(r".*/inference\?id=\d+$"))
        inference_id = int(page.url.rsplit("=", 1)[1])
        expect(page.locator("#job-title")).to_have_text(f"{inference_id}:{name}")
        expect(page.locator("#job-infer")).to_have_count(0)  # no inference of an inference
        # the container is named by the job's table id (its key), not by the tenant's own number
        row_id = job_row_id(user, inference_id, "inferences")
        expect(page.locator('#job-info dd[data-key="inference.container_name"]')).to_have_text(f"inference-{name}-{row_id}")
        expect(page.locator("#job-status .kqi-status")).to_have_attribute("data-status", "Completed", timeout=60000)
        expect(page.locator("#job-log")).to_contain_text(f"inference value 1.25 inputs ['{data['id']}'] parent {training_id}")
        expect(page.locator('#job-state dd[data-key="inference.output_value"]')).to_have_text("1.25")
        expect(page.locator('#job-info dd[data-key="jobs.parents_to_mount"] a')).to_have_text(f"{training_id}:ui-trained")
        expect(page.locator('#job-cfile-rows tr.kqi-cfile[data-name="value.txt"]')).to_be_visible()
        shot(page, artifacts_dir, "detail")

        # the list's output value column
        page.click("#job-back-list")
        page.wait_for_selector("body[data-kqi-ready]")
        row = page.locator(f'#job-rows tr[data-job-id="{inference_id}"]')
        expect(row.locator(".kqi-status")).to_have_attribute("data-status", "Completed")
        expect(row.locator(".kqi-output-value")).to_have_text("1.25")
        expect(row).to_contain_text(f"{training_id}:ui-trained")
        expect(page.locator("#job-list thead")).to_contain_text("Output value")
        shot(page, artifacts_dir, "list")

        # what the platform ran
        job = user.api("GET", f"/inferences/{inference_id}").json()
        assert [p["id"] for p in job["parents"]] == [training_id]
        assert job["containerName"] == f"inference-{name}-{row_id}"
        assert job["gitModel"]["commitId"] == commit and job["entryPoint"] == "python3 -u infer.py"
        assert job["options"] == [{"key": "SEED", "value": "7"}] and job["tags"] == []
        listed = user.api("GET", "/inferences", params={"name": name}).json()
        assert [(j["id"], j["outputValue"]) for j in listed] == [(inference_id, "1.25")]
    finally:
        context.close()
