"""TensorBoard on a real KQI Hub (the guide's "TensorBoard の起動"): trainings write event files
with the tensorboard package's own summary writer, TensorBoard is started through the API over
one then two trainings, its scalar data is read back through the authenticated proxy, another
tenant and anonymous callers are refused, the official `kqi training tensorboard-halt` stops it,
a system administrator lists and stops them, and a 20-second one ends by itself.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
import requests

from . import images
from .platform import ModelRepo, containers, create_data, job_row_id, tenant_user, wait_job

WRITE_EVENTS = ("python3 -c \"from tensorboard.summary import Writer; w = Writer('/kqi/output');"
                " [w.add_scalar('{tag}', {scale} / (i + 1), i) for i in range(5)]; w.close()\"")


class World:
    def __init__(self, platform, tmp):
        self.platform = platform
        self.user = tenant_user(platform, home=os.path.join(tmp, "home"))
        self.repo = ModelRepo(platform, os.path.join(tmp, "work"), "team", f"tb-{uuid.uuid4().hex[:8]}",
                              tenant=self.user.tenant)
        self.commit = self.repo.commit({"README.md": "tensorboard\n"}, "a model")
        data = create_data(self.user, "tb-data", {"a.txt": b"alpha"})["id"]
        r = self.user.api("POST", "/datasets", json={"name": "tb-set", "entries": {"training": [{"id": data}]}})
        assert r.status_code == 201, r.text
        self.dataset = r.json()["id"]
        image, tag = images.TENSORBOARD.rsplit(":", 1)
        self.image = {"image": image, "tag": tag}

    def train(self, name: str, tag: str, scale: float) -> int:
        body = {"name": name, "containerImage": self.image, "dataSetId": self.dataset,
                "gitModel": {"owner": self.repo.owner, "repository": self.repo.name, "commitId": self.commit},
                "entryPoint": WRITE_EVENTS.format(tag=tag, scale=scale), "cpu": 0.5, "memory": 0.5, "gpu": 0}
        r = self.user.api("POST", "/training/run", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def board(self, training_id: int, user=None) -> requests.Response:
        return (user or self.user).api("GET", f"/training/{training_id}/tensorboard")

    def proxy(self, training_id: int, path: str, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(f"{self.platform.service_url}/proxy/tensorboard/{training_id}/{path}",
                            headers=headers, timeout=30)


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    return World(platform, str(tmp_path_factory.mktemp("tensorboard")))


@pytest.fixture(scope="module")
def trainings(world):
    first = world.train("tb-first", "loss", 1.0)
    second = world.train("tb-second", "accuracy", 2.0)
    for job_id in (first, second):
        details = wait_job(world.user, job_id, ("Completed", "Failed", "Error", "Killed"), timeout=180)
        assert details["status"] == "Completed", details["conditionNote"]
    return first, second


def wait_for(what, check, timeout: float = 90, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(interval)


def board_key(world: World, training_id: int) -> str:
    """The TensorBoard's container name: by the training's table id (unique across tenants), which
    its key tells; the API's training id is the tenant's own number."""
    return f"tensorboard-{job_row_id(world.user, training_id)}"


def runs_of(world: World, training_id: int) -> list[str]:
    r = world.proxy(training_id, "data/runs", world.user.token)
    return r.json() if r.status_code == 200 else []


def test_tensorboard_over_two_trainings_through_the_proxy(world, trainings, platform):
    first, second = trainings
    r = world.board(first)
    assert r.status_code == 200 and r.json()["status"] == "None" and r.json()["name"] is None, r.text

    r = world.user.api("PUT", f"/training/{first}/tensorboard", json={"expiresIn": 600})
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["name"] == board_key(world, first) and board["status"] in ("Pending", "Running"), board
    assert board["mountedTrainingHistoryIds"] == [] and 590 <= board["remainingTime"] <= 600
    assert board["url"] == f"/services/kqi/proxy/tensorboard/{first}/"
    assert containers(platform, board_key(world, first))

    runs = wait_for("the first run", lambda: runs_of(world, first))
    # (--logdir_spec names each training's folder by its id: events at its top are the run "<id>/.")
    assert runs == [f"{first}/."], runs
    r = world.proxy(first, f"data/plugin/scalars/scalars?run={first}/.&tag=loss", world.user.token)
    assert r.status_code == 200, r.text
    points = r.json()
    assert [p[1] for p in points] == [0, 1, 2, 3, 4]
    assert [round(p[2], 4) for p in points] == [1.0, 0.5, 0.3333, 0.25, 0.2]
    # the page itself, under the prefix
    r = world.proxy(first, "", world.user.token)
    assert r.status_code == 200 and "<tb-webapp>" in r.text, r.text[:500]
    board = wait_for("Running", lambda: (lambda b: b if b["status"] == "Running" else None)(world.board(first).json()))
    assert isinstance(board["nodePort"], int)

    # callers who may not: anonymous 401, another tenant 404 (the API and the proxy)
    other = tenant_user(platform)
    assert world.board(first, other).status_code == 404
    assert world.proxy(first, "data/runs", other.token).status_code == 404
    assert world.proxy(first, "data/runs").status_code == 401
    r = other.api("PUT", f"/training/{first}/tensorboard", json={})
    assert r.status_code == 404, r.text
    r = world.user.api("PUT", f"/training/{first}/tensorboard", json={"selectedHistoryIds": [999999]})
    assert r.status_code == 404, r.text
    r = world.user.api("PUT", f"/training/{first}/tensorboard", json={"expiresIn": "soon"})
    assert r.status_code == 400 and "expiresIn" in r.json()["errors"], r.text

    # a second training added: both runs
    r = world.user.api("PUT", f"/training/{first}/tensorboard", json={"expiresIn": 600, "selectedHistoryIds": [second]})
    assert r.status_code == 200 and r.json()["mountedTrainingHistoryIds"] == [second], r.text
    runs = wait_for("both runs", lambda: (lambda rs: rs if len(rs) == 2 else None)(runs_of(world, first)))
    assert sorted(runs) == sorted([f"{first}/.", f"{second}/."]), runs
    r = world.proxy(first, f"data/plugin/scalars/scalars?run={second}/.&tag=accuracy", world.user.token)
    assert r.status_code == 200 and [round(p[2], 4) for p in r.json()] == [2.0, 1.0, 0.6667, 0.5, 0.4], r.text

    # a system administrator sees it
    admin = platform.admin_token()
    listed = platform.api("GET", "/admin/tensorboards", admin).json()
    assert [b["trainingId"] for b in listed if b["trainingId"] == first] == [first], listed
    assert platform.api("GET", "/admin/tensorboards", world.user.token).status_code == 403

    # the official CLI stops it
    out = world.user.cli("training", "tensorboard-halt", str(first))
    assert out.returncode == 0, out.stderr
    assert world.board(first).json()["status"] == "None"
    assert world.proxy(first, "data/runs", world.user.token).status_code == 404
    assert not containers(platform, board_key(world, first), running_only=False)
    assert world.user.api("DELETE", f"/training/{first}/tensorboard").status_code == 404


def test_admin_stops_a_tensorboard_and_a_short_one_ends_by_itself(world, trainings, platform):
    first, second = trainings
    r = world.user.api("PUT", f"/training/{second}/tensorboard", json={"expiresIn": 600})
    assert r.status_code == 200, r.text
    admin = platform.admin_token()
    assert platform.api("DELETE", f"/admin/tensorboards/{second}", world.user.token).status_code == 403
    # (a training id is its tenant's own: the tenant is named, as the admin page does)
    r = platform.api("DELETE", f"/admin/tensorboards/{second}", admin, params={"tenantId": world.user.tenant["id"]})
    assert r.status_code == 204, r.text
    assert world.board(second).json()["status"] == "None"
    assert not containers(platform, board_key(world, second), running_only=False)

    started = time.monotonic()
    r = world.user.api("PUT", f"/training/{second}/tensorboard", json={"expiresIn": 20})
    assert r.status_code == 200 and r.json()["remainingTime"] <= 20, r.text
    wait_for("the run", lambda: runs_of(world, second))
    wait_for("its end", lambda: world.board(second).json()["status"] == "None", timeout=90)
    took = time.monotonic() - started
    assert 18 <= took <= 60, took
    assert world.proxy(second, "data/runs", world.user.token).status_code == 404
    wait_for("its container gone", lambda: not containers(platform, board_key(world, second), running_only=False),
             timeout=30)


def test_a_tensorboard_ends_while_the_service_is_down(world, trainings, platform):
    """The container carries its own deadline; the next start of the service clears the record."""
    first, _ = trainings
    r = world.user.api("PUT", f"/training/{first}/tensorboard", json={"expiresIn": 25})
    assert r.status_code == 200, r.text
    started = time.monotonic()
    wait_for("the run", lambda: runs_of(world, first))
    key = board_key(world, first)  # (asked while the service runs)
    platform.stop()
    try:
        assert containers(platform, key), "the TensorBoard ended with the service"
        wait_for("its container's end", lambda: not containers(platform, key), timeout=60)
        assert time.monotonic() - started >= 20
    finally:
        platform.start()
    wait_for("the record cleared", lambda: world.board(first).json()["status"] == "None", timeout=30)
    wait_for("its container removed",
             lambda: not containers(platform, board_key(world, first), running_only=False), timeout=30)
