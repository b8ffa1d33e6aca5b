"""Training end to end with the official kamonohashi-cli (`kqi`), unmodified, on a real KQI Hub:
a model repository made by the test, data and a dataset, trainings that run in the local
container (podman, the image asked for) and check what they see, outputs and logs downloaded and checked,
parents, failures, halt, complete, update, files, delete, job tokens and the Slack message
at the end of a job.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from .platform import (ModelRepo, containers, job_output_dir, job_row_id, local_store_dir, processes_with,
                       tenant_user, wait_job)

# The training script of the model repository: it asserts what it can know by itself and
# reports the rest (environment, inputs, git, what its job token may do) for the test.
TRAIN_PY = r'''
import json, os, subprocess, urllib.error, urllib.request

env = os.environ
assert os.getcwd() == "/kqi/git", os.getcwd()
assert env["MY_OPTION"] == "hello world", env.get("MY_OPTION")
assert os.path.isdir("/kqi/output")

report = {"cwd": os.getcwd(), "uid": os.getuid()}
for name in ("TRAINING_ID", "DATASET_ID", "PARENT_ID", "COMMIT_ID", "KQI_SERVER", "MODEL_REPOSITORY", "ENTRY_POINT",
             "LC_ALL", "LANG", "MY_OPTION", "ZIP_FILE_CREATED", "LOCAL_DATASET", "TENANT_NAME"):
    report[name] = env.get(name)
report["head"] = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
assert report["head"] == env["COMMIT_ID"], (report["head"], env["COMMIT_ID"])
report["version"] = open("VERSION").read().strip()

inputs = {}
for dirpath, _dirs, files in os.walk("/kqi/input"):
    for name in files:
        full = os.path.join(dirpath, name)
        inputs[os.path.relpath(full, "/kqi/input")] = open(full).read()
report["inputs"] = inputs
report["raw"] = os.path.isdir("/kqi/raw/Data")
hidden = env["EXPECT_HIDDEN"]
report["data_dir_entries"] = sorted(os.listdir(hidden)) if os.path.isdir(hidden) else None
report["parent"] = os.path.exists("/kqi/parent")

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(env["KQI_SERVER"] + "/api/v2" + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + env["KQI_TOKEN"],
                                              "Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
own, other = env["TRAINING_ID"], env["OTHER_TRAINING"]
report["token"] = {
    "get own data": call("GET", "/data/" + env["OWN_DATA"]),
    "get own training": call("GET", "/training/" + own),
    "get other tenant data": call("GET", "/data/" + env["OTHER_TENANT_DATA"]),
    "get other training": call("GET", "/training/" + other),
    "update other training": call("PUT", "/training/" + other, {"memo": "changed by a job"}),
    "list the tenants": call("GET", "/admin/tenants"),
    "change the password": call("PUT", "/account/password", {"currentPassword": "x", "newPassword": "y"}),
}

os.makedirs("/kqi/output/sub", exist_ok=True)
with open("/kqi/output/report.json", "w") as f:
    json.dump(report, f)
with open("/kqi/output/sub/model.txt", "w") as f:
    f.write("weights of " + own)
with open("/kqi/output/token.txt", "w") as f:
    f.write(env["KQI_TOKEN"])
print("training", own, "done at", report["head"])
'''

SHOW_COMMIT = ("git rev-parse HEAD > /kqi/output/head.txt && cat VERSION > /kqi/output/version.txt"
               " && echo COMMIT_ID=$COMMIT_ID")


# ---------------------------------------------------------------------------- helpers
class Receiver:
    """A Slack webhook stand-in on 127.0.0.1 that records the JSON it is sent."""

    def __init__(self):
        self.messages: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.messages.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kqi"

    def texts(self) -> list[str]:
        return [json.dumps(m) for m in self.messages]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def created_id(result) -> int:
    match = re.search(r"created (\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return int(match.group(1))


def files_in(folder: str) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, folder)] = f.read()
    return out


class Env:
    """What the module's trainings share: the user, the repository, the data and dataset."""

    def __init__(self, platform, user, repo, commits, data_ids, dataset_id, other_tenant_data, receiver, tmp):
        self.platform, self.user, self.repo = platform, user, repo
        self.commits, self.data_ids, self.dataset_id = commits, data_ids, dataset_id
        self.other_tenant_data, self.receiver, self.tmp = other_tenant_data, receiver, tmp

    def create(self, name: str, *extra: str, entry: str = SHOW_COMMIT, check: bool = True):
        args = ["training", "create", "-n", name, "-rim", "python", "-rt", "3.11", "-d", str(self.dataset_id),
                "-e", entry, "-go", self.repo.owner, "-gr", self.repo.name, "-c", "1", "-mem", "1", "-g", "0", *extra]
        result = self.user.cli(*args, check=check)
        return created_id(result) if check else result

    def get(self, job_id: int) -> dict:
        r = self.user.api("GET", f"/training/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def download_files(self, job_id: int) -> dict[str, bytes]:
        dest = os.path.join(self.tmp, f"files-{job_id}-{uuid.uuid4().hex[:6]}")
        os.makedirs(dest)
        self.user.cli("training", "download-files", str(job_id), "-d", dest)
        return files_in(dest)

    def container_files(self, job_id: int) -> dict[str, bytes]:
        dest = os.path.join(self.tmp, f"container-{job_id}-{uuid.uuid4().hex[:6]}")
        os.makedirs(dest)
        self.user.cli("training", "download-container-files", str(job_id), "-d", dest)
        return files_in(dest)

    def count(self) -> int:
        r = self.user.api("GET", "/training", params={"perPage": 1000})
        assert r.status_code == 200, r.text
        return len(r.json())


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def env(platform, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("training-cli"))
    user = tenant_user(platform, home=os.path.join(tmp, "home"))
    receiver = Receiver()
    r = user.api("PUT", "/account/webhook/slack", json={"slackUrl": receiver.url})
    assert r.status_code in (200, 204), r.text

    repo = ModelRepo(platform, os.path.join(tmp, "work"), "team", f"model-{uuid.uuid4().hex[:8]}",
                     tenant=user.tenant)
    commits = {"v1": repo.commit({"train.py": TRAIN_PY, "VERSION": "v1\n"}, "first model")}
    commits["v2"] = repo.commit({"VERSION": "v2\n"}, "second model")
    commits["v3"] = repo.commit({"VERSION": "v3\n"}, "a feature", branch="feature")

    inputs = {"a.txt": "alpha", "b.txt": "beta", "c.txt": "gamma"}
    for name, text in inputs.items():
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    path = lambda n: os.path.join(tmp, n)  # noqa: E731
    d1 = created_id(user.cli("data", "create", "-n", "train-data", "-f", path("a.txt"), "-f", path("b.txt")))
    d2 = created_id(user.cli("data", "create", "-n", "test-data", "-f", path("c.txt")))
    spec = os.path.join(tmp, "dataset.json")
    with open(spec, "w") as f:
        json.dump({"name": "cli-training-set", "entries": {"training": [{"id": d1}], "testing": [{"id": d2}]}}, f)
    dataset_id = created_id(user.cli("dataset", "create", "-f", spec))

    other = tenant_user(platform)
    r = other.api("POST", "/data", json={"name": "not-yours"})
    assert r.status_code == 201, r.text
    yield Env(platform, user, repo, commits, {"train": d1, "test": d2}, dataset_id, r.json()["id"], receiver, tmp)
    receiver.close()


@pytest.fixture(scope="module")
def runs(env):
    """The module's first trainings, submitted together: a failing one, the main one (commit
    v2, the full script), one on a branch without a commit, one at an older commit."""
    failing = env.create("failing", entry="echo about to fail; echo on stderr >&2; exit 3")
    before = env.count()
    refused = env.create("reserved", "-o", "KQI_TOKEN", "mine", entry="true", check=False)
    assert refused.returncode != 0 and "400" in refused.stdout + refused.stderr
    assert "KQI_TOKEN is set by the platform" in refused.stdout + refused.stderr
    refused = env.create("reserved", "-o", "TRAINING_ID", "7", entry="true", check=False)
    assert refused.returncode != 0 and "TRAINING_ID" in refused.stdout + refused.stderr
    assert env.count() == before
    main = env.create("main-run", "-gc", env.commits["v2"], "-o", "MY_OPTION", "hello world",
                      "-o", "EXPECT_HIDDEN", env.platform.data_dir, "-o", "OWN_DATA", str(env.data_ids["train"]),
                      "-o", "OTHER_TENANT_DATA", str(env.other_tenant_data), "-o", "OTHER_TRAINING", str(failing),
                      "-t", "first", "-m", "the main run", entry="python3 train.py")
    branch = env.create("branch-run", "-gb", "feature", "--un-zip")
    older = env.create("older-run", "-gc", env.commits["v1"][:10])
    ids = {"failing": failing, "main": main, "branch": branch, "older": older}
    details = {name: wait_job(env.user, job_id, ("Completed", "Failed", "Killed", "Error"), timeout=120)
               for name, job_id in ids.items()}
    return ids, details


# ------------------------------------------------------------------------------ tests
def test_training_sees_dataset_commit_env_and_stores_outputs(env, runs):
    ids, details = runs
    main = details["main"]
    assert main["status"] == "Completed", (main["conditionNote"], env.download_files(ids["main"]))
    assert main["gitModel"]["commitId"] == env.commits["v2"]
    assert main["gitModel"]["branch"] is None or main["gitModel"]["branch"] == "master"
    assert main["waitingTime"] is not None and main["executionTime"] is not None
    out = env.user.cli("training", "get", str(ids["main"])).stdout
    assert env.commits["v2"] in out and "main-run" in out

    files = env.download_files(ids["main"])
    log_name = f"training_stdout_stderr_{ids['main']}.log"
    assert set(files) == {"output.zip", log_name}
    log = files[log_name].decode()
    assert f"training {ids['main']} done at {env.commits['v2']}" in log
    assert "running: python3 train.py" in log
    zpath = os.path.join(env.tmp, "main-output.zip")
    with open(zpath, "wb") as f:
        f.write(files["output.zip"])
    with zipfile.ZipFile(zpath) as z:
        assert sorted(z.namelist()) == ["report.json", "sub/model.txt", "token.txt"]
        report = json.loads(z.read("report.json"))
        assert z.read("sub/model.txt").decode() == f"weights of {ids['main']}"

    container = env.container_files(ids["main"])
    assert sorted(container) == ["report.json", "sub/model.txt", "token.txt"]
    assert json.loads(container["report.json"]) == report

    d1, d2 = env.data_ids["train"], env.data_ids["test"]
    assert report["inputs"] == {f"training/{d1}/a.txt": "alpha", f"training/{d1}/b.txt": "beta",
                                f"testing/{d2}/c.txt": "gamma"}
    assert report["cwd"] == "/kqi/git" and report["uid"] == 0
    assert report["head"] == env.commits["v2"] and report["version"] == "v2"
    assert report["TRAINING_ID"] == str(ids["main"])
    assert report["DATASET_ID"] == str(env.dataset_id)
    assert report["PARENT_ID"] == ""
    assert report["COMMIT_ID"] == env.commits["v2"]
    assert report["KQI_SERVER"] == env.platform.service_url
    assert report["MODEL_REPOSITORY"] == f"file://{env.repo.bare}"
    assert report["ENTRY_POINT"] == "python3 train.py"
    assert report["LC_ALL"] == report["LANG"] == "C.UTF-8"
    assert report["MY_OPTION"] == "hello world"
    assert report["ZIP_FILE_CREATED"] == "true" and report["LOCAL_DATASET"] == "false"
    assert report["TENANT_NAME"] == env.user.tenant["name"]
    assert report["raw"] is True and report["parent"] is False
    # the platform's data directory is hidden: only the model repository is bound into it
    assert report["data_dir_entries"] == ["git"]

    # the job token: its owner's rights in its tenant (other trainings too), not other tenants,
    # system administration or the owner's account
    assert report["token"] == {
        "get own data": 200, "get own training": 200, "get other tenant data": 404,
        "get other training": 200, "update other training": 200, "list the tenants": 403,
        "change the password": 403,
    }
    assert env.get(ids["failing"])["memo"] == "changed by a job"
    # ... and it died with the job
    token = container["token.txt"].decode()
    assert token.startswith("kqi-job.")
    r = requests.get(f"{env.platform.api_url}/data/{d1}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401

    # the dataset is locked now that a training used it
    r = env.user.api("GET", f"/datasets/{env.dataset_id}")
    assert r.status_code == 200 and r.json().get("isLocked") is True, r.text


def test_branch_head_and_older_commit(env, runs):
    ids, details = runs
    branch, older = details["branch"], details["older"]
    assert branch["status"] == "Completed", branch["conditionNote"]
    assert branch["gitModel"]["branch"] == "feature"
    assert branch["gitModel"]["commitId"] == env.commits["v3"]  # the branch head, stored at submit time
    out = env.container_files(ids["branch"])
    assert out == {"head.txt": f"{env.commits['v3']}\n".encode(), "version.txt": b"v3\n"}
    # no zip asked: only the log is attached
    assert set(env.download_files(ids["branch"])) == {f"training_stdout_stderr_{ids['branch']}.log"}

    assert older["status"] == "Completed", older["conditionNote"]
    assert older["gitModel"]["commitId"] == env.commits["v1"]  # the short id resolved to the full one
    out = env.container_files(ids["older"])
    assert out == {"head.txt": f"{env.commits['v1']}\n".encode(), "version.txt": b"v1\n"}
    log = env.download_files(ids["older"])[f"training_stdout_stderr_{ids['older']}.log"].decode()
    assert f"COMMIT_ID={env.commits['v1']}" in log


def test_failing_command_ends_failed_with_its_log(env, runs):
    ids, details = runs
    failed = details["failing"]
    assert failed["status"] == "Failed"
    assert failed["exitCode"] == 3
    assert "exited with status 3" in failed["conditionNote"]
    files = env.download_files(ids["failing"])
    assert set(files) == {f"training_stdout_stderr_{ids['failing']}.log"}  # no output.zip after a failure
    log = files[f"training_stdout_stderr_{ids['failing']}.log"].decode()
    assert "about to fail" in log and "on stderr" in log
    assert "the command exited with status 3" in log
    assert "Failed" in env.user.cli("training", "list", "--status", "Failed").stdout


def test_slack_message_at_the_end_of_a_job(env, runs):
    ids, _ = runs
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        texts = env.receiver.texts()
        if (any(f"training {ids['main']} ended: Completed" in t for t in texts)
                and any(f"training {ids['failing']} ended: Failed" in t for t in texts)):
            break
        time.sleep(0.2)
    texts = env.receiver.texts()
    main_msg = [t for t in texts if f"training {ids['main']} ended: Completed" in t]
    assert main_msg, texts
    assert "main-run" in main_msg[0]
    assert any(f"training {ids['failing']} ended: Failed" in t for t in texts), texts


def test_child_reads_parent_output_read_only(env, runs):
    ids, _ = runs
    entry = ("cp /kqi/parent/sub/model.txt /kqi/output/from-parent.txt"
             " && if touch /kqi/parent/new 2>/dev/null; then echo PARENT_WRITABLE; exit 9; fi"
             " && echo PARENT_ID=$PARENT_ID")
    child = env.create("child-run", "-pid", str(ids["main"]), entry=entry)
    done = wait_job(env.user, child, ("Completed", "Failed", "Error"), timeout=90)
    assert done["status"] == "Completed", (done["conditionNote"], env.download_files(child))
    assert done["parentFullNameList"] == [f"{ids['main']}:main-run"]
    out = env.container_files(child)
    assert out["from-parent.txt"] == f"weights of {ids['main']}".encode()
    log = env.download_files(child)[f"training_stdout_stderr_{child}.log"].decode()
    assert f"PARENT_ID={ids['main']}" in log  # (and /kqi/parent was not writable: else exit 9)
    assert not os.path.exists(os.path.join(job_output_dir(env.platform, env.user.tenant, job_row_id(env.user, ids["main"])), "new"))

    # the parent cannot be deleted while a child mounts it
    refused = env.user.cli("training", "delete", str(ids["main"]), check=False)
    assert refused.returncode != 0 and "409" in refused.stdout + refused.stderr
    assert f"mounted by training {child}" in refused.stdout + refused.stderr
    assert env.get(ids["main"])["status"] == "Completed"


def test_halt_kills_the_whole_tree_and_container_files_while_running(env):
    marker = random.randint(100000, 999999)
    entry = f"echo started > /kqi/output/alive.txt; sleep {marker} & sleep {marker + 1}; wait"
    job = env.create("halt-me", entry=entry)
    wait_job(env.user, job, "Running", timeout=90)
    deadline = time.monotonic() + 30
    sleeps = lambda: processes_with(f"sleep {marker}", exact=True) + processes_with(f"sleep {marker + 1}", exact=True)  # noqa: E731
    while time.monotonic() < deadline and len(sleeps()) < 2:
        time.sleep(0.1)
    assert len(sleeps()) == 2
    listed = env.user.cli("training", "list-container-files", str(job)).stdout.split()
    assert listed == ["/alive.txt"]
    assert env.container_files(job) == {"alive.txt": b"started\n"}

    assert f"halted {job}" in env.user.cli("training", "halt", str(job)).stdout
    halted = env.get(job)
    assert halted["status"] == "Killed" and halted["conditionNote"] == "halted by the user"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_with(f"sleep {marker}"):
        time.sleep(0.1)
    assert processes_with(f"sleep {marker}") == []
    # nothing of the job is left: no container (with it go its environment and the job token)
    assert containers(env.platform, f"training-{job_row_id(env.user, job)}", running_only=False) == []
    assert f"training_stdout_stderr_{job}.log" in env.download_files(job)
    # halting again is refused: it has ended
    again = env.user.cli("training", "halt", str(job), check=False)
    assert again.returncode != 0 and "409" in again.stdout + again.stderr


def test_complete_ends_a_running_training_as_completed(env):
    marker = random.randint(100000, 999999)
    job = env.create("complete-me", entry=f"sleep {marker}")
    wait_job(env.user, job, "Running", timeout=90)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not processes_with(f"sleep {marker}", exact=True):
        time.sleep(0.1)
    assert processes_with(f"sleep {marker}", exact=True)
    assert f"completed {job}" in env.user.cli("training", "complete", str(job)).stdout
    assert env.get(job)["status"] == "Completed"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_with(f"sleep {marker}"):
        time.sleep(0.1)
    assert processes_with(f"sleep {marker}") == []


def test_update_and_user_files(env, runs):
    ids, _ = runs
    job = ids["branch"]
    out = env.user.cli("training", "update", str(job), "-n", "renamed-run", "-m", "a new memo", "-fav",
                       "-t", "red", "-t", "blue").stdout
    assert f"updated {job}" in out
    got = env.get(job)
    assert (got["name"], got["memo"], got["favorite"], sorted(got["tags"])) == (
        "renamed-run", "a new memo", True, ["blue", "red"])
    listed = env.user.cli("training", "list", "--tag", "red").stdout
    assert "renamed-run" in listed and "main-run" not in listed
    env.user.cli("training", "update", str(job), "-unfav", "-t", "red")
    got = env.get(job)
    assert got["favorite"] is False and got["tags"] == ["red"] and got["memo"] == "a new memo"
    bad = env.user.cli("training", "update", str(job), "-n", "Bad_Name", check=False)
    assert bad.returncode != 0 and "400" in bad.stdout + bad.stderr

    note = os.path.join(env.tmp, "notes.txt")
    with open(note, "w") as f:
        f.write("my notes")
    env.user.cli("training", "upload-file", str(job), "-f", note)
    rows = [line.split() for line in env.user.cli("training", "list-files", str(job)).stdout.splitlines()[1:]]
    by_name = {r[1]: int(r[0]) for r in rows if r}
    assert set(by_name) == {f"training_stdout_stderr_{job}.log", "notes.txt"}
    assert env.download_files(job)["notes.txt"] == b"my notes"
    locked = env.user.cli("training", "delete-file", str(job), "-f", str(by_name[f"training_stdout_stderr_{job}.log"]),
                          check=False)
    assert locked.returncode != 0 and "409" in locked.stdout + locked.stderr
    assert f"deleted {by_name['notes.txt']}" in env.user.cli("training", "delete-file", str(job), "-f",
                                                            str(by_name["notes.txt"])).stdout
    rows = env.user.cli("training", "list-files", str(job)).stdout
    assert "notes.txt" not in rows and f"training_stdout_stderr_{job}.log" in rows


def test_delete_removes_stored_outputs(env, runs):
    ids, _ = runs
    job = ids["older"]
    store = os.path.join(local_store_dir(env.platform), *env.user.tenant["storagePath"].split("/"))
    row = job_row_id(env.user, job)  # the stored folders are named by the table id, not the tenant's number
    output = os.path.join(store, "TrainingContainerOutputFiles", str(row))
    attach = os.path.join(store, "TrainingContainerAttachedFiles", str(row))
    assert os.listdir(output) and os.listdir(attach)
    assert f"deleted {job}" in env.user.cli("training", "delete", str(job)).stdout
    assert not os.path.exists(output) or not os.listdir(output)
    assert not os.path.exists(attach) or not os.listdir(attach)
    assert env.user.api("GET", f"/training/{job}").status_code == 404
    gone = env.user.cli("training", "get", str(job), check=False)
    assert gone.returncode != 0 and "404" in gone.stdout + gone.stderr
