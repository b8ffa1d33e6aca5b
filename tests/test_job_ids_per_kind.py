"""Issue 14's backend rules, through the official CLI against a real platform.

- Each kind of job counts on its own in a tenant: after a training, a preprocessing run and an
  inference interleaved, `kqi training list` shows 1, 2, 3 and `kqi inference list` starts at 1;
  every route, parent reference, mount and variable a job sees takes those ids.
- A preprocessing's output data keep the input data's tags plus the preprocessing's (the
  platform run and the offline `build-history` alike), and its log names the input data.
- Halting or completing an ended job is one answer for every kind: 409 "has ended already".
- A job that waits says why in `conditionNote` (what `kqi training get` shows).
"""
from __future__ import annotations

import json
import re
import time

import pytest

from .platform import ModelRepo, create_data, tenant_user, wait_job

JOB = """\
import os
os.makedirs("/kqi/output/model", exist_ok=True)
with open("/kqi/output/model/id.txt", "w") as f:
    f.write(os.environ.get("TRAINING_ID") or os.environ.get("INFERENCE_ID") or "")
parents = sorted(os.listdir("/kqi/parent")) if os.path.isdir("/kqi/parent") else []
print("ids", os.environ.get("TRAINING_ID"), os.environ.get("INFERENCE_ID"), "parents",
      os.environ.get("PARENT_ID"), "mounted", ",".join(parents))
"""

PREPROCESS = """\
import os
data_id = os.environ["DATA_ID"]
os.makedirs("/kqi/output/made", exist_ok=True)
with open("/kqi/output/made/x.txt", "w") as f:
    f.write("x")
"""

ENDED = ("Completed", "Failed", "Killed", "Error")


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    user = tenant_user(platform, home=str(tmp_path_factory.mktemp("ids-home")))
    repo = ModelRepo(platform, str(tmp_path_factory.mktemp("ids-repo")), "ids-team", "jobs", tenant=user.tenant)
    commit = repo.commit({"job.py": JOB, "prep.py": PREPROCESS}, "jobs")
    return user, repo, commit


def _created(out: str) -> int:
    return int(re.search(r"created (\d+)", out).group(1))


def _ids(listing: str) -> list[int]:
    """The id column of a CLI table (its first column, after the header)."""
    return [int(line.split()[0]) for line in listing.splitlines()[1:] if line.split() and line.split()[0].isdigit()]


def _log(user, kind: str, job_id: int) -> str:
    return user.api("GET", f"/{kind}/{job_id}/log").text


def _wait_history(user, preprocess_id: int, data_id: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        h = user.api("GET", f"/preprocessings/{preprocess_id}/histories/{data_id}").json()
        if h["status"] in ENDED:
            return h
        assert time.monotonic() < deadline, h
        time.sleep(0.3)


def test_each_kind_counts_on_its_own(world, tmp_path):
    user, repo, commit = world
    data = create_data(user, "ids-input", {"q.txt": b"q"})
    assert user.api("PUT", f"/data/{data['id']}", json={"tags": ["animal"]}).status_code == 200
    spec = tmp_path / "ds.json"
    spec.write_text(json.dumps({"name": "ids-ds", "entries": {"training": [{"id": data["id"]}]}}))
    dataset_id = _created(user.cli("dataset", "create", "-f", str(spec)).stdout)
    common = ["-rim", "python", "-rt", "3.11", "-d", str(dataset_id), "-go", repo.owner, "-gr", repo.name,
              "-gc", commit, "-c", "1", "-mem", "1", "-g", "0"]

    # a training, a preprocessing run and an inference, interleaved
    t1 = _created(user.cli("training", "create", "-n", "first", "-e", "python job.py", *common).stdout)
    definition = tmp_path / "prep.json"
    definition.write_text(json.dumps({
        "name": "ids-prep", "entryPoint": "python prep.py", "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": repo.owner, "repository": repo.name, "commitId": commit},
        "cpu": 1, "memory": 1, "gpu": 0}))
    preprocess_id = _created(user.cli("preprocessing", "create", "-f", str(definition)).stdout)
    user.cli("preprocessing", "run", str(preprocess_id), "-did", str(data["id"]), "-c", "1", "-mem", "1", "-g", "0")
    wait_job(user, t1, ENDED, timeout=90)
    i1 = _created(user.cli("inference", "create", "-n", "score", "-e", "python job.py", "-pid", str(t1),
                           *common).stdout)
    t2 = _created(user.cli("training", "create", "-n", "second", "-e", "python job.py", "-pid", str(t1),
                           *common).stdout)
    wait_job(user, t2, ENDED, timeout=90)
    t3 = _created(user.cli("training", "create", "-n", "third", "-e", "python job.py", "-pid", str(t1),
                           "-pid", str(t2), *common).stdout)
    assert (t1, t2, t3, i1) == (1, 2, 3, 1)

    assert _ids(user.cli("training", "list").stdout) == [3, 2, 1]
    assert _ids(user.cli("inference", "list").stdout) == [1]
    history = _wait_history(user, preprocess_id, data["id"])
    assert history["status"] == "Completed" and history["jobId"] == 1, history

    # every route and reference takes these ids
    for job_id in (t1, t2, t3):
        assert wait_job(user, job_id, "Completed", timeout=90)["id"] == job_id
    details = wait_job(user, i1, "Completed", timeout=90, kind="inferences")
    assert [p["id"] for p in details["parents"]] == [t1]
    third = user.api("GET", f"/training/{t3}").json()
    assert sorted(p["id"] for p in third["parents"]) == [1, 2]
    assert sorted(third["parentFullNameList"]) == ["1:first", "2:second"]
    assert user.cli("training", "get", "2").stdout.count("second") >= 1
    assert [j["id"] for j in user.api("GET", "/training", params={"parentId": "1"}).json()] == [3, 2]
    assert [j["id"] for j in user.api("GET", "/training", params={"id": "2"}).json()] == [2]
    assert user.api("GET", "/inferences/2").status_code == 404  # no second inference, whatever the table ids
    names = [f["fileName"] for f in user.api("GET", f"/training/{t3}/files").json()]
    assert "training_stdout_stderr_3.log" in names, names
    out = tmp_path / "t3"
    out.mkdir()
    user.cli("training", "download-container-files", str(t3), "-d", str(out))
    assert (out / "model" / "id.txt").read_text() == "3"

    # what the jobs saw: their own id, their parents' ids, mounted at /kqi/parent/<id>
    assert "ids 3 None parents 1,2 mounted 1,2" in _log(user, "training", t3)
    assert "ids None 1 parents 1 mounted model" in _log(user, "inferences", i1)  # one parent: /kqi/parent itself

    # a notebook mounts trainings and inferences by these ids too (checked before it starts)
    bad = user.api("POST", "/notebook/run", json={"name": "nb", "cpu": 1, "memory": 1, "gpu": 0,
                                                 "parentIds": [4], "inferenceIds": [2]})
    assert bad.status_code == 400, bad.text
    errors = bad.json()["errors"]
    assert errors["parentIds"] == ["no training has the id 4 in this tenant"], errors
    assert errors["inferenceIds"] == ["no inference has the id 2 in this tenant"], errors

    # another tenant counts from 1 as well, and cannot reach this tenant's jobs by those ids
    other = tenant_user(user.platform)
    assert other.api("GET", f"/training/{t1}").status_code == 404

    # the preprocessing's output keeps the input's tag and adds its own; its log names the data
    made = {d["name"]: d for d in user.api("GET", "/data", params={"perPage": 1000}).json()}["made"]
    assert made["tags"] == ["animal", "ids-prep"], made  # (listed by name)
    log = user.api("GET", f"/preprocessings/{preprocess_id}/histories/{data['id']}/log").text
    assert f"data {data['id']} laid out under /kqi/input" in log and "dataset None" not in log, log

    # one rule for ending an ended job, every kind: 409 "has ended already"
    for args in (("training", "halt", str(t1)), ("training", "complete", str(t2)),
                 ("inference", "halt", str(i1)), ("inference", "complete", str(i1)),
                 ("preprocessing", "halt-history", str(preprocess_id), "-did", str(data["id"]))):
        refused = user.cli(*args, check=False)
        text = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "409" in text and "has ended already" in text, (args, text)
    assert user.api("GET", f"/training/{t1}").json()["status"] == "Completed"


def test_offline_history_data_keep_the_input_tags(world, tmp_path):
    user, _repo, _commit = world
    source = create_data(user, "ids-offline-in", {"x.txt": b"x"})
    assert user.api("PUT", f"/data/{source['id']}", json={"tags": ["animal", "raw"]}).status_code == 200
    path = tmp_path / "offline.json"
    path.write_text(json.dumps({"name": "elsewhere"}))
    preprocess_id = _created(user.cli("preprocessing", "create", "-f", str(path)).stdout)
    results = tmp_path / "results"
    (results / "cut").mkdir(parents=True)
    (results / "cut" / "one.txt").write_text("1")
    (results / "plain").mkdir()
    (results / "plain" / "two.txt").write_text("2")
    user.cli("preprocessing", "build-history", str(preprocess_id), "-did", str(source["id"]), "-s", str(results))
    rows = {d["name"]: d for d in user.api("GET", "/data", params={"perPage": 1000}).json()}
    for name in ("cut", "plain"):  # (a data's tags are listed by name)
        assert rows[name]["tags"] == ["animal", "elsewhere", "raw"], rows[name]

    # the ended offline history: the same 409 as every kind
    refused = user.cli("preprocessing", "halt-history", str(preprocess_id), "-did", str(source["id"]), check=False)
    text = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "409" in text and "has ended already" in text, text


def test_a_waiting_job_says_why_in_its_condition_note(platform, tmp_path):
    tenant = platform.create_tenant(limitCpu=1)
    user = tenant_user(platform, tenant=tenant, home=str(tmp_path / "home"))
    repo_commit = ModelRepo(platform, str(tmp_path / "repo"), "wait-team", "jobs", tenant=tenant)
    commit = repo_commit.commit({"sleep.py": "import time\ntime.sleep(120)\n"}, "jobs")
    data = create_data(user, "wait-input", {"q.txt": b"q"})
    spec = tmp_path / "ds.json"
    spec.write_text(json.dumps({"name": "wait-ds", "entries": {"training": [{"id": data["id"]}]}}))
    dataset_id = _created(user.cli("dataset", "create", "-f", str(spec)).stdout)
    common = ["-rim", "python", "-rt", "3.11", "-d", str(dataset_id), "-go", repo_commit.owner,
              "-gr", repo_commit.name, "-gc", commit, "-c", "1", "-mem", "1", "-g", "0", "-e", "python sleep.py"]
    first = _created(user.cli("training", "create", "-n", "holder", *common).stdout)
    try:
        wait_job(user, first, "Running", timeout=90)
        second = _created(user.cli("training", "create", "-n", "waiter", *common).stdout)
        try:
            waiting = wait_job(user, second, "Queued")
            assert waiting["conditionNote"] == waiting["waitReason"] == \
                "tenant quota: cpu 1 in use of 1, this job needs 1", waiting
            shown = user.cli("training", "get", str(second)).stdout
            assert "tenant quota: cpu 1 in use of 1" in shown, shown
        finally:
            user.cli("training", "halt", str(second), check=False)
        halted = user.api("GET", f"/training/{second}").json()
        assert halted["status"] == "Killed" and halted["conditionNote"] == "halted by the user", halted
    finally:
        user.cli("training", "halt", str(first), check=False)
    wait_job(user, first, ENDED)


def test_halting_an_ended_notebook_is_the_same_409(world):
    """The notebook, the fourth kind: the CLI halts it once; a second halt is the 409 of every kind."""
    from .platform import wait_notebook

    user = world[0]
    r = user.api("POST", "/notebook/run", json={"name": "ids-nb", "cpu": 1, "memory": 1, "gpu": 0,
                                               "expiresIn": 3600})
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    try:
        wait_notebook(user.platform, user.token, nb_id, "Running", timeout=180)
        out = user.cli("notebook", "halt", str(nb_id))
        assert out.returncode == 0, out.stderr
        assert user.api("GET", f"/notebook/{nb_id}").json()["status"] == "Killed"
        again = user.cli("notebook", "halt", str(nb_id), check=False)
        text = again.stdout + again.stderr
        assert again.returncode != 0 and "409" in text and f"notebook {nb_id} has ended already (Killed)" in text, text
    finally:
        user.api("DELETE", f"/notebook/{nb_id}")
