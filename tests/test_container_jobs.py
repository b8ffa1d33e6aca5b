"""Jobs of the platform in the image the user asked for (podman), through the official CLI.

The tests' images (tests/images.py) stand in for Docker Hub's: `-rim python -rt 3.11` runs
in a Debian image with Python 3.11, PIL and the kqi CLI, and the host's package index
reaches the jobs through the job environment setting.
"""
from __future__ import annotations

import io
import json
import re
import sys
import time

import pytest

from .platform import ModelRepo, create_data, tenant_user, wait_job

#: KAMONOHASHI's tutorial preprocessing, as a user writes it: every PNG under /kqi/input made
#: 32x32, written to /kqi/output/<DATA_NAME>_resized/ (each folder becomes a new data)
RESIZE = """\
import glob
import os

from PIL import Image

data_name = os.environ["DATA_NAME"]
out_dir = os.path.join("/kqi/output", f"{data_name}_resized")
os.makedirs(out_dir, exist_ok=True)
for path in glob.glob("/kqi/input/**/*.png", recursive=True):
    with Image.open(path) as image:
        image.resize((32, 32)).save(os.path.join(out_dir, os.path.basename(path)))
        print("resized", os.path.basename(path), image.size, "->", (32, 32))
"""

TRAIN = """\
import os, subprocess, sys
with open("/kqi/output/version.txt", "w") as f:
    f.write(sys.version)
subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "tomli-w==1.0.0"], check=True)
import tomli_w
with open("/kqi/output/installed.toml", "w") as f:
    f.write(tomli_w.dumps({"ok": True}))
with open("x.txt", "w") as f:
    f.write("attached by the job itself")
subprocess.run(["kqi", "training", "upload-file", os.environ["TRAINING_ID"], "-f", "x.txt"], check=True)
listing = subprocess.run(["kqi", "data", "list"], check=True, capture_output=True, text=True).stdout
with open("/kqi/output/data-list.txt", "w") as f:
    f.write(listing)
print("done")
"""


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def submit_training(user, repo, commit, name: str, entry: str, image=None) -> int:
    """A training over a one-file dataset of its own, through the API; its id."""
    data = create_data(user, f"{name}-data", {"x.csv": b"1\n"})
    dataset = user.api("POST", "/datasets", json={"name": f"{name}-ds", "entries": {
        "training": [{"id": data["id"]}], "testing": [], "validation": []}}).json()
    r = user.api("POST", "/training/run", json={
        "name": name, "dataSetId": dataset["id"], "containerImage": image or {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
        "entryPoint": entry, "cpu": 0.5, "memory": 0.5, "gpu": 0})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    home = str(tmp_path_factory.mktemp("container-home"))
    user = tenant_user(platform, home=home)
    repo = ModelRepo(platform, str(tmp_path_factory.mktemp("container-repo")), "container-team", "model",
                     tenant=user.tenant)
    commit = repo.commit({"resize.py": RESIZE, "train.py": TRAIN}, "tutorial")
    return user, repo, commit


def test_kamonohashi_resize_preprocessing_runs_unchanged(world, tmp_path):
    user, repo, commit = world
    animals = create_data(user, "animals", {"cat.png": _png(64, 48), "dog.png": _png(80, 80)}, tags=["animal"])
    definition = {"name": "resize", "entryPoint": "python resize.py",
                  "containerImage": {"image": "python", "tag": "3.11"},
                  "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
                  "cpu": 1, "memory": 1, "gpu": 0}
    path = tmp_path / "resize.json"
    path.write_text(json.dumps(definition))
    preprocess_id = int(re.search(r"created (\d+)", user.cli("preprocessing", "create", "-f", str(path)).stdout)[1])
    user.cli("preprocessing", "run", str(preprocess_id), "-did", str(animals["id"]), "-c", "1", "-mem", "1", "-g", "0")
    deadline = time.monotonic() + 120
    while True:
        history = user.api("GET", f"/preprocessings/{preprocess_id}/histories/{animals['id']}").json()
        if history["status"] not in ("Pending", "Queued", "Running"):
            break
        assert time.monotonic() < deadline, history
        time.sleep(0.3)
    log = user.api("GET", f"/preprocessings/{preprocess_id}/histories/{animals['id']}/log").text
    assert history["status"] == "Completed", log
    made = next(d for d in user.api("GET", "/data", params={"perPage": 100}).json()
                if d["name"] == "animals_resized")
    assert made["parentDataId"] == animals["id"]
    out = tmp_path / "resized"
    out.mkdir()
    user.cli("data", "download-files", str(made["id"]), "-d", str(out))
    from PIL import Image

    for name in ("cat.png", "dog.png"):
        with Image.open(out / name) as image:
            assert image.size == (32, 32)
    assert "resized cat.png (64, 48) -> (32, 32)" in log


def test_training_runs_in_the_image_installs_packages_and_uses_the_kqi_cli(world, tmp_path):
    user, repo, commit = world
    data = create_data(user, "for-training", {"x.csv": b"1,2\n"})
    dataset = user.api("POST", "/datasets", json={"name": "container-ds", "entries": {
        "training": [{"id": data["id"]}], "testing": [], "validation": []}}).json()
    out = user.cli("training", "create", "-n", "in-image", "-rim", "python", "-rt", "3.11", "-d", str(dataset["id"]),
                   "-go", repo.owner, "-gr", repo.name, "-gc", commit, "-e", "python train.py",
                   "-c", "1", "-mem", "1", "-g", "0").stdout
    training_id = int(re.search(r"created (\d+)", out)[1])
    details = wait_job(user, training_id, ("Completed", "Failed", "Error"), timeout=180)
    files = tmp_path / "files"
    files.mkdir()
    user.cli("training", "download-files", str(training_id), "-d", str(files))
    log = next(files.glob("*stdout_stderr*")).read_text()
    assert details["status"] == "Completed", (details.get("conditionNote"), log)
    listing = user.api("GET", f"/training/{training_id}/files").json()
    assert "x.txt" in [f["fileName"] for f in listing]  # attached by `kqi training upload-file` in the job
    container_out = tmp_path / "out"
    container_out.mkdir()
    user.cli("training", "download-container-files", str(training_id), "-d", str(container_out), check=False)
    version = user.api("GET", f"/training/{training_id}/container-files",
                       params={"path": "/"}).json()
    names = {f["fileName"] for f in version.get("files", [])}
    assert {"version.txt", "installed.toml", "data-list.txt"} <= names, version
    # what the job wrote, read from the store
    from .platform import job_output_dir, job_row_id

    folder = job_output_dir(user.platform, user.tenant, job_row_id(user, training_id))
    image_version = open(f"{folder}/version.txt").read()
    assert image_version != sys.version  # the image's Python, not the platform's
    assert image_version.startswith("3.11")
    assert "ok = true" in open(f"{folder}/installed.toml").read()
    assert "for-training" in open(f"{folder}/data-list.txt").read()
    # the official CLI was the image's, configured by the runtime
    assert "kqi CLI configured for this job" in log


def test_requested_image_missing_and_not_pullable_fails_with_the_registrys_message(world):
    user, repo, commit = world
    job_id = submit_training(user, repo, commit, "no-such-image", "true",
                             image={"image": "kqi-test/no-such-image", "tag": "0"})
    details = wait_job(user, job_id, ("Completed", "Failed", "Error"), timeout=180)
    assert details["status"] == "Failed"
    assert "pulling the image docker.io/kqi-test/no-such-image:0 failed" in details["conditionNote"]


def test_a_training_cannot_reach_the_platforms_files(world, platform, tmp_path):
    """The real files of this platform, by their host paths: the service's secret key, the hub's
    database and cookie secret, another tenant's stored data, another job's folder."""
    import os

    user, repo, commit = world
    other = tenant_user(platform)
    theirs = create_data(other, "theirs", {"secret.txt": b"tenant B only"})
    store = os.path.join(platform.data_dir, "store", *other.tenant["storagePath"].split("/"), "Data")
    their_files = [os.path.join(dirpath, name) for dirpath, _, names in os.walk(store) for name in names]
    assert their_files, store
    targets = [os.path.join(platform.data_dir, "kqi", "secret_key"),
               os.path.join(platform.data_dir, "hub", "jupyterhub_cookie_secret"),
               their_files[0], os.path.join(platform.data_dir, "jobs")]
    if platform.db_backend == "sqlite":  # (on PostgreSQL the hub's database is no file)
        targets.append(os.path.join(platform.data_dir, "hub", "jupyterhub.sqlite"))
    assert all(os.path.exists(t) for t in targets), targets
    # (the marker is assembled when it runs: the log also shows the command itself)
    probe = "; ".join(f"if cat {t} || ls {t}; then printf 'REA%s {t}\\n' CHED; fi" for t in targets)
    job_id = submit_training(user, repo, commit, "probe", probe + "; echo PROBED")
    details = wait_job(user, job_id, ("Completed", "Failed", "Error"), timeout=120)
    files = tmp_path / "probe"
    files.mkdir()
    user.cli("training", "download-files", str(job_id), "-d", str(files))
    log = next(files.glob("*stdout_stderr*")).read_text()
    assert "PROBED" in log and details["status"] == "Completed", log
    assert "REACHED" not in log, log
    assert log.count("No such file or directory") >= 2 * len(targets), log
    assert theirs["id"] not in [d["id"] for d in user.api("GET", "/data", params={"perPage": 1000}).json()]


def test_container_file_listings_follow_no_links_and_refuse_a_file(world, platform):
    """A job's output lies in the host's store: a link it leaves (`ln -s / r`) must not let the
    listing walk the host's folders; a file path is a clear 400, not a server error."""
    user, repo, commit = world
    job_id = submit_training(user, repo, commit, "links",
                             "mkdir -p /kqi/output/sub && echo x > /kqi/output/sub/f.txt && ln -s / /kqi/output/r"
                             " && ln -s /kqi/output/sub /kqi/output/s")
    assert wait_job(user, job_id, ("Completed", "Failed", "Error"), timeout=120)["status"] == "Completed"

    def listing(path):
        return user.api("GET", f"/training/{job_id}/container-files", params={"path": path})

    top = listing("/")
    assert top.status_code == 200, top.text
    assert [d["dirName"] for d in top.json()["dirs"]] == ["sub"]  # the links are not listed
    for through_a_link in ("/r", "/r/etc", "/s", "/r/" + platform.data_dir.lstrip("/") + "/kqi"):
        r = listing(through_a_link)
        assert r.status_code == 200 and r.json()["dirs"] == [] and r.json()["files"] == [], (through_a_link, r.text)
    r = listing("/sub/f.txt")
    assert r.status_code == 400 and "is a file, not a folder" in r.json()["detail"], r.text
    assert [f["fileName"] for f in listing("/sub").json()["files"]] == ["f.txt"]
