"""The user guide's screenshots, taken from a real KQI Hub in a real browser.

With `KQI_DOCS_SCREENSHOTS=1` the pictures go into docs/en/img and docs/ja/img (the guide shows
them; commit them), otherwise into tests/artifacts/ (so the run checks the screens without
touching the guide). Each is a 1280×800 view reduced to a palette PNG of at most 150 KB. The
Japanese pictures need a Japanese font for Chromium (`apt-get install fonts-ipafont-gothic`):
with KQI_DOCS_SCREENSHOTS=1 the test refuses to write them without one.

    KQI_DOCS_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_docs_screens.py --db sqlite -q
"""
from __future__ import annotations

import io
import os
import subprocess

import pytest
from playwright.sync_api import expect

from ..platform import ModelRepo, create_data, wait_job
from .conftest import sign_in

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITE_GUIDE = os.environ.get("KQI_DOCS_SCREENSHOTS") == "1"
MAX_BYTES = 150 * 1024
VIEWPORT = {"width": 1280, "height": 800}
LOCALES = {"en": "en-US", "ja": "ja-JP"}

TRAIN_PY = '''import os
for epoch in range(1, 6):
    print(f"epoch {epoch} loss {1 / epoch:.3f}")
os.makedirs("/kqi/output/model", exist_ok=True)
with open("/kqi/output/model/weights.txt", "w") as f:
    f.write("dataset " + os.environ["DATASET_ID"] + "\\n")
'''


def small_png(raw: bytes) -> bytes:
    """A screenshot as a palette PNG under MAX_BYTES (fewer colours, then smaller, until it fits)."""
    from PIL import Image

    image = Image.open(io.BytesIO(raw)).convert("RGB")
    for colors, scale in ((128, 1.0), (64, 1.0), (32, 1.0), (32, 0.75), (16, 0.6)):
        shot = image if scale == 1.0 else image.resize((int(image.width * scale), int(image.height * scale)),
                                                       Image.LANCZOS)
        out = io.BytesIO()
        shot.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        if out.tell() <= MAX_BYTES:
            return out.getvalue()
    raise AssertionError("a screenshot does not fit in 150 KB")


def save(page, language: str, name: str, artifacts_dir: str) -> str:
    data = small_png(page.screenshot(animations="disabled"))
    if WRITE_GUIDE:
        path = os.path.join(ROOT, "docs", language, "img", f"{name}.png")
    else:
        path = os.path.join(artifacts_dir, f"docs-{language}-{name}.png")
    with open(path, "wb") as f:
        f.write(data)
    assert data.startswith(b"\x89PNG") and len(data) <= MAX_BYTES
    return path


@pytest.fixture(scope="module")
def scene(platform, tmp_path_factory):
    """A tenant "vision-team" with a member alice, three data, a dataset and a completed training."""
    from ..platform import TenantUser

    admin = platform.admin_token()
    tenants = {t["name"]: t for t in platform.api("GET", "/admin/tenants", admin).json()}
    tenant = tenants.get("vision-team") or platform.create_tenant("vision-team", displayName="Vision team")
    name, password = platform.create_user("alice", "alice-docs-screens", tenants=[tenant["name"]])
    user = TenantUser(platform, tenant, name, password, platform.login(name, password, tenant["id"]))
    made = [create_data(user, f"{animal}-photos", {f"{animal}-{i}.txt": f"{animal} {i}".encode() for i in range(3)},
                        tags=["animal", animal], memo=f"{animal} pictures, first batch")
            for animal in ("cat", "dog", "bird")]
    r = user.api("POST", "/datasets", json={"name": "animals", "memo": "cats and dogs; birds to test",
                                            "entries": {"training": [{"id": made[0]["id"]}, {"id": made[1]["id"]}],
                                                        "testing": [{"id": made[2]["id"]}]}})
    assert r.status_code == 201, r.text
    dataset = r.json()
    repo = ModelRepo(platform, str(tmp_path_factory.mktemp("docs-model")), "alice", "classifier", tenant=tenant)
    repo.commit({"train.py": TRAIN_PY}, "a first classifier")
    local_git = next(g for g in user.api("GET", "/tenant/git/endpoints").json()
                     if g["repositoryUrl"] == "file://" + os.path.join(platform.data_dir, "git"))
    r = user.api("POST", "/training/run", json={
        "name": "first-classifier", "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": dataset["id"],
        "gitModel": {"gitId": local_git["id"], "owner": "alice", "repository": "classifier", "branch": "master"},
        "entryPoint": "python train.py", "cpu": 1, "memory": 1, "gpu": 0, "memo": "the walkthrough's model",
        "tags": ["baseline"]})
    assert r.status_code == 201, r.text
    training = wait_job(user, r.json()["id"], "Completed", timeout=180)
    return {"user": user, "training": training}


@pytest.mark.sqlite_only
@pytest.mark.parametrize("language", ["en", "ja"])
def test_guide_screens(platform, browser, scene, artifacts_dir, language):
    if WRITE_GUIDE and language == "ja":
        fonts = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True).stdout
        assert fonts.strip(), "no Japanese font: apt-get install fonts-ipafont-gothic, then take the pictures again"
    user = scene["user"]
    context = browser.new_context(locale=LOCALES[language], viewport=VIEWPORT)
    page = context.new_page()
    try:
        sign_in(page, platform, user.name, user.password)
        expect(page.locator("#kqi-home-tenant-name")).to_have_text("vision-team")
        expect(page.locator("#kqi-home-first-steps")).to_be_visible()
        save(page, language, "home", artifacts_dir)

        page.goto(platform.service_url + "/data")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#data-rows tr")).to_have_count(3)
        save(page, language, "data", artifacts_dir)

        page.goto(f"{platform.service_url}/training?id={scene['training']['id']}")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#job-log")).to_contain_text("epoch 5")
        save(page, language, "training", artifacts_dir)
    finally:
        context.close()
