"""Notebooks on a real KQI Hub (local profile: KqiLocalSpawner, a podman container per notebook).

POST /notebook/run starts the owner's hub named server `kqi-<id>`; the test then talks to
that Jupyter server through the hub's proxy (contents API) and checks what the guide says:
the dataset under /kqi/input, the model under /kqi/git, the mounted training under
/kqi/parent (read-only), /kqi/output as the home that survives halt and re-run, dataset
changes picked up by a re-run, lifetimes that end the server by themselves (also when the
kqi service was killed in between), and bad options refused with nothing started, also when
a named server is started through the hub's REST API directly (the spawner checks the options
itself and takes what to mount only from options the kqi service signed).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

from .platform import (JupyterServer, ModelRepo, containers, create_data, hub_servers, local_store_dir, new_platform,
                       processes_with, remove_tree, service_pids, tenant_user, user_hub_token, wait_job,
                       wait_notebook)

STARTUP = ("echo started > /kqi/output/startup.txt && pwd > /kqi/output/startup-cwd.txt"
           " && echo \"$NB_OPTION|$NOTEBOOK_ID|$DATASET_ID|$PARENT_ID|$HOME\" > /kqi/output/startup-env.txt")


def notebook_body(**fields) -> dict:
    body = {"name": "nb", "cpu": 1, "memory": 1, "gpu": 0, "expiresIn": 3600}
    body.update(fields)
    return body


def server_processes(platform, user: str, server: str) -> list[str]:
    """Running containers of a notebook server."""
    return containers(platform, server)


def output_dir(platform, tenant: dict, notebook_id: int) -> str:
    return os.path.join(local_store_dir(platform), *tenant["storagePath"].split("/"),
                        "NotebookContainerOutputFiles", str(notebook_id))


class Env:
    def __init__(self, platform, user, repo, data, dataset_id, training_id, hub_token):
        self.platform, self.user, self.repo = platform, user, repo
        self.data, self.dataset_id, self.training_id = data, dataset_id, training_id
        self.hub_token = hub_token

    def run(self, **fields) -> requests.Response:
        return self.user.api("POST", "/notebook/run", json=notebook_body(**fields))

    def jupyter(self, notebook_id: int) -> JupyterServer:
        return JupyterServer(self.platform, self.user.name, f"kqi-{notebook_id}", self.hub_token)


@pytest.fixture(scope="module")
def env(platform, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("notebooks"))
    user = tenant_user(platform)
    repo = ModelRepo(platform, os.path.join(tmp, "work"), "team", f"nb-model-{uuid.uuid4().hex[:8]}",
                     tenant=user.tenant)
    repo.commit({"README.md": "the notebook's model\n", "src/model.py": "WEIGHTS = 3\n"}, "a model")
    data = {"a": create_data(user, "nb-a", {"a.txt": b"alpha"})["id"],
            "b": create_data(user, "nb-b", {"b.txt": b"beta"})["id"],
            "t": create_data(user, "nb-train", {"t.txt": b"train"})["id"]}
    r = user.api("POST", "/datasets", json={"name": "nb-set", "entries": {"training": [{"id": data["a"]}]}})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    # the training to mount: its own dataset (a training locks the dataset it used)
    r = user.api("POST", "/datasets", json={"name": "nb-train-set", "entries": {"training": [{"id": data["t"]}]}})
    assert r.status_code == 201, r.text
    r = user.api("POST", "/training/run", json={
        "name": "nb-parent", "entryPoint": "mkdir -p /kqi/output/weights && echo trained > /kqi/output/weights/w.txt",
        "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": r.json()["id"],
        "gitModel": {"owner": repo.owner, "repository": repo.name}, "cpu": 1, "memory": 1, "gpu": 0})
    assert r.status_code in (200, 201), r.text
    training_id = r.json()["id"]
    assert wait_job(user, training_id, ("Completed", "Failed", "Killed", "Error"), timeout=90)["status"] == "Completed"
    return Env(platform, user, repo, data, dataset_id, training_id, user_hub_token(platform, user.name, user.password))


# ------------------------------------------------------------------------------ the flow
def test_notebook_sees_kqi_folders_keeps_output_and_picks_up_dataset_changes(env):
    platform, user = env.platform, env.user
    r = env.run(name="nb-main", dataSetId=env.dataset_id, parentIds=[env.training_id],
                gitModel={"owner": env.repo.owner, "repository": env.repo.name}, entryPoint=STARTUP,
                options={"NB_OPTION": "hello"}, memo="the main notebook")
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    server = f"kqi-{nb_id}"
    assert r.json()["serverName"] == server and r.json()["status"] in ("Pending", "Running")
    nb = wait_notebook(platform, user.token, nb_id, "Running")
    assert nb["memo"] == "the main notebook" and nb["dataSetId"] == env.dataset_id
    assert nb["parentIds"] == [env.training_id] and 0 < nb["remainingTime"] <= 3600
    assert server in hub_servers(platform, user.name)
    r = user.api("GET", f"/notebook/{nb_id}/endpoint")
    assert r.status_code == 200 and r.json()["url"] == f"/user/{user.name}/{server}/lab", r.text
    assert any(n["id"] == nb_id and n["status"] == "Running" for n in user.api("GET", "/notebook").json())

    # the signed options of the server cannot be replayed for another server, nor changed
    options = requests.get(f"{platform.hub_api_url}/users/{user.name}", timeout=10,
                           headers={"Authorization": f"token {env.hub_token}"}).json()["servers"][server]["user_options"]
    assert options["plan"]["outputDir"] and options["planSignature"]
    for name, changed in ((f"kqi-{nb_id}0", options), (f"kqi-{nb_id}0", {**options, "cpu": 64})):
        r = requests.post(f"{platform.hub_api_url}/users/{user.name}/servers/{name}", json={"user_options": changed},
                          headers={"Authorization": f"token {env.hub_token}"}, timeout=30)
        assert r.status_code == 400 and "only the kqi service makes plans" in r.json()["message"], r.text
        assert name not in hub_servers(platform, user.name)

    jupyter = env.jupyter(nb_id)
    # the contents root is /kqi/output: what the start-up command wrote there is at the top
    root = jupyter.listing()
    assert {"startup.txt", "startup-cwd.txt", "startup-env.txt"} <= set(root), root
    assert jupyter.read_text("startup.txt") == "started\n"
    assert jupyter.read_text("startup-cwd.txt") == "/kqi/git\n"  # the start-up command runs in the model
    assert jupyter.read_text("startup-env.txt") == (
        f"hello|{nb_id}|{env.dataset_id}|{env.training_id}|/kqi/output\n")
    # the folders are linked into the home: input, git, parent (no inference mounted: no link)
    assert {"input", "git", "parent"} <= set(root) and "inference" not in root, root
    a = env.data["a"]
    assert jupyter.listing("input") == {"training": "directory"}
    assert jupyter.listing(f"input/training/{a}") == {"a.txt": "file"}
    assert jupyter.read_text(f"input/training/{a}/a.txt") == "alpha"
    assert {"README.md", "src"} <= set(jupyter.listing("git"))
    assert jupyter.read_text("git/src/model.py") == "WEIGHTS = 3\n"
    assert jupyter.read_text("parent/weights/w.txt") == "trained\n"
    # the mounted training is read-only
    r = jupyter.write_text("parent/weights/w.txt", "overwritten")
    assert r.status_code >= 400, r.text
    assert jupyter.read_text("parent/weights/w.txt") == "trained\n"

    # a file written to /kqi/output is in the tenant's store (NotebookContainerOutputFiles/<id>)
    r = jupyter.write_text("kept.txt", "keep me")
    assert r.status_code == 201, r.text
    r = jupyter.request("PUT", "/api/contents/results", json={"type": "directory"})
    assert r.status_code == 201, r.text
    assert jupyter.write_text("results/score.txt", "0.93").status_code == 201
    # ... and one written under /kqi/input is not kept
    assert jupyter.write_text(f"input/training/{a}/scratch.txt", "scratch").status_code == 201
    store = output_dir(platform, user.tenant, nb_id)
    with open(os.path.join(store, "kept.txt")) as f:
        assert f.read() == "keep me"
    r = user.api("GET", f"/notebook/{nb_id}/container-files")
    assert r.status_code == 200, r.text
    assert {"kept.txt", "startup.txt"} <= {f["fileName"] for f in r.json()["files"]}
    assert {"results"} <= {d["dirName"] for d in r.json()["dirs"]}
    # the home's links into the sandbox (input, git, parent) are not files of the store
    listed = {f["fileName"] for f in r.json()["files"]} | {d["dirName"] for d in r.json()["dirs"]}
    assert not listed & {"input", "git", "parent"}, listed

    # the dataset stays editable while the notebook uses it: add a data to it
    r = user.api("GET", f"/datasets/{env.dataset_id}")
    assert r.status_code == 200 and r.json()["isLocked"] is False, r.text
    b = env.data["b"]
    r = user.api("PUT", f"/datasets/{env.dataset_id}",
                 json={"entries": {"training": [{"id": a}, {"id": b}]}})
    assert r.status_code == 200, r.text

    # halt: the server and its processes are gone
    assert server_processes(platform, user.name, server)
    r = user.api("POST", f"/notebook/{nb_id}/halt")
    assert r.status_code == 200 and r.json()["status"] == "Killed", r.text
    assert server not in hub_servers(platform, user.name)
    deadline = time.monotonic() + 15
    while server_processes(platform, user.name, server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_processes(platform, user.name, server) == []
    assert jupyter.contents().status_code != 200
    r = user.api("GET", f"/notebook/{nb_id}/endpoint")
    assert r.status_code == 404, r.text

    # re-run: the same conditions, the dataset as it is now, /kqi/output as it was
    r = user.api("POST", f"/notebook/{nb_id}/rerun")
    assert r.status_code == 200, r.text
    wait_notebook(platform, user.token, nb_id, "Running")
    assert jupyter.read_text("kept.txt") == "keep me"
    assert jupyter.read_text("results/score.txt") == "0.93"
    assert jupyter.listing("input/training") == {str(a): "directory", str(b): "directory"}
    assert jupyter.listing(f"input/training/{a}") == {"a.txt": "file"}  # scratch.txt is gone
    assert jupyter.read_text(f"input/training/{b}/b.txt") == "beta"
    assert jupyter.read_text("git/README.md") == "the notebook's model\n"
    assert jupyter.read_text("parent/weights/w.txt") == "trained\n"
    # a re-run while it runs is refused
    r = user.api("POST", f"/notebook/{nb_id}/rerun")
    assert r.status_code == 409, r.text
    r = user.api("POST", f"/notebook/{nb_id}/halt")
    assert r.status_code == 200, r.text
    assert server not in hub_servers(platform, user.name)
    # delete: the record, the server entry and the kept output go
    r = user.api("DELETE", f"/notebook/{nb_id}")
    assert r.status_code == 204, r.text
    assert user.api("GET", f"/notebook/{nb_id}").status_code == 404
    assert not os.path.exists(store)


# ------------------------------------------------------------------------------ bad options
BAD_OPTIONS = [
    ({"cpu": -1}, "cpu", "must be more than 0"),
    ({"expiresIn": 0}, "lifetimeEnabled", "does not allow notebooks without a lifetime"),
    ({"dataSetId": 987654}, "dataSetId", "no dataset has the id 987654"),
    ({"jupyterLabVersion": "newest please"}, "jupyterlabVersion", "is not a version"),
]


@pytest.mark.parametrize("fields,field,message", BAD_OPTIONS, ids=[b[1] for b in BAD_OPTIONS])
def test_bad_options_are_refused_and_nothing_starts(env, fields, field, message):
    platform, user = env.platform, env.user
    r = user.api("GET", "/notebook/available-infinite-time")
    assert r.status_code == 200 and r.json() is False
    before = {n["id"] for n in user.api("GET", "/notebook").json()}
    servers = set(hub_servers(platform, user.name))
    r = env.run(name="bad-options", **fields)
    assert r.status_code == 400, r.text
    assert message in r.text, r.text
    assert field in r.text, r.text
    assert {n["id"] for n in user.api("GET", "/notebook").json()} == before
    assert set(hub_servers(platform, user.name)) == servers


HUB_BAD_OPTIONS = [
    ({"cpu": -1}, "cpu: must be more than 0"),
    ({"lifetimeEnabled": False}, "does not allow notebooks without a lifetime"),
    ({"jupyterlabVersion": "newest please"}, "is not a version"),
    ({"gpu": 1.5}, "gpu: must be a whole number"),
    # what to mount comes only from the kqi service (signed options), never from the user
    ({"plan": {"outputDir": "/etc", "parentDirs": {"1": "/"}, "infiniteAllowed": True}},
     "only the kqi service makes plans"),
]


@pytest.mark.parametrize("options,message", HUB_BAD_OPTIONS, ids=["cpu", "lifetime", "jupyterlab", "gpu", "plan"])
def test_bad_user_options_through_the_hub_fail_the_spawn(env, options, message):
    """The spawner checks the options itself: a named server started through the hub's REST API
    with bad user_options fails with the message, and no process starts."""
    platform, user = env.platform, env.user
    name = f"direct-{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{platform.hub_api_url}/users/{user.name}/servers/{name}",
                      headers={"Authorization": f"token {env.hub_token}"}, json={"user_options": options},
                      timeout=30)
    assert r.status_code == 400, (r.status_code, r.text)
    assert message in r.json()["message"], r.text
    assert name not in hub_servers(platform, user.name)
    assert server_processes(platform, user.name, name) == []


# ------------------------------------------------------------------------------ lifetimes
UNIT = 1.0  # seconds per lifetime hour on the lifetime platform: expiresIn 3600 * n lives n seconds


@pytest.fixture(scope="module")
def lifetime_platform(tmp_path_factory):
    """A private platform (SQLite, whatever --db says: the lifetime does not depend on the database)
    whose lifetime hour is UNIT seconds and whose hub polls every second."""
    base = str(tmp_path_factory.mktemp("notebook-lifetime"))
    # the hub's profile reads the unit from its environment; the kqi service (whose environment the
    # hub config makes) gets it from its config file, to record the same expiry
    service_config = os.path.join(base, "kqi_service_config.py")
    with open(service_config, "w") as f:
        f.write(f"import os\nos.environ['KQI_NOTEBOOK_LIFETIME_UNIT_SECONDS'] = '{UNIT}'\n")
    plat = new_platform(base, {"KQI_NOTEBOOK_LIFETIME_UNIT_SECONDS": str(UNIT), "KQI_SPAWNER_POLL_SECONDS": "1",
                               "KQI_SERVICE_CONFIG": service_config})
    plat.start()
    yield plat
    plat.stop()
    remove_tree(base)


def kill_service_and_wait_for_restart(platform) -> None:
    (pid,) = service_pids(platform)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = service_pids(platform)
        if pids and pids != [pid]:
            try:
                if requests.get(f"{platform.api_url}/version", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.25)
    raise AssertionError("the hub did not start the kqi service again:\n" + platform.log_tail())


def test_lifetime_ends_the_notebook_also_across_a_service_restart(lifetime_platform):
    platform = lifetime_platform
    user = tenant_user(platform, tenant=platform.create_tenant(availableInfiniteTimeNotebook=True))
    assert user.api("GET", "/notebook/available-infinite-time").json() is True

    def run(name, seconds):
        began = time.monotonic()
        r = user.api("POST", "/notebook/run", json=notebook_body(name=name, expiresIn=int(3600 * seconds / UNIT)))
        assert r.status_code == 201, r.text
        return r.json()["id"], began

    # a notebook without a lifetime (this tenant allows it) keeps running; how long it takes to
    # start sets the lifetimes of the others (the machine may be busy)
    endless, began = run("endless", 0)
    wait_notebook(platform, user.token, endless, "Running", timeout=120)
    spawn = time.monotonic() - began
    life = max(15, int(2 * spawn) + 10)

    # `short` ends while nothing else happens; `again` (started once `short` runs) ends after the
    # kqi service was killed and started again by the hub
    short, short_began = run("short", life)
    wait_notebook(platform, user.token, short, "Running", timeout=life)
    assert server_processes(platform, user.name, f"kqi-{short}")
    again, again_began = run("again", life + 10)
    killed = wait_notebook(platform, user.token, short, ("Killed", "Stopped"), timeout=life + 30)
    lived = time.monotonic() - short_began
    assert killed["status"] == "Killed" and "lifetime" in killed["conditionNote"], killed
    assert lived >= life - 1, (lived, life)
    assert f"kqi-{short}" not in hub_servers(platform, user.name)
    assert server_processes(platform, user.name, f"kqi-{short}") == []

    wait_notebook(platform, user.token, again, "Running", timeout=max(1.0, again_began + life + 10 - time.monotonic()))
    kill_service_and_wait_for_restart(platform)
    killed = wait_notebook(platform, user.token, again, ("Killed", "Stopped"), timeout=life + 60)
    assert killed["status"] == "Killed" and "lifetime" in killed["conditionNote"], killed
    assert time.monotonic() - again_began >= life + 10 - 1
    assert server_processes(platform, user.name, f"kqi-{again}") == []
    assert f"kqi-{again}" not in hub_servers(platform, user.name)

    nb = wait_notebook(platform, user.token, endless, "Running", timeout=1)
    assert nb["remainingTime"] is None and nb["expiresAt"] is None
    r = user.api("POST", f"/notebook/{endless}/halt")
    assert r.status_code == 200, r.text


def test_an_image_without_jupyterlab_gets_it_installed_and_lab_opens(env):
    """The image (python:3.11 of the tests: Python, pip, git, no JupyterLab) gets JupyterLab at start,
    in the container, with the host's package index from the job environment: the platform's own
    virtual environment plays no part, so this holds for an install without the test extras."""
    platform, user = env.platform, env.user
    r = env.run(name="nb-install", dataSetId=env.dataset_id, containerImage={"image": "python", "tag": "3.11"},
                jupyterLabVersion="4.2.5")
    assert r.status_code == 201, r.text
    nb_id = r.json()["id"]
    try:
        nb = wait_notebook(platform, user.token, nb_id, ("Running", "Failed", "Error", "Killed"), timeout=400)
        assert nb["status"] == "Running", nb
        jupyter = env.jupyter(nb_id)
        lab = jupyter.request("GET", "/lab")
        assert lab.status_code == 200 and "JupyterLab" in lab.text, (lab.status_code, lab.text[:300])
        assert {"input", "git"} <= set(jupyter.listing())
        assert set(jupyter.listing("input")) == {"training"}
        version = jupyter.request("GET", "/api/status")
        assert version.status_code == 200
        log = open(os.path.join(env.platform.data_dir, "notebooks", user.name, f"kqi-{nb_id}", "tmp",
                                "notebook.log")).read()
        assert "installing jupyterlab==4.2.5 (the image has no JupyterLab)" in log
        # the server's hub token is in its container's environment, on no command line of this host
        (name,) = containers(platform, f"kqi-{nb_id}")
        token = subprocess.run(["podman", "exec", name, "printenv", "JUPYTERHUB_API_TOKEN"], capture_output=True,
                               text=True, check=True).stdout.strip()
        assert len(token) > 20
        assert processes_with(token) == []
    finally:
        user.api("POST", f"/notebook/{nb_id}/halt")
