"""The job engine on a real KQI Hub of its own (stop_jobs_on_exit False, a job capacity of 3
cpus, a 0.5 s tick): a kill -9 of the kqi service while two jobs run and one waits (the hub
restarts the service; nothing is lost, nothing runs twice), the tenant quota, bad input,
the status state machine with its reasons, and the recorded waiting and run times.

The jobs wait for a file the test writes into their /kqi/output (a folder of the local
object store, bound into the sandbox), so that the test decides when each one ends.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import requests

from .platform import (ModelRepo, containers, create_data, job_output_dir, job_row_id, new_platform, remove_tree,
                       service_pids, tenant_user, wait_job)

CAPACITY_CPU = 3
ENDED = ("Completed", "Failed", "Killed", "Error")
# appends to runs.txt when it starts and when it ends: one run = exactly "start\ndone\n"
HOLD = ("echo start >> /kqi/output/runs.txt; "
        "while [ ! -f /kqi/output/release ]; do sleep 0.1; done; "
        "echo done >> /kqi/output/runs.txt")


@pytest.fixture(scope="module")
def plat(db_backend, request, tmp_path_factory):
    base = str(tmp_path_factory.mktemp(f"engine-{db_backend}"))
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write("c.KqiService.stop_jobs_on_exit = False\n"
                f"c.KqiService.job_capacity_cpu = {CAPACITY_CPU}\n"
                "c.KqiService.job_tick_seconds = 0.5\n")
    env = {"KQI_SERVICE_CONFIG": config}
    if db_backend == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        env["KQI_HUB_DB_URL"] = pg.create_database(f"hub_engine_{suffix}")
        env["KQI_DB_URL"] = pg.create_database(f"kqi_engine_{suffix}")
    p = new_platform(base, env)
    p.start()
    p.repo = ModelRepo(p, os.path.join(base, "work"), "engine", "model", tenant="sandbox")  # the first tenant
    p.commit = p.repo.commit({"README": "a model\n"}, "first")
    p.users = []
    yield p
    # jobs outlive a stop here (stop_jobs_on_exit False): end whatever a failed test left running
    for user in p.users:
        r = user.api("GET", "/training", params={"perPage": 1000})
        for job in r.json() if r.status_code == 200 else []:
            if job["status"] in ("Queued", "Running"):
                user.api("POST", f"/training/{job['id']}/halt")
    p.stop()
    remove_tree(base)


class Tenant:
    """A user in a tenant of its own with a one-file dataset, submitting through the API."""

    def __init__(self, plat, **tenant_fields):
        self.plat = plat
        self.user = tenant_user(plat, tenant=plat.create_tenant(**tenant_fields) if tenant_fields else None)
        plat.users.append(self.user)
        plat.repo.add_tenant(self.user.tenant)  # repositories belong to a tenant: a copy of its own
        data = create_data(self.user, "input", {"x.txt": b"x"})
        r = self.user.api("POST", "/datasets", json={"name": "set", "entries": {"training": [{"id": data["id"]}]}})
        assert r.status_code == 201, r.text
        self.dataset_id = r.json()["id"]
        self.rows: dict[int, int] = {}  # the API's id of each submitted training → its table id

    def body(self, name: str, entry: str = HOLD, cpu: float = 1, memory: float = 1, **extra) -> dict:
        return {"name": name, "dataSetId": self.dataset_id, "entryPoint": entry, "cpu": cpu, "memory": memory,
                "gpu": 0, "containerImage": {"image": "python", "tag": "3.11"},
                "gitModel": {"gitId": 1, "owner": self.plat.repo.owner, "repository": self.plat.repo.name},
                **extra}

    def submit(self, name: str, entry: str = HOLD, **kw) -> int:
        r = self.user.api("POST", "/training/run", json=self.body(name, entry, **kw))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        self.rows[job_id] = job_row_id(self.user, job_id)  # (asked now: output() may be read while the service is down)
        return job_id

    def get(self, job_id: int) -> dict:
        r = self.user.api("GET", f"/training/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: int, statuses, timeout: float = 90) -> dict:
        return wait_job(self.user, job_id, statuses, timeout=timeout)

    def output(self, job_id: int) -> str:
        # stored under its table id (the API's id is the tenant's own)
        return job_output_dir(self.plat, self.user.tenant, self.rows[job_id])

    def runs(self, job_id: int) -> str:
        try:
            with open(os.path.join(self.output(job_id), "runs.txt")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_started(self, job_id: int, timeout: float = 60) -> None:
        """Running, and its command is under way (it wrote its start line)."""
        self.wait(job_id, "Running", timeout)
        deadline = time.monotonic() + timeout
        while "start" not in self.runs(job_id):
            assert time.monotonic() < deadline, f"training {job_id} did not start its command"
            time.sleep(0.1)

    def release(self, *job_ids: int) -> None:
        for job_id in job_ids:
            os.makedirs(self.output(job_id), exist_ok=True)
            open(os.path.join(self.output(job_id), "release"), "w").close()

    def waiting(self, job_id: int, timeout: float = 20) -> dict:
        """Its details once the scheduler gave it a queue position."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job["status"] == "Queued" and job["queuePosition"] is not None:
                return job
            assert job["status"] == "Queued" and time.monotonic() < deadline, job
            time.sleep(0.1)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def seconds(duration: str) -> int:
    h, m, s = (int(x) for x in duration.split(":"))
    return h * 3600 + m * 60 + s


# ------------------------------------------------------------------------------- restart
def test_kill_9_of_the_service_loses_no_job_and_runs_none_twice(plat):
    t = Tenant(plat)
    a, b = t.submit("run-a"), t.submit("run-b")
    t.wait_started(a)
    t.wait_started(b)
    c = t.submit("run-c", cpu=2)  # 1 cpu is free of 3: it waits for capacity
    waiting = t.waiting(c)
    assert waiting["queuePosition"] == 1
    assert waiting["waitReason"].startswith("cluster capacity: 1 cpu free, this job needs 2; node ")  # + the node

    (pid,) = service_pids(plat)
    killed_at = datetime.utcnow()
    os.kill(pid, signal.SIGKILL)
    # while the service is down: a ends (its result waits in its job folder), b goes on
    t.release(a)
    result = os.path.join(plat.data_dir, "jobs", f"training-{t.rows[a]}", "tmp", "result.json")
    deadline = time.monotonic() + 30
    while not os.path.exists(result):
        assert time.monotonic() < deadline, "training a did not end while the service was down"
        time.sleep(0.1)
    assert pid not in service_pids(plat)
    assert requests.get(f"{plat.api_url}/version", timeout=5).status_code != 200

    # the hub restarts its managed service (it polls every 30 s)
    deadline = time.monotonic() + 90
    while True:
        pids = service_pids(plat)
        try:
            up = bool(pids) and requests.get(f"{plat.api_url}/version", timeout=5).status_code == 200
        except requests.RequestException:
            up = False
        if up:
            break
        assert time.monotonic() < deadline, "the hub did not restart the kqi service:\n" + plat.log_tail()
        time.sleep(0.5)
    assert pid not in pids

    # a was finished from its result; b is watched again, still running; c starts in a's room
    done_a = t.wait(a, ENDED, timeout=30)
    assert done_a["status"] == "Completed", done_a["conditionNote"]
    assert t.runs(a) == "start\ndone\n"
    got_b = t.get(b)
    assert got_b["status"] == "Running" and t.runs(b) == "start\n", (got_b, t.runs(b), plat.log_tail(120))
    t.wait_started(c)  # a's cpu is free again: 2 of 3 free now
    t.release(b, c)
    for job_id in (b, c):
        done = t.wait(job_id, ENDED, timeout=60)
        assert done["status"] == "Completed", done["conditionNote"]
        assert t.runs(job_id) == "start\ndone\n"  # one run each: nothing ran twice
    # the logs are stored for all three, the one that ended while the service was down too
    for job_id in (a, b, c):
        names = [f["fileName"] for f in t.user.api("GET", f"/training/{job_id}/files").json()]
        assert f"training_stdout_stderr_{job_id}.log" in names
    assert when(t.get(c)["startedAt"]) > killed_at  # c started by the restarted service, once


# --------------------------------------------------------------------------------- quota
def test_tenant_quota_two_run_one_waits_then_runs(plat):
    t = Tenant(plat, limitCpu=2)
    first, second, third = (t.submit(f"quota-{i}") for i in (1, 2, 3))
    t.wait_started(first)
    t.wait_started(second)
    waiting = t.waiting(third)
    assert waiting["queuePosition"] == 1
    assert waiting["waitReason"] == "tenant quota: cpu 2 in use of 2, this job needs 1"
    fourth = t.submit("quota-4")
    assert t.waiting(fourth)["queuePosition"] == 2
    assert t.get(fourth)["waitReason"] == ("behind earlier jobs of the tenant; the first one waits for "
                                           "tenant quota: cpu 2 in use of 2, this job needs 1")
    # the capacity has room (3 cpus): only the quota holds them
    time.sleep(1.5)
    assert t.get(third)["status"] == "Queued" and t.runs(third) == ""

    # a queued job can be halted: it ends Killed without having run
    r = t.user.api("POST", f"/training/{fourth}/halt")
    assert r.status_code == 200, r.text
    killed = t.get(fourth)
    assert killed["status"] == "Killed" and killed["startedAt"] is None and killed["executionTime"] is None
    assert killed["completedAt"] is not None and killed["queuePosition"] is None
    # it waited from its submit to its halt, a time that no longer grows
    assert seconds(killed["waitingTime"]) == int((when(killed["completedAt"]) - when(killed["queuedAt"])).total_seconds())

    t.release(first)
    assert t.wait(first, ENDED)["status"] == "Completed"
    t.wait_started(third)
    third_details = t.get(third)
    assert third_details["queuePosition"] is None and third_details["waitReason"] is None
    assert seconds(third_details["waitingTime"]) >= 1
    t.release(second, third)
    for job_id in (second, third):
        assert t.wait(job_id, ENDED)["status"] == "Completed"
        assert t.runs(job_id) == "start\ndone\n"
    assert t.runs(fourth) == ""
    assert t.get(fourth)["waitingTime"] == killed["waitingTime"]  # (seconds later)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_gets_a_clear_4xx_and_creates_nothing(plat):
    t = Tenant(plat, limitCpu=2)
    other = Tenant(plat)
    before = t.user.api("GET", "/training").json()
    good = t.body("fine")

    def refused(body, field: str, words: str, status: int = 400, raw: str | None = None):
        if raw is not None:
            r = t.user.api("POST", "/training/run", data=raw, headers={"Content-Type": "application/json"})
        else:
            r = t.user.api("POST", "/training/run", json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
        error = r.json()
        assert error["status"] == status
        text = error["detail"] + " " + " ".join(f"{k}: {' '.join(v)}" for k, v in error["errors"].items())
        assert field in error["errors"] or field in error["detail"], (field, error)
        assert words in text, (words, error)

    refused({**good, "name": "BadName"}, "name", "lower-case letters, digits and '-'")
    refused({**good, "name": "a" * 31}, "name", "at most 30 characters")
    refused({**good, "name": ""}, "name", "must not be empty")
    refused({**good, "dataSetId": 99999}, "dataSetId", "no dataset has the id 99999")
    refused({**good, "dataSetId": other.dataset_id}, "dataSetId", f"no dataset has the id {other.dataset_id}")
    refused({**good, "parentIds": [99999]}, "parentIds", "no training in this tenant has the id(s) 99999")
    refused({**good, "gitModel": {**good["gitModel"], "commitId": "0123456789abcdef0123456789abcdef01234567"}},
            "gitModel.commitId", "has no commit 0123456789abcdef0123456789abcdef01234567")
    refused({**good, "gitModel": {**good["gitModel"], "commitId": "not-hex"}}, "gitModel.commitId", "hexadecimal")
    refused({**good, "gitModel": {**good["gitModel"], "branch": "no-such-branch"}}, "gitModel.branch",
            "no branch no-such-branch")
    refused({**good, "gitModel": {**good["gitModel"], "repository": "missing"}}, "gitModel.repository",
            "the repository engine/missing does not exist")
    refused({**good, "cpu": 3}, "cpu", "3 is over the tenant quota of 2")
    refused({**good, "cpu": 0}, "cpu", "more than 0")
    refused({**good, "memory": -1}, "memory", "must be at least 0")
    refused({**good, "options": {"TRAINING_ID": "1"}}, "options", "TRAINING_ID is set by the platform")
    refused({**good, "options": {"KQI_TOKEN": "x"}}, "options", "KQI_TOKEN is set by the platform")
    refused({**good, "options": {"LANG": "ja_JP.UTF-8"}}, "options", "LANG is set by the platform")
    refused({**good, "options": {"1BAD": "x"}}, "options", "not a valid environment variable name")
    refused({**good, "ports": [0]}, "ports", "must be at least 1")
    refused({**good, "ports": [65536]}, "ports", "at most 65535")
    refused({**good, "partition": "no-such-partition"}, "partition", "no partition")
    refused({**good, "containerImage": {"registryId": 99999, "image": "python", "tag": "3"}},
            "containerImage.registryId", "not a registry of this tenant")
    refused(None, "body", "not valid JSON", raw="{not json")
    refused({}, "name", "is required")
    assert t.user.api("GET", "/training").json() == before == []
    # the same body without the mistakes is accepted (and ends)
    job = t.submit("fine", entry="true")
    assert t.wait(job, ENDED)["status"] == "Completed"


# ----------------------------------------------------------------- states, reasons, times
def test_states_reasons_and_times(plat):
    t = Tenant(plat)
    ok = t.submit("quick", entry="sleep 1.2")
    fail = t.submit("fails", entry="exit 4")
    oom = t.submit("too-big", entry="python3 -c 'x = bytearray(700 * 2**20)'", memory=0.25)
    lost = t.submit("lost", entry="sleep 600")

    done = t.wait(ok, ENDED)
    assert done["status"] == "Completed" and done["statusType"] == "Closed" and done["conditionNote"] is None
    queued, started, completed = when(done["queuedAt"]), when(done["startedAt"]), when(done["completedAt"])
    assert queued <= started <= completed
    run_seconds = (completed - started).total_seconds()
    assert 1.2 <= run_seconds < 30, run_seconds
    assert abs(seconds(done["executionTime"]) - run_seconds) <= 1
    assert abs(seconds(done["waitingTime"]) - (started - queued).total_seconds()) <= 1
    assert done["exitCode"] == 0

    failed = t.wait(fail, ENDED)
    assert (failed["status"], failed["statusType"], failed["exitCode"]) == ("Failed", "Failed", 4)
    assert failed["conditionNote"] == "the command exited with status 4"

    oom_done = t.wait(oom, ENDED)
    assert oom_done["status"] == "Failed", oom_done["conditionNote"]
    assert "OOMKilled" in oom_done["conditionNote"], oom_done["conditionNote"]

    # a platform fault: the job's container is killed from outside, without a result -> Error, with the reason
    t.wait(lost, "Running")
    deadline = time.monotonic() + 30
    while not containers(plat, f"training-{t.rows[lost]}"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    (name,) = containers(plat, f"training-{t.rows[lost]}")
    subprocess.run(["podman", "kill", "--signal", "KILL", name], check=True, capture_output=True)
    error = t.wait(lost, ENDED, timeout=30)
    assert error["status"] == "Error" and error["statusType"] == "Error"
    assert error["conditionNote"].startswith("the job's process ended without a result"), error["conditionNote"]

    # ended jobs stay ended: halt and complete are refused with 409
    for job_id in (ok, fail, lost):
        for action in ("halt", "complete", "user-cancel"):
            r = t.user.api("POST", f"/training/{job_id}/{action}")
            assert r.status_code == 409, r.text
    assert [t.get(j)["status"] for j in (ok, fail, oom, lost)] == ["Completed", "Failed", "Failed", "Error"]

    # user-cancel of a running job: Killed with its own reason
    job = t.submit("cancel-me", entry="sleep 600")
    t.wait(job, "Running")
    r = t.user.api("POST", f"/training/{job}/user-cancel")
    assert r.status_code == 200, r.text
    cancelled = t.get(job)
    assert cancelled["status"] == "Killed" and cancelled["conditionNote"] == "cancelled by the user"
    assert cancelled["startedAt"] is not None and cancelled["executionTime"] is not None
