"""Lineage (issue 15): GET /lineage/{kind}/{id} through a real platform (both databases).

A chain made the way users make it: a data, a preprocessing run over it that makes a new data,
a dataset of that data, a training on the dataset, a child training (parent: the first), an
inference (parent: the child) and a notebook that mounts the child and the inference. The graph
from the inference reaches the first data, the graph from the first data reaches the inference
and the notebook, every job node carries its commit and image; another tenant gets 404.

The walk's cost (one query per level and relation, never per node) is checked on the domain
code against a database of its own.
"""
from __future__ import annotations

import time
import uuid

import pytest

from .platform import ModelRepo, create_data, tenant_user, wait_job

PREP_PY = """\
import os
data_id = os.environ["DATA_ID"]
os.makedirs(f"/kqi/output/lin-clean-{data_id}", exist_ok=True)
for name in os.listdir(f"/kqi/input/{data_id}"):
    text = open(f"/kqi/input/{data_id}/{name}").read()
    open(f"/kqi/output/lin-clean-{data_id}/{name}", "w").write(text.upper())
"""

TRAIN_PY = """\
import os
os.makedirs("/kqi/output/model", exist_ok=True)
open("/kqi/output/model/weights.txt", "w").write("1")
"""

FINISHED = ("Completed", "Failed", "Error", "Killed")


def _run_job(user, base: str, body: dict) -> int:
    r = user.api("POST", f"/{base}/run", json=body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert wait_job(user, job_id, FINISHED, timeout=120, kind=base)["status"] == "Completed"
    return job_id


def make_chain(platform, work_dir: str, notebook: bool = True) -> dict:
    """data → preprocessing → data → dataset → training → child training → inference (→ notebook
    mounting the child and the inference), made through the API of a new tenant's user; their ids."""
    user = tenant_user(platform)
    repo = ModelRepo(platform, work_dir, "lin-team", f"lin-model-{uuid.uuid4().hex[:6]}", tenant=user.tenant)
    commit = repo.commit({"prep.py": PREP_PY, "train.py": TRAIN_PY}, "lineage tools")
    git = {"owner": repo.owner, "repository": repo.name, "commitId": commit}
    image = {"image": "python", "tag": "3.11"}

    raw = create_data(user, "lin-raw", {"a.txt": b"alpha"})
    r = user.api("POST", "/preprocessings", json={"name": "lin-upper", "entryPoint": "python prep.py",
                                                 "containerImage": image, "gitModel": git,
                                                 "cpu": 1, "memory": 1, "gpu": 0})
    assert r.status_code == 201, r.text
    prep_id = r.json()["id"]
    r = user.api("POST", f"/preprocessings/{prep_id}/run", json={"dataId": raw["id"], "cpu": 1, "memory": 1,
                                                                "gpu": 0})
    assert r.status_code == 201, r.text
    history_id = r.json()["historyId"]
    deadline = time.monotonic() + 120
    while True:
        history = user.api("GET", f"/preprocessings/{prep_id}/histories/{raw['id']}").json()
        if history["status"] in FINISHED:
            break
        assert time.monotonic() < deadline, history
        time.sleep(0.3)
    assert history["status"] == "Completed", history
    (clean_id,) = history["outputDataIds"]

    r = user.api("POST", "/datasets", json={"name": "lin-set", "entries": {"training": [{"id": clean_id}]}})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    common = {"containerImage": image, "gitModel": git, "dataSetId": dataset_id, "cpu": 1, "memory": 1, "gpu": 0}
    base = _run_job(user, "training", {"name": "lin-base", "entryPoint": "python train.py", **common})
    child = _run_job(user, "training", {"name": "lin-child", "entryPoint": "python train.py", "parentIds": [base],
                                        **common})
    inference = _run_job(user, "inferences", {"name": "lin-score", "entryPoint": "ls /kqi/parent",
                                              "parentIds": [child], **common})

    made = {"user": user, "commit": commit, "repository": f"{repo.owner}/{repo.name}", "raw": raw["id"],
            "prep": prep_id, "history": history_id, "clean": clean_id, "dataset": dataset_id, "base": base,
            "child": child, "inference": inference}
    if not notebook:
        return made
    # a notebook that mounts the child training and the inference (started, then halted)
    r = user.api("POST", "/notebook/run", json={"name": "lin-nb", "cpu": 1, "memory": 1, "gpu": 0, "expiresIn": 3600,
                                               "dataSetId": dataset_id, "parentIds": [child],
                                               "inferenceIds": [inference]})
    assert r.status_code == 201, r.text
    notebook = r.json()["id"]
    deadline = time.monotonic() + 120
    halted = False
    while True:
        status = user.api("GET", f"/notebook/{notebook}").json()["status"]
        if status == "Running" and not halted:
            assert user.api("POST", f"/notebook/{notebook}/halt").status_code == 200
            halted = True
        elif status not in ("Running", "Pending"):
            break
        assert time.monotonic() < deadline, f"notebook {notebook} is still {status}"
        time.sleep(0.5)
    return {**made, "notebook": notebook}


@pytest.fixture(scope="module")
def chain(platform, tmp_path_factory):
    return make_chain(platform, str(tmp_path_factory.mktemp("lineage-repo")))


def _graph(user, kind, object_id, **params):
    r = user.api("GET", f"/lineage/{kind}/{object_id}", params=params)
    assert r.status_code == 200, r.text
    graph = r.json()
    return graph, {n["key"]: n for n in graph["nodes"]}, {(e["from"], e["to"], e["relation"]) for e in graph["edges"]}


def _chain_edges(c) -> set:
    return {
        (f"data:{c['raw']}", f"preprocessing:{c['history']}", "input"),
        (f"preprocessing:{c['history']}", f"data:{c['clean']}", "output"),
        (f"data:{c['clean']}", f"dataset:{c['dataset']}", "entry"),
        (f"dataset:{c['dataset']}", f"training:{c['base']}", "dataset"),
        (f"dataset:{c['dataset']}", f"training:{c['child']}", "dataset"),
        (f"dataset:{c['dataset']}", f"inference:{c['inference']}", "dataset"),
        (f"training:{c['base']}", f"training:{c['child']}", "parent"),
        (f"training:{c['child']}", f"inference:{c['inference']}", "parent"),
    }


def test_the_graph_from_the_inference_reaches_the_first_data(chain):
    c = chain
    graph, nodes, edges = _graph(c["user"], "inference", c["inference"], direction="up")
    assert graph["root"] == f"inference:{c['inference']}" and graph["truncated"] is False
    assert set(nodes) == {f"data:{c['raw']}", f"preprocessing:{c['history']}", f"data:{c['clean']}",
                          f"dataset:{c['dataset']}", f"training:{c['base']}", f"training:{c['child']}",
                          f"inference:{c['inference']}"}
    assert edges == _chain_edges(c)
    # each job carries the commit and image it ran, and links to its page
    for key in (f"training:{c['base']}", f"training:{c['child']}", f"inference:{c['inference']}",
                f"preprocessing:{c['history']}"):
        assert nodes[key]["commit"]["commitId"] == c["commit"], nodes[key]
        assert nodes[key]["commit"]["repository"] == c["repository"]
        assert nodes[key]["image"].endswith("python:3.11")
        assert nodes[key]["status"] == "Completed"
    prefix = "/services/kqi/"
    assert nodes[f"training:{c['base']}"]["url"] == f"{prefix}training?id={c['base']}"
    assert nodes[f"inference:{c['inference']}"]["url"] == f"{prefix}inference?id={c['inference']}"
    assert nodes[f"data:{c['raw']}"]["url"] == f"{prefix}data#/edit/{c['raw']}"
    assert nodes[f"dataset:{c['dataset']}"]["url"] == f"{prefix}datasets#/edit/{c['dataset']}"
    assert nodes[f"preprocessing:{c['history']}"]["url"] == f"{prefix}preprocessing#/history/{c['prep']}/log/{c['raw']}"
    assert nodes[f"preprocessing:{c['history']}"]["name"] == "lin-upper"
    assert nodes[f"training:{c['base']}"]["name"] == "lin-base"
    # the image as the job's own page names it (its registry's host too)
    shown = c["user"].api("GET", f"/training/{c['base']}").json()["containerImage"]["url"]
    assert nodes[f"training:{c['base']}"]["image"] == shown, shown
    assert nodes[f"data:{c['raw']}"]["commit"] is None and nodes[f"data:{c['raw']}"]["status"] is None


def test_the_graph_from_the_first_data_reaches_the_inference_and_the_notebook(chain):
    c = chain
    graph, nodes, edges = _graph(c["user"], "data", c["raw"], direction="down")
    assert f"inference:{c['inference']}" in nodes and f"notebook:{c['notebook']}" in nodes
    assert _chain_edges(c) <= edges
    assert {(f"training:{c['child']}", f"notebook:{c['notebook']}", "mount"),
            (f"inference:{c['inference']}", f"notebook:{c['notebook']}", "mount"),
            (f"dataset:{c['dataset']}", f"notebook:{c['notebook']}", "dataset")} <= edges
    assert nodes[f"notebook:{c['notebook']}"]["url"].endswith(f"notebooks?id={c['notebook']}")
    assert nodes[f"notebook:{c['notebook']}"]["name"] == "lin-nb"


def test_both_ways_from_the_middle_and_the_notebook(chain):
    c = chain
    _graph_, nodes, edges = _graph(c["user"], "training", c["child"])  # both ways by default
    assert {f"data:{c['raw']}", f"inference:{c['inference']}", f"notebook:{c['notebook']}"} <= set(nodes)
    # both ways means up from it and down from it: not the base training's other descendants' siblings
    assert (f"dataset:{c['dataset']}", f"training:{c['child']}", "dataset") in edges
    _graph_, nodes, _edges = _graph(c["user"], "notebook", c["notebook"], direction="up")
    assert {f"data:{c['raw']}", f"training:{c['base']}", f"inference:{c['inference']}"} <= set(nodes)
    _graph_, nodes, _edges = _graph(c["user"], "preprocessing", c["history"], direction="down")
    assert f"inference:{c['inference']}" in nodes and f"data:{c['raw']}" not in nodes


def test_depth_cuts_the_graph_and_says_so(chain):
    c = chain
    graph, nodes, edges = _graph(c["user"], "inference", c["inference"], direction="up", depth=1)
    assert set(nodes) == {f"inference:{c['inference']}", f"training:{c['child']}", f"dataset:{c['dataset']}"}
    assert graph["truncated"] is True
    graph, nodes, _ = _graph(c["user"], "dataset", c["dataset"], direction="up", depth=3)
    assert set(nodes) == {f"dataset:{c['dataset']}", f"data:{c['clean']}", f"preprocessing:{c['history']}",
                          f"data:{c['raw']}"}
    assert graph["truncated"] is False  # nothing lies beyond the first data


def test_bad_input_is_a_clear_4xx(chain):
    user = chain["user"]
    r = user.api("GET", f"/lineage/model/{chain['base']}")
    assert r.status_code == 404 and "the kinds are data" in r.json()["detail"]
    r = user.api("GET", f"/lineage/training/{chain['base']}", params={"direction": "sideways"})
    assert r.status_code == 400 and "direction" in r.json()["errors"]
    r = user.api("GET", f"/lineage/training/{chain['base']}", params={"depth": 0})
    assert r.status_code == 400 and "depth" in r.json()["errors"]
    r = user.api("GET", "/lineage/training/2147483647")
    assert r.status_code == 404 and "No training has the id" in r.json()["detail"]
    # a training's id is not an inference's
    missing = max(chain["inference"], chain["base"], chain["child"]) + 1000
    assert user.api("GET", f"/lineage/inference/{missing}").status_code == 404


def test_another_tenant_gets_404(chain, platform):
    c = chain
    other = tenant_user(platform)
    for kind, key in (("data", "raw"), ("dataset", "dataset"), ("preprocessing", "history"), ("training", "base"),
                      ("inference", "inference"), ("notebook", "notebook")):
        r = other.api("GET", f"/lineage/{kind}/{c[key]}")
        assert r.status_code == 404, (kind, r.text)
        assert c["user"].api("GET", f"/lineage/{kind}/{c[key]}").status_code == 200
    # the other tenant's own object never links into the first tenant's graph
    mine = create_data(other, "lin-other", {"b.txt": b"b"})
    graph, nodes, edges = _graph(other, "data", mine["id"])
    assert list(nodes) == [f"data:{mine['id']}"] and not edges
    r = platform.api("GET", f"/lineage/data/{c['raw']}")  # no credentials
    assert r.status_code in (401, 403)


def test_the_answers_fit_the_contract(chain, platform):
    """(after the tests above) no lineage answer was logged as not fitting LineageOutput"""
    _graph(chain["user"], "notebook", chain["notebook"])
    assert [line for line in platform.contract_misfits() if "/lineage/" in line] == []


# ----------------------------------------------------------------------------- the walk's cost
def _fan_out_db(folder, trainings: int):
    """A database of its own (SQLite, migrated) with one dataset used by `trainings` trainings, each
    the parent of an inference. Returns (session, tenant, the data's id)."""
    from kqi_services.db.models import Tenant
    from kqi_services.db.models_data import Data, DataSet, DataSetEntry
    from kqi_services.db.models_jobs import Job, JobParent
    from kqi_services.db.session import make_engine, make_session_factory, upgrade

    url = f"sqlite:///{folder}/kqi.db"
    upgrade(url)
    db = make_session_factory(make_engine(url))()
    tenant = Tenant(name="lin", display_name="lin")
    db.add(tenant)
    db.flush()
    data = Data(tenant_id=tenant.id, display_id=1, name="d")
    dataset = DataSet(tenant_id=tenant.id, display_id=1, name="s")
    db.add_all([data, dataset])
    db.flush()
    db.add(DataSetEntry(dataset_id=dataset.id, data_id=data.id, data_type_id=1))
    for n in range(1, trainings + 1):
        training = Job(tenant_id=tenant.id, kind="training", display_id=n, name=f"t{n}", cpu=1, memory=1,
                       status="Completed", dataset_id=dataset.id)
        db.add(training)
        db.flush()
        inference = Job(tenant_id=tenant.id, kind="inference", display_id=n, name=f"i{n}", cpu=1, memory=1,
                        status="Completed")
        inference.parents = [JobParent(parent_id=training.id)]
        db.add(inference)
    db.commit()
    return db, tenant, data.id


def test_the_walk_costs_the_same_for_3_and_for_40_jobs(tmp_path):
    from kqi_services.domain.lineage import LineageWalker

    costs = {}
    for trainings in (3, 40):
        folder = tmp_path / str(trainings)
        folder.mkdir()
        db, tenant, data_id = _fan_out_db(folder, trainings)
        walker = LineageWalker(db, tenant)
        graph = walker.graph("data", data_id, "down").as_json()
        assert len(graph["nodes"]) == 2 + 2 * trainings and len(graph["edges"]) == 1 + 2 * trainings
        costs[trainings] = walker.queries
        # the node limit cuts a large graph and says so
        walker = LineageWalker(db, tenant, max_nodes=10)
        graph = walker.graph("data", data_id, "down").as_json()
        assert len(graph["nodes"]) <= 10 and graph["truncated"] is (2 + 2 * trainings > 10)
        assert all(e["from"] in {n["key"] for n in graph["nodes"]} and e["to"] in {n["key"] for n in graph["nodes"]}
                   for e in graph["edges"])
        db.close()
    assert costs[3] == costs[40], costs
    assert costs[40] <= 20, costs
