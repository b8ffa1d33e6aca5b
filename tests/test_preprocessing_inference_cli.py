"""Preprocessing and inference with the official CLI against a real platform (issue 5).

A preprocessing whose script (in a git repository the test makes) transforms every input
file runs over two data at once; each run makes a new data of what it wrote under
/kqi/output/<name>/, with lineage; a second run on the same data is refused until its
history is deleted, which deletes the data it made. The offline `build-history` flow
registers results made elsewhere. An inference with a training as parent writes
value.txt and the list shows the value. Bad input gets a clear 4xx and creates nothing.
"""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from .platform import ModelRepo, create_data, tenant_user, wait_job

PREPROCESS = """\
import os
data_id = os.environ["DATA_ID"]
source = f"/kqi/input/{data_id}"
target = f"/kqi/output/upper-{data_id}"
os.makedirs(target + "/nested", exist_ok=True)
for name in sorted(os.listdir(source)):
    with open(os.path.join(source, name)) as f:
        text = f.read()
    with open(os.path.join(target, name), "w") as f:
        f.write(text.upper())
with open(target + "/nested/count.txt", "w") as f:
    f.write(str(len(os.listdir(source))))
with open("/kqi/output/not-a-data.txt", "w") as f:
    f.write("files directly under /kqi/output are not added")
print("preprocessed", data_id, "from", os.environ["PREPROCESSING_ID"])
"""

TRAIN = """\
import os
os.makedirs("/kqi/output/model", exist_ok=True)
with open("/kqi/output/model/weights.txt", "w") as f:
    f.write("0.75")
"""

INFER = """\
import os
weights = float(open("/kqi/parent/model/weights.txt").read())
with open("/kqi/output/value.txt", "w") as f:
    f.write(f"{weights * 2}\\n")
print("inference on", os.environ["INFERENCE_ID"], "value", weights * 2)
"""


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    home = str(tmp_path_factory.mktemp("prep-home"))
    user = tenant_user(platform, home=home)
    repo = ModelRepo(platform, str(tmp_path_factory.mktemp("prep-repo")), "prep-team", "tools", tenant=user.tenant)
    commit = repo.commit({"prep.py": PREPROCESS, "train.py": TRAIN, "infer.py": INFER}, "tools")
    return user, repo, commit


def _data_rows(user) -> dict[str, dict]:
    return {d["name"]: d for d in user.api("GET", "/data", params={"perPage": 1000}).json()}


def _wait_histories(user, preprocess_id, data_ids, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        rows = {h["dataId"]: h for h in user.api("GET", f"/preprocessings/{preprocess_id}/histories").json()}
        if all(rows.get(i, {}).get("status") in ("Completed", "Failed", "Error", "Killed") for i in data_ids):
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)


def test_preprocessing_over_two_data_with_lineage(world, tmp_path):
    user, repo, commit = world
    first = create_data(user, "letters", {"a.txt": b"alpha", "b.txt": b"beta"})
    second = create_data(user, "words", {"c.txt": b"gamma"})
    definition = {"name": "upper", "entryPoint": "python prep.py", "memo": "upper-cases text",
                  "containerImage": {"image": "python", "tag": "3.11"},
                  "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
                  "cpu": 1, "memory": 1, "gpu": 0}
    path = tmp_path / "prep.json"
    path.write_text(json.dumps(definition))
    out = user.cli("preprocessing", "create", "-f", str(path)).stdout
    preprocess_id = int(re.search(r"created (\d+)", out).group(1))
    assert "upper" in user.cli("preprocessing", "list").stdout
    details = user.api("GET", f"/preprocessings/{preprocess_id}").json()
    assert details["gitModel"]["commitId"] == commit and details["isLocked"] is False

    out = user.cli("preprocessing", "run", str(preprocess_id), "-did", str(first["id"]), "-did", str(second["id"]),
                   "-c", "1", "-mem", "1", "-g", "0").stdout
    assert f"started {preprocess_id}.{first['id']}" in out and f"started {preprocess_id}.{second['id']}" in out
    histories = _wait_histories(user, preprocess_id, [first["id"], second["id"]])
    assert {h["status"] for h in histories.values()} == {"Completed"}, histories
    assert user.api("GET", f"/preprocessings/{preprocess_id}").json()["isLocked"] is True

    rows = _data_rows(user)
    assert "not-a-data" not in " ".join(rows)  # files right under /kqi/output are not added
    made_first, made_second = rows[f"upper-{first['id']}"], rows[f"upper-{second['id']}"]
    assert made_first["parentDataId"] == first["id"] and made_second["parentDataId"] == second["id"]
    assert "upper" in made_first["tags"]
    details = user.api("GET", f"/data/{made_first['id']}").json()
    assert sorted(details["fileNames"]) == ["a.txt", "b.txt", "count.txt"]  # nested files too
    assert details["preprocess"]["preprocessId"] == preprocess_id
    assert details["preprocess"]["inputDataId"] == first["id"]
    children = user.api("GET", f"/data/{first['id']}").json()["children"]
    assert [c["preprocessId"] for c in children] == [preprocess_id]

    downloads = tmp_path / "made"
    downloads.mkdir()
    user.cli("data", "download-files", str(made_first["id"]), "-d", str(downloads))
    assert (downloads / "a.txt").read_text() == "ALPHA" and (downloads / "b.txt").read_text() == "BETA"
    assert (downloads / "count.txt").read_text() == "2"

    log = user.api("GET", f"/preprocessings/{preprocess_id}/histories/{first['id']}/log").text
    assert f"preprocessed {first['id']}" in log

    # at most once per data, until the history is deleted (which deletes what it made)
    again = user.cli("preprocessing", "run", str(preprocess_id), "-did", str(first["id"]), "-c", "1", "-mem", "1",
                     "-g", "0", check=False)
    assert again.returncode != 0 and "409" in again.stdout + again.stderr
    assert "delete that history" in again.stdout + again.stderr
    # nothing was made by the refused run
    assert len(user.api("GET", f"/preprocessings/{preprocess_id}/histories").json()) == 2

    user.cli("preprocessing", "delete-history", str(preprocess_id), "-did", str(first["id"]))
    rows = _data_rows(user)
    assert f"upper-{first['id']}" not in rows and f"upper-{second['id']}" in rows
    assert user.api("GET", f"/data/{made_first['id']}").status_code == 404
    user.cli("preprocessing", "run", str(preprocess_id), "-did", str(first["id"]), "-c", "1", "-mem", "1",
             "-g", "0")
    assert _wait_histories(user, preprocess_id, [first["id"]])[first["id"]]["status"] == "Completed"
    assert f"upper-{first['id']}" in _data_rows(user)

    # a definition with histories cannot be deleted or replaced, only renamed
    refused = user.cli("preprocessing", "delete", str(preprocess_id), check=False)
    assert refused.returncode != 0 and "409" in refused.stdout + refused.stderr
    user.cli("preprocessing", "update-meta-info", str(preprocess_id), "-n", "upper2", "-m", "renamed")
    assert user.api("GET", f"/preprocessings/{preprocess_id}").json()["name"] == "upper2"


def test_offline_build_history(world, tmp_path):
    user, _repo, _commit = world
    source = create_data(user, "raw-offline", {"x.txt": b"x"})
    path = tmp_path / "offline.json"
    path.write_text(json.dumps({"name": "made-elsewhere"}))
    preprocess_id = int(re.search(r"created (\d+)", user.cli("preprocessing", "create", "-f", str(path)).stdout)
                        .group(1))
    # a definition with only a name cannot run on the platform
    refused = user.api("POST", f"/preprocessings/{preprocess_id}/run", json={"dataId": source["id"], "cpu": 1,
                                                                            "memory": 1, "gpu": 0})
    assert refused.status_code == 400 and "cannot run on the platform" in refused.json()["detail"]

    results = tmp_path / "results"
    (results / "cropped" / "deeper").mkdir(parents=True)
    (results / "cropped" / "one.txt").write_text("1")
    (results / "cropped" / "deeper" / "two.txt").write_text("2")
    (results / "ignored.txt").write_text("not in a folder")
    out = user.cli("preprocessing", "build-history", str(preprocess_id), "-did", str(source["id"]), "-s",
                   str(results), "-m", "offline result", "-t", "offline").stdout
    assert f"built {preprocess_id}.{source['id']}" in out
    (history,) = user.api("GET", f"/preprocessings/{preprocess_id}/histories").json()
    assert history["status"] == "Completed" and history["dataId"] == source["id"]
    made = _data_rows(user)["cropped"]
    assert made["parentDataId"] == source["id"] and made["tags"] == ["offline"]
    assert sorted(user.api("GET", f"/data/{made['id']}").json()["fileNames"]) == ["one.txt", "two.txt"]


def test_inference_with_a_training_parent_shows_its_value(world, tmp_path):
    user, repo, commit = world
    data = create_data(user, "infer-input", {"q.txt": b"question"})
    dataset = tmp_path / "ds.json"
    dataset.write_text(json.dumps({"name": "infer-ds", "entries": {"training": [{"id": data["id"]}]}}))
    dataset_id = int(re.search(r"created (\d+)", user.cli("dataset", "create", "-f", str(dataset)).stdout).group(1))
    common = ["-rim", "python", "-rt", "3.11", "-d", str(dataset_id), "-go", repo.owner, "-gr", repo.name,
              "-gc", commit, "-c", "1", "-mem", "1", "-g", "0"]
    training_id = int(re.search(r"created (\d+)", user.cli("training", "create", "-n", "base-model", "-e",
                                                           "python train.py", *common).stdout).group(1))
    wait_job(user, training_id, "Completed", timeout=90)

    out = user.cli("inference", "create", "-n", "score", "-e", "python infer.py", "-pid", str(training_id),
                   *common).stdout
    inference_id = int(re.search(r"created (\d+)", out).group(1))
    details = wait_job(user, inference_id, "Completed", timeout=90, kind="inferences")
    # (the container is named by the job's table id, unique across tenants; the API's id is the tenant's own)
    assert re.fullmatch(r"inference-score-[0-9]+", details["containerName"]), details["containerName"]
    listing = user.cli("inference", "list").stdout
    row = next(line for line in listing.splitlines() if line.split()[:2] == [str(inference_id), "score"])
    assert "1.5" in row.split()
    assert [x["outputValue"] for x in user.api("GET", "/inferences").json() if x["id"] == inference_id] == ["1.5"]
    files = tmp_path / "files"
    files.mkdir()
    user.cli("inference", "download-files", str(inference_id), "-d", str(files))
    log = next(p for p in os.listdir(files) if p.endswith(".log"))
    assert f"inference on {inference_id} value 1.5" in (files / log).read_text()


def test_bad_input_creates_nothing(world):
    user, repo, commit = world
    before_data = len(_data_rows(user))
    before_prep = len(user.api("GET", "/preprocessings").json())
    prep = user.api("POST", "/preprocessings", json={
        "name": "checker", "entryPoint": "python prep.py", "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
        "cpu": 1, "memory": 1, "gpu": 0}).json()
    run = f"/preprocessings/{prep['id']}/run"
    assert user.api("POST", run, json={"dataId": 999999, "cpu": 1, "memory": 1, "gpu": 0}).status_code == 404
    two = create_data(user, "bad-input-data", {"f.txt": b"f"})
    r = user.api("POST", run, json={"dataIds": [two["id"], 999999], "cpu": 1, "memory": 1, "gpu": 0})
    assert r.status_code == 404  # one unknown data: none of the runs starts
    assert user.api("GET", f"/preprocessings/{prep['id']}/histories").json() == []
    r = user.api("POST", run, json={"dataId": two["id"], "cpu": -1, "memory": 1, "gpu": 0})
    assert r.status_code == 400 and "cpu" in r.json()["errors"]
    r = user.api("POST", run, json={"dataId": two["id"], "cpu": 1, "memory": 1, "gpu": 0,
                                    "options": {"DATA_ID": "x"}})
    assert r.status_code == 400 and "options" in r.json()["errors"]
    # an output name outside the character rules (offline flow)
    user.api("POST", f"/preprocessings/{prep['id']}/histories/{two['id']}")
    r = user.api("POST", f"/preprocessings/{prep['id']}/histories/{two['id']}/data",
                 json={"name": "bad name!", "files": []})
    assert r.status_code == 400 and "name" in r.json()["errors"]
    # inference: unknown parent training and unknown parent inference
    body = {"name": "bad-inference", "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": 999999,
            "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
            "entryPoint": "true", "cpu": 1, "memory": 1, "gpu": 0, "parentIds": [999999]}
    r = user.api("POST", "/inferences/run", json=body)
    assert r.status_code == 400 and {"dataSetId", "parentIds"} <= set(r.json()["errors"])
    assert [x for x in user.api("GET", "/inferences").json() if x["name"] == "bad-inference"] == []
    assert len(_data_rows(user)) == before_data + 1  # only the data made above
    assert len(user.api("GET", "/preprocessings").json()) == before_prep + 1
