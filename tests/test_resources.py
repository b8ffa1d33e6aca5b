"""Resources through a real KQI Hub of its own (a job capacity of 3 cpus, a 0.5 s engine tick,
a resource sample every 2 s): the resource monitor (KAMONOHASHI's /admin/resource/* and
/tenant/resource/*) lists every job and notebook of two tenants with its owner, resources and
node, a tenant administrator sees their tenant's only, a plain member is refused; "what can I
use now" and a queued job's reason and advice follow the quota and the capacity; the usage
ledger counts a 10 s job's seconds × its cpus, keeps them across a restart, and its CSV sums
to it; the hourly history's CSV has KAMONOHASHI's columns.

The held jobs wait for a file the test writes into their /kqi/output, so the test decides
when each one ends.
"""
from __future__ import annotations

import csv
import io
import os
import time
import uuid

import pytest

from kqi_services.domain.usage import HISTORY_COLUMNS, JOB_HISTORY_COLUMNS, USAGE_COLUMNS

from .platform import (ModelRepo, create_data, job_output_dir, new_platform, remove_tree, tenant_user, wait_job,
                       wait_notebook)

CAPACITY_CPU = 3
ENDED = ("Completed", "Failed", "Killed", "Error")
HOLD = ("echo start >> /kqi/output/runs.txt; "
        "while [ ! -f /kqi/output/release ]; do sleep 0.1; done")


@pytest.fixture(scope="module")
def plat(db_backend, request, tmp_path_factory):
    base = str(tmp_path_factory.mktemp(f"resources-{db_backend}"))
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write(f"c.KqiService.job_capacity_cpu = {CAPACITY_CPU}\n"
                "c.KqiService.job_tick_seconds = 0.5\n"
                "c.KqiService.resource_sample_seconds = 2\n"
                "c.KqiService.usage_refresh_seconds = 1\n")
    env = {"KQI_SERVICE_CONFIG": config}
    if db_backend == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        env["KQI_HUB_DB_URL"] = pg.create_database(f"hub_res_{suffix}")
        env["KQI_DB_URL"] = pg.create_database(f"kqi_res_{suffix}")
    p = new_platform(base, env)
    p.start()
    p.repo = ModelRepo(p, os.path.join(base, "work"), "res", "model", tenant="sandbox")
    p.repo.commit({"README": "a model\n"}, "first")
    p.users = []
    yield p
    for user in p.users:  # whatever a failed test left running
        for kind in ("training", "notebook"):
            r = user.api("GET", f"/{kind}", params={"perPage": 1000})
            for item in r.json() if r.status_code == 200 else []:
                if item["status"] in ("Queued", "Running", "Pending"):
                    user.api("POST", f"/{kind}/{item['id']}/halt")
    p.stop()
    remove_tree(base)


class Tenant:
    """A member of a tenant of its own (with a one-file dataset), and an administrator of it."""

    def __init__(self, plat, **tenant_fields):
        self.plat = plat
        self.keys: dict[int, int] = {}
        self.tenant = plat.create_tenant(**tenant_fields)
        self.user = tenant_user(plat, tenant=self.tenant)
        plat.users.append(self.user)
        name, password = plat.create_user(admin_of=[self.tenant["name"]])
        self.admin = plat.login(name, password, self.tenant["id"])
        plat.repo.add_tenant(self.tenant)
        data = create_data(self.user, "input", {"x.txt": b"x"})
        r = self.user.api("POST", "/datasets", json={"name": "set", "entries": {"training": [{"id": data["id"]}]}})
        assert r.status_code == 201, r.text
        self.dataset_id = r.json()["id"]

    def submit(self, name: str, entry: str = HOLD, cpu: float = 1, memory: float = 1) -> int:
        r = self.user.api("POST", "/training/run", json={
            "name": name, "dataSetId": self.dataset_id, "entryPoint": entry, "cpu": cpu, "memory": memory, "gpu": 0,
            "containerImage": {"image": "python", "tag": "3.11"},
            "gitModel": {"gitId": 1, "owner": self.plat.repo.owner, "repository": self.plat.repo.name}})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def get(self, job_id: int) -> dict:
        r = self.user.api("GET", f"/training/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def output(self, job_id: int) -> str:
        """The job's /kqi/output: stored under its table id, which its container's name tells (the
        API shows the id the tenant sees)."""
        if job_id not in self.keys:
            deadline = time.monotonic() + 90
            while True:
                rows = self.plat.api("GET", "/admin/resource/containers", self.plat.admin_token()).json()
                found = [c["name"] for c in rows if c["tenantId"] == self.tenant["id"] and c["kind"] == "training"
                         and c["id"] == job_id]
                if found:
                    break
                assert time.monotonic() < deadline, f"training {job_id} did not show in the monitor: {rows}"
                time.sleep(0.2)
            self.keys[job_id] = int(found[0].rsplit("-", 1)[1])
        return job_output_dir(self.plat, self.tenant, self.keys[job_id])

    def wait_started(self, job_id: int, timeout: float = 90) -> None:
        wait_job(self.user, job_id, "Running", timeout)
        deadline = time.monotonic() + timeout
        while not os.path.exists(os.path.join(self.output(job_id), "runs.txt")):
            assert time.monotonic() < deadline, f"training {job_id} did not start its command"
            time.sleep(0.1)

    def release(self, *job_ids: int) -> None:
        for job_id in job_ids:
            os.makedirs(self.output(job_id), exist_ok=True)
            open(os.path.join(self.output(job_id), "release"), "w").close()

    def waiting(self, job_id: int, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job["status"] == "Queued" and job["queuePosition"] is not None and job.get("waitAdvice"):
                return job
            assert job["status"] == "Queued" and time.monotonic() < deadline, job
            time.sleep(0.1)


def api(plat, method, path, token, **kw):
    return plat.api(method, path, token, **kw)


def mine(rows: list[dict], t: Tenant, kind: str, ident: int) -> dict:
    found = [c for c in rows if c["tenantId"] == t.tenant["id"] and c["kind"] == kind and c["id"] == ident]
    assert len(found) == 1, (kind, ident, rows)
    return found[0]


# ------------------------------------------------------------------------------ the monitor
def test_monitor_lists_every_container_scoped_and_the_queue_says_why(plat):
    a, b = Tenant(plat, limitCpu=2), Tenant(plat)
    admin = plat.admin_token()
    a1 = a.submit("a-first", cpu=1, memory=1)
    b1 = b.submit("b-first", cpu=1, memory=2)
    r = a.user.api("POST", "/notebook/run", json={"name": "a-nb", "cpu": 0.5, "memory": 1, "gpu": 0,
                                                  "expiresIn": 3600})
    assert r.status_code == 201, r.text
    nb = r.json()["id"]
    a.wait_started(a1)
    b.wait_started(b1)
    wait_notebook(plat, a.user.token, nb, "Running")

    # the system administrator sees all three, each with its owner, resources and node
    r = api(plat, "GET", "/admin/resource/containers", admin)
    assert r.status_code == 200, r.text
    rows = r.json()
    job_a, job_b, note = mine(rows, a, "training", a1), mine(rows, b, "training", b1), mine(rows, a, "notebook", nb)
    assert (job_a["tenantId"], job_a["createdBy"], job_a["cpu"], job_a["memory"], job_a["gpu"]) == \
        (a.tenant["id"], a.user.name, 1, 1, 0)
    assert (job_b["tenantId"], job_b["createdBy"], job_b["cpu"], job_b["memory"]) == \
        (b.tenant["id"], b.user.name, 1, 2)
    assert (note["tenantId"], note["createdBy"], note["cpu"], note["memory"], note["containerType"]) == \
        (a.tenant["id"], a.user.name, 0.5, 1, "Notebook")
    assert job_a["containerType"] == "Training" and job_a["status"] == "Running" and job_a["nodeName"]
    assert note["status"] == "Running" and note["nodeName"] == job_a["nodeName"]

    # nodes and tenants add up what they hold
    nodes = {n["name"]: n for n in api(plat, "GET", "/admin/resource/nodes", admin).json()}
    node = nodes[job_a["nodeName"]]
    assert node["allocatableCpu"] == CAPACITY_CPU and node["assignedCpu"] == 2.5
    assert node["freeCpu"] == CAPACITY_CPU - 2.5
    tenants = {t["id"]: t for t in api(plat, "GET", "/admin/resource/tenants", admin).json()}
    assert tenants[a.tenant["id"]]["assignedCpu"] == 1.5 and tenants[a.tenant["id"]]["allocatableCpu"] == 2
    assert tenants[b.tenant["id"]]["assignedMemory"] == 2

    # one container, its log and its events
    name_a = job_a["name"]
    r = api(plat, "GET", f"/admin/resource/containers/{a.tenant['id']}/{name_a}", admin)
    assert r.status_code == 200 and r.json()["createdBy"] == a.user.name, r.text
    assert api(plat, "GET", f"/admin/resource/containers/{b.tenant['id']}/{name_a}", admin).status_code == 404
    r = api(plat, "GET", f"/admin/resource/containers/{a.tenant['id']}/{name_a}/log", admin)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    r = api(plat, "GET", f"/admin/resource/containers/{a.tenant['id']}/{name_a}/events", admin)
    assert r.status_code == 200 and [e["reason"] for e in r.json()][:2] == ["Queued", "Started"], r.text

    # a tenant administrator sees their tenant's containers only; a member and others are refused
    r = api(plat, "GET", "/tenant/resource/containers", a.admin)
    assert r.status_code == 200, r.text
    assert {(c["kind"], c["id"]) for c in r.json()} == {("training", a1), ("notebook", nb)}
    assert api(plat, "GET", f"/tenant/resource/containers/{job_b['name']}", a.admin).status_code == 404
    assert api(plat, "GET", f"/tenant/resource/containers/{name_a}", a.admin).json()["cpu"] == 1
    assert api(plat, "GET", f"/tenant/resource/containers/{name_a}/log", a.admin).status_code == 200
    r = api(plat, "GET", "/tenant/resource/nodes", a.admin)
    assert r.status_code == 200 and all(c["tenantId"] == a.tenant["id"] for n in r.json()
                                        for c in n["containerResourceList"]), r.text
    for path in ("/tenant/resource/containers", "/tenant/resource/nodes", f"/tenant/resource/containers/{name_a}",
                 "/admin/resource/containers", "/admin/resource/nodes", "/admin/resource/tenants"):
        assert api(plat, "GET", path, a.user.token).status_code == 403, path
    for path in ("/admin/resource/containers", "/admin/resource/usage", "/admin/resource/histories/containers/data"):
        assert api(plat, "GET", path, a.admin).status_code == 403, path
    assert api(plat, "DELETE", f"/tenant/resource/containers/{name_a}", a.user.token).status_code == 403

    # what can I use: the quota minus what runs (the notebook is not a job: the quota counts jobs)
    r = api(plat, "GET", "/tenant/resource/available", a.user.token)
    assert r.status_code == 200, r.text
    can = r.json()
    running_jobs = [c for c in rows if c["tenantId"] == a.tenant["id"] and c["kind"] == "training"]
    assert can["quota"]["cpu"] == 2 and can["used"]["cpu"] == sum(c["cpu"] for c in running_jobs) == 1
    assert can["free"]["cpu"] == can["quota"]["cpu"] - can["used"]["cpu"] == 1 and can["free"]["memory"] is None
    assert can["capacity"]["cpu"] == CAPACITY_CPU and can["capacityFree"]["cpu"] == CAPACITY_CPU - 2
    assert can["startsNowAtMost"]["cpu"] == 1 and can["usedByMe"]["cpu"] == 1
    r = api(plat, "GET", "/tenant/resource/available", a.user.token, params={"cpu": 1, "memory": 1})
    assert r.json()["check"]["outcome"] == "startsNow", r.text
    check = api(plat, "GET", "/tenant/resource/available", a.user.token, params={"cpu": 2}).json()["check"]
    assert check["outcome"] == "waits" and check["reasons"][0].startswith("tenant quota: cpu 1 in use of 2")
    check = api(plat, "GET", "/tenant/resource/available", a.user.token, params={"cpu": 5}).json()["check"]
    assert check["outcome"] == "never" and "over the tenant quota of 2" in check["reasons"][0]
    assert api(plat, "GET", "/tenant/resource/available", a.user.token, params={"cpu": -1}).status_code == 400

    # a job over the free quota waits, and says which quota and what would let it run
    a2 = a.submit("a-second", cpu=2)
    waiting = a.waiting(a2)
    assert waiting["waitReason"] == "tenant quota: cpu 1 in use of 2, this job needs 2"
    assert "free cpu 1" in waiting["waitAdvice"] and "quota" in waiting["waitAdvice"]
    # one that fits the quota but not the machine: the capacity holds it
    b2 = b.submit("b-second", cpu=2)
    waiting = b.waiting(b2)
    # ... and names the node (the seeded one of this machine, partition local) and what it lacks
    node = f"node {os.uname().nodename} (partition local): cpu 1 free of {CAPACITY_CPU}, this job needs 2"
    assert waiting["waitReason"] == f"cluster capacity: 1 cpu free, this job needs 2; {node}"
    assert waiting["conditionNote"] == waiting["waitReason"]
    assert f"free cpu 1 on node {os.uname().nodename};" in waiting["waitAdvice"]
    check = api(plat, "GET", "/tenant/resource/available", b.user.token, params={"cpu": 2}).json()["check"]
    assert check["outcome"] == "waits" and check["reasons"] == ["cluster capacity: 1 cpu free, this job needs 2", node]
    assert f"on node {os.uname().nodename};" in check["advice"]

    # stopping containers from the monitor: the administrator (any tenant), the tenant administrator (theirs)
    assert api(plat, "DELETE", f"/tenant/resource/containers/{job_b['name']}", a.admin).status_code == 404
    r = api(plat, "DELETE", f"/admin/resource/containers/{b.tenant['id']}/{job_b['name']}", admin)
    assert r.status_code == 204, r.text
    assert b.get(b1)["status"] == "Killed"
    r = api(plat, "DELETE", f"/tenant/resource/containers/{name_a}", a.admin)
    assert r.status_code == 204, r.text
    assert a.get(a1)["status"] == "Killed"
    r = api(plat, "DELETE", f"/tenant/resource/containers/{note['name']}", a.admin)
    assert r.status_code == 204, r.text
    assert wait_notebook(plat, a.user.token, nb, ("Killed", "Stopped"))["status"] == "Killed"
    # the waiting ones start one after the other (both need 2 of the 3 cpus): B's first, since B's job
    # was killed first (A's quota then still held a2 back); end them
    for t, job in ((b, b2), (a, a2)):
        t.wait_started(job)
        t.release(job)
        assert wait_job(t.user, job, ENDED, 60)["status"] == "Completed"

    # the ledger has a run of each, with the owner and resources
    r = api(plat, "GET", "/admin/resource/usage", admin, params={"groupBy": "tenant,kind"})
    assert r.status_code == 200, r.text
    runs = {(x["tenantId"], x["kind"], x["id"]): x for x in r.json()["runs"]}
    ran = runs[(a.tenant["id"], "notebook", nb)]
    assert ran["userName"] == a.user.name and ran["endedAt"] and ran["cpu"] == 0.5
    assert runs[(b.tenant["id"], "training", b1)]["memory"] == 2
    totals = {(t["tenantId"], t["kind"]): t for t in r.json()["totals"]}
    assert totals[(a.tenant["id"], "training")]["runs"] == 2 and totals[(a.tenant["id"], "notebook")]["runs"] == 1


# ------------------------------------------------------------------------------ the ledger
def test_ledger_counts_a_10s_job_keeps_it_and_its_csv_sums_to_it(plat):
    c = Tenant(plat)
    admin = plat.admin_token()
    job = c.submit("ten-seconds", entry="sleep 10", cpu=2, memory=1.5)
    wait_job(c.user, job, "Running", 90)
    # while it runs the resource history samples it (every 2 s here, hourly by default)
    deadline = time.monotonic() + 30
    while True:
        r = api(plat, "GET", "/admin/resource/histories/containers/data", admin, params={"withHeader": "true"})
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
        lines = list(csv.reader(io.StringIO(r.text)))
        sampled = [row for row in lines[1:] if row[5] == str(c.tenant["id"])]
        if sampled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert tuple(lines[0]) == HISTORY_COLUMNS == ("SampledAt", "NodeName", "NodeCpu", "NodeMemory", "NodeGpu",
                                                  "TenantId", "TenantName", "ContainerName", "Cpu", "Memory", "Gpu",
                                                  "Status")
    assert sampled, lines
    row = dict(zip(HISTORY_COLUMNS, sampled[0]))
    assert (row["TenantName"], float(row["Cpu"]), float(row["Memory"]), row["Status"]) == \
        (c.tenant["name"], 2.0, 1.5, "Running")
    assert float(row["NodeCpu"]) == CAPACITY_CPU
    meta = api(plat, "GET", "/admin/resource/histories/containers/metadata", admin).json()
    assert meta["count"] >= 1 and meta["startDate"]
    assert wait_job(c.user, job, ENDED, 120)["status"] == "Completed"

    def ledger(token=admin, path="/admin/resource/usage"):
        r = api(plat, "GET", path, token, params={"tenantId": c.tenant["id"]})
        assert r.status_code == 200, r.text
        return r.json()

    report = ledger()
    [run] = report["runs"]
    assert (run["kind"], run["id"], run["userName"], run["cpu"], run["memory"]) == \
        ("training", job, c.user.name, 2, 1.5)
    assert 9 <= run["seconds"] <= 11, run
    assert abs(run["cpuSeconds"] - 2 * run["seconds"]) < 0.01 and 18 <= run["cpuSeconds"] <= 22
    assert abs(run["memorySeconds"] - 1.5 * run["seconds"]) < 0.01 and run["gpuSeconds"] == 0
    [total] = report["totals"]
    assert total["cpuSeconds"] == run["cpuSeconds"] and total["userName"] == c.user.name
    assert sum(d["cpuSeconds"] for d in report["daily"]) == pytest.approx(run["cpuSeconds"], abs=0.01)

    # the CSV parses and sums to the ledger (all tenants, and one)
    everything = api(plat, "GET", "/admin/resource/usage", admin).json()
    r = api(plat, "GET", "/admin/resource/usage/csv", admin)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(table[0].keys()) == USAGE_COLUMNS
    for field, key in (("CpuSeconds", "cpuSeconds"), ("MemorySeconds", "memorySeconds"), ("Seconds", "seconds")):
        assert sum(float(x[field]) for x in table) == pytest.approx(sum(t[key] for t in everything["totals"]),
                                                                    abs=0.01 * len(table) + 0.01)
    mine_csv = [x for x in table if x["TenantId"] == str(c.tenant["id"])]
    assert len(mine_csv) == 1 and float(mine_csv[0]["CpuSeconds"]) == run["cpuSeconds"]

    # a tenant administrator sees their tenant's ledger only; a member is refused
    own = ledger(c.admin, "/tenant/resource/usage")
    assert {x["tenantId"] for x in own["runs"]} == {c.tenant["id"]}
    assert [s["tenantId"] for s in own["storage"]] == [c.tenant["id"]] and own["storage"][0]["dataBytes"] == 1
    r = api(plat, "GET", "/tenant/resource/usage/csv", c.admin)
    assert r.status_code == 200 and len(list(csv.DictReader(io.StringIO(r.text)))) == 1
    assert api(plat, "GET", "/tenant/resource/usage", c.user.token).status_code == 403
    assert api(plat, "GET", "/admin/resource/usage", admin, params={"startDate": "yesterday"}).status_code == 400

    # a TensorBoard over the training holds resources too: listed, stopped from the monitor, in the ledger
    r = c.user.api("PUT", f"/training/{job}/tensorboard", json={"expiresIn": 600})
    assert r.status_code == 200, r.text
    rows = api(plat, "GET", "/tenant/resource/containers", c.admin).json()
    board = mine(rows, c, "tensorboard", job)
    assert (board["containerType"], board["createdBy"], board["cpu"], board["memory"]) == \
        ("TensorBoard", c.user.name, 1, 2)
    r = api(plat, "DELETE", f"/admin/resource/containers/{c.tenant['id']}/{board['name']}", admin)
    assert r.status_code == 204, r.text
    assert c.user.api("GET", f"/training/{job}/tensorboard").json()["status"] == "None"
    [tb_run] = [x for x in ledger()["runs"] if x["kind"] == "tensorboard"]
    assert tb_run["id"] == job and tb_run["endedAt"] and tb_run["userName"] == c.user.name

    # KAMONOHASHI's job history: the ended runs, by the day their job was created
    r = api(plat, "GET", "/admin/resource/histories/jobs/data", admin, params={"withHeader": "true"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
    lines = list(csv.reader(io.StringIO(r.text)))
    assert tuple(lines[0]) == JOB_HISTORY_COLUMNS
    [ended] = [dict(zip(JOB_HISTORY_COLUMNS, x)) for x in lines[1:] if x[9] == run["containerName"]]
    assert (ended["TenantId"], ended["Cpu"], ended["Memory"], ended["Status"]) == \
        (str(c.tenant["id"]), "2.0", "1.5", "Completed")
    assert api(plat, "GET", "/admin/resource/histories/jobs/metadata", admin).json()["count"] >= 1
    # the samples can be purged (KAMONOHASHI's PATCH {endDate}); the ledger stays
    r = api(plat, "PATCH", "/admin/resource/histories/containers", admin, json={"endDate": "2099-12-31"})
    assert r.status_code == 200 and r.json()["count"] == 0, r.text
    assert api(plat, "PATCH", "/admin/resource/histories/containers", admin,
               json={"endDate": "someday"}).status_code == 400
    assert plat.contract_misfits() == []  # every answer fit its route's contract (KQI_CHECK_RESPONSES)

    # kept across a restart of the whole platform
    plat.restart()
    admin = plat.admin_token()
    again = [x for x in api(plat, "GET", "/admin/resource/usage", admin, params={"tenantId": c.tenant["id"]})
             .json()["runs"]]
    assert again == [run, tb_run]


# ------------------------------------------------------------------------------ pure rules and Kubernetes
from datetime import datetime, timedelta  # noqa: E402

from kqi_services.db.models_usage import UsageRecord  # noqa: E402
from kqi_services.domain import usage as ledger  # noqa: E402
from kqi_services.domain.resources import wait_advice  # noqa: E402

from .test_kubernetes_backend import backend, fake, request  # noqa: E402,F401  (the fake API server)


def test_kubernetes_jobs_tell_their_node_and_their_container_times(fake, backend):  # noqa: F811
    backend.launch(request(backend.storage_root, key="training-31", job_id=31))
    assert backend.placement("training-31") is None  # no pod yet: not placed
    pod = fake.run_pod("training-31", node="gpu-node-3")
    assert backend.placement("training-31") == "gpu-node-3"
    assert backend.events("training-31")[0]["message"] == f"pod {pod} on gpu-node-3"
    fake.wait_pod(pod, "ImagePullBackOff", "Back-off pulling image")
    assert backend.events("training-31")[-1] == {"timestamp": None, "type": "Warning", "reason": "ImagePullBackOff",
                                                 "message": "Back-off pulling image"}
    fake.end_pod(pod, 0, message='{"exitCode": 0, "failedStep": null, "message": null}')
    # the monitor's nodes: allocatable per schedulable node, as the cluster says
    fake.nodes = [{"metadata": {"name": "gpu-node-3"}, "spec": {},
                   "status": {"allocatable": {"cpu": "15900m", "memory": "64Gi", "nvidia.com/gpu": "4"},
                              "conditions": [{"type": "Ready", "status": "True"}]}},
                  {"metadata": {"name": "cordoned"}, "spec": {"unschedulable": True},
                   "status": {"allocatable": {"cpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]}}]
    try:
        assert backend.node_sizes() == {"gpu-node-3": (15.9, 64.0, 4)}
    finally:
        fake.nodes = []
    result = backend.result("training-31")
    assert result.exit_code == 0 and isinstance(result.started_at, datetime)
    assert result.finished_at >= result.started_at and result.finished_at.tzinfo is None
    backend.cleanup("training-31")


def _run(start, end, cpu=2.0, memory=4.0, gpu=1, kind="training", user="alice", tenant=("t1", 1)):
    return UsageRecord(kind=kind, ref_id=7, name="training-7", tenant_id=tenant[1], tenant_name=tenant[0],
                       user_name=user, cpu=cpu, memory=memory, gpu=gpu, node="n1", started_at=start, ended_at=end)


def test_ledger_counts_the_part_of_a_run_inside_the_range():
    day = datetime(2026, 11, 30)
    start, end = day, day + timedelta(days=1)
    now = day + timedelta(days=3)
    # 23:00 the day before to 01:00: one hour inside
    row = _run(day - timedelta(hours=1), day + timedelta(hours=1))
    got = ledger.run_usage(row, start, end, now)
    assert (got["seconds"], got["cpuSeconds"], got["memorySeconds"], got["gpuSeconds"]) == (3600, 7200, 14400, 3600)
    # still open: counts up to now (or to the range's end)
    open_row = _run(day + timedelta(hours=23), None)
    assert ledger.run_usage(open_row, start, end, now)["seconds"] == 3600
    assert ledger.run_usage(open_row, start, end, day + timedelta(hours=23, minutes=30))["seconds"] == 1800
    # outside: nothing
    assert ledger.run_usage(_run(end, end + timedelta(hours=1)), start, end, now)["seconds"] == 0
    runs = [ledger.run_usage(r, start, end, now) for r in (row, open_row, _run(day, day + timedelta(seconds=10),
                                                                                   cpu=1, user="bob"))]
    totals = ledger.summarize(runs, ["user"])
    assert [(t["userName"], t["runs"], t["cpuSeconds"]) for t in totals] == [("alice", 2, 14400), ("bob", 1, 10)]
    table = list(csv.DictReader(io.StringIO(ledger.usage_csv(runs))))
    assert sum(float(r["CpuSeconds"]) for r in table) == sum(t["cpuSeconds"] for t in totals)
    daily = ledger.daily([row, open_row], day - timedelta(days=1), end, "kind", now)
    assert [(d["date"], d["cpuSeconds"]) for d in daily] == [("2026-11-29", 7200), ("2026-11-30", 14400)]


def test_ledger_refuses_bad_ranges_and_groups():
    from kqi_services.domain.validation import ValidationError

    for start, end in (("2026-12-02", "2026-12-01"), ("yesterday", None), ("2000-01-01", "2026-01-01")):
        with pytest.raises(ValidationError):
            ledger.date_range(start, end)
    with pytest.raises(ValidationError):
        ledger.check_group_by("tenant,node")
    assert ledger.check_group_by("kind,kind,user") == ["kind", "user"]


def test_wait_advice_names_what_would_let_a_job_run():
    need = {"cpu": 4.0, "memory": 8.0, "gpu": 1}
    advice = wait_advice("tenant quota: cpu 6 in use of 8, this job needs 4", need,
                         {"cpu": 2.0, "memory": None, "gpu": 1}, {"cpu": 10.0, "memory": 64.0, "gpu": 2})
    assert "free cpu 2" in advice and "raise the tenant quota" in advice
    advice = wait_advice("cluster capacity: 1 cpu free, this job needs 4", need,
                         {"cpu": None, "memory": None, "gpu": None}, {"cpu": 1.0, "memory": 4.0, "gpu": 0})
    assert "free cpu 3, memory 4, gpu 1 on the nodes" in advice
    advice = wait_advice("cluster capacity: 1 cpu free, this job needs 4; node n1 (partition p): cpu 1 free of 2,"
                         " this job needs 4; node n2: cpu 0 free of 8, this job needs 4", need,
                         {"cpu": None, "memory": None, "gpu": None}, {"cpu": 1.0, "memory": 8.0, "gpu": 1})
    assert "free cpu 3 on node n1 or n2;" in advice
    assert wait_advice(None, need, {}, {}) is None
    assert "earlier queued jobs" in wait_advice("behind earlier jobs of the tenant; ...", need, {}, {})
