"""The web shell on a real KQI Hub: a WebSocket terminal (terminado messages) into the running
container of a training, through the hub's proxy with the user's token.

A command runs as root in the container, a resize reaches its terminal (`stty size`), the
session is recorded and listed for the tenant's administrators; an anonymous caller (401),
another tenant's user (404), a cross-site upgrade (403), a job token (403) and an ended job
(409) are refused.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from .platform import ModelRepo, create_data, tenant_user, wait_job


class World:
    def __init__(self, platform, tmp):
        self.platform = platform
        self.user = tenant_user(platform)
        name, password = platform.create_user(admin_of=[self.user.tenant["name"]])
        self.admin_token = platform.login(name, password, self.user.tenant["id"])
        self.repo = ModelRepo(platform, os.path.join(tmp, "work"), "team", f"shell-{uuid.uuid4().hex[:8]}",
                              tenant=self.user.tenant)
        self.commit = self.repo.commit({"README.md": "shell\n"}, "a model")
        data = create_data(self.user, "shell-data", {"a.txt": b"alpha"})["id"]
        r = self.user.api("POST", "/datasets", json={"name": "shell-set", "entries": {"training": [{"id": data}]}})
        assert r.status_code == 201, r.text
        self.dataset = r.json()["id"]

    def run(self, name: str, entry: str) -> int:
        body = {"name": name, "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": self.dataset,
                "gitModel": {"owner": self.repo.owner, "repository": self.repo.name, "commitId": self.commit},
                "entryPoint": entry, "cpu": 0.2, "memory": 0.2, "gpu": 0}
        r = self.user.api("POST", "/training/run", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def shell_url(self, job_id: int) -> str:
        return f"{self.platform.api_url}/training/{job_id}/shell".replace("http://", "ws://", 1)


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    return World(platform, str(tmp_path_factory.mktemp("shell")))


@pytest.fixture(scope="module")
def running(world):
    job_id = world.run("shell-sleeper", "sleep 600")
    wait_job(world.user, job_id, ("Running",), timeout=120)
    yield job_id
    world.user.api("POST", f"/training/{job_id}/halt")


async def connect(url: str, token: str | None = None, headers: dict | None = None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"token {token}"
    return await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=30))


async def refused(url: str, token: str | None = None, headers: dict | None = None) -> int:
    try:
        ws = await connect(url, token, headers)
    except HTTPClientError as e:
        return e.code
    ws.close()
    return 101


class Terminal:
    def __init__(self, ws):
        self.ws = ws
        self.out = ""

    async def until(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never came; the terminal shows {self.out[-2000:]!r}"
            raw = await asyncio.wait_for(self.ws.read_message(), left)
            assert raw is not None, f"the shell closed before {text!r}: {self.out[-2000:]!r}"
            msg = json.loads(raw)
            if msg[0] == "stdout":
                self.out += msg[1]
        return self.out

    async def send(self, *msg):
        await self.ws.write_message(json.dumps(list(msg)))


async def open_terminal(world: World, job_id: int, **headers) -> Terminal:
    """The shell of a running job (a container still being started answers 409 for a moment)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return Terminal(await connect(world.shell_url(job_id) + "?rows=24&cols=80", world.user.token, headers))
        except HTTPClientError as e:
            assert e.code == 409 and time.monotonic() < deadline, e
            await asyncio.sleep(0.5)


def test_shell_runs_commands_as_root_resizes_and_is_recorded(world, running):
    async def session():
        term = await open_terminal(world, running, Origin=world.platform.url)
        await term.send("stdin", "echo hi-$((1+1)); id -u\r")
        out = await term.until("hi-2")
        await term.until("\n0\r")
        assert "hi-2" in out
        await term.send("set_size", 33, 101)
        await term.send("stdin", "stty size\r")
        await term.until("33 101")
        await term.send("stdin", "echo pid-$$-en''d\r")  # (the echo of the line has no "-end")
        pid = re.search(r"pid-(\d+)-end", await term.until("-end")).group(1)
        term.ws.close()
        # the shell ends with its socket: a second one no longer finds it
        await asyncio.sleep(1)
        second = await open_terminal(world, running)
        await second.send("stdin", f"for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 {pid} 2>/dev/null || break; sleep 0.5;"
                                   f" done; kill -0 {pid} 2>/dev/null && echo still-$((40+2)) || echo gone-$((40+2))\r")
        assert "gone-42" in await second.until("-42\r")
        second.ws.close()

    asyncio.run(session())
    deadline = time.monotonic() + 10
    while True:
        r = world.platform.api("GET", "/tenant/shell-sessions", world.admin_token, params={"jobId": running})
        assert r.status_code == 200, r.text
        rows = r.json()
        if rows and rows[0]["closedAt"]:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert rows[0]["userName"] == world.user.name and rows[0]["jobId"] == running
    assert rows[0]["jobKind"] == "training" and rows[0]["openedAt"] and rows[0]["closeReason"]
    # the list is for the tenant's administrators only
    assert world.user.api("GET", "/tenant/shell-sessions").status_code == 403


def test_shell_refuses_strangers_and_wrong_states(world, running, platform):
    url = world.shell_url(running)
    stranger = tenant_user(platform)
    ended = world.run("shell-ended", "true")
    wait_job(world.user, ended, ("Completed",), timeout=120)

    async def checks():
        assert await refused(url) == 401
        assert await refused(url, "not-a-token") == 401
        assert await refused(url, stranger.token) == 404
        assert await refused(url, world.user.token, {"Origin": "http://evil.example"}) == 403
        assert await refused(world.shell_url(ended), world.user.token) == 409
        job_token = await running_job_token(world)
        assert await refused(url, job_token) == 403
        assert world.platform.api("GET", "/tenant/shell-sessions", job_token).status_code == 403

    async def running_job_token(world):
        # a second training that writes its token, then sleeps
        job_id = world.run("shell-token", "printf '%s' \"$KQI_TOKEN\" > /kqi/output/token.txt && sleep 600")
        deadline = time.monotonic() + 120
        try:
            while True:
                listing = world.user.api("GET", f"/training/{job_id}/container-files").json()
                if any(f["fileName"] == "token.txt" and f["size"] for f in listing["files"]):
                    break
                assert time.monotonic() < deadline, listing
                await asyncio.sleep(0.3)
            from .platform import job_output_dir, job_row_id

            with open(os.path.join(job_output_dir(platform, world.user.tenant, job_row_id(world.user, job_id)), "token.txt")) as f:
                token = f.read().strip()
            jobs_to_halt.append(job_id)
            return token
        except BaseException:
            world.user.api("POST", f"/training/{job_id}/halt")
            raise

    jobs_to_halt = []
    try:
        asyncio.run(checks())
    finally:
        for job_id in jobs_to_halt:
            world.user.api("POST", f"/training/{job_id}/halt")


def test_shell_closes_when_the_job_ends(world):
    job_id = world.run("shell-ends", "sleep 600")
    wait_job(world.user, job_id, ("Running",), timeout=120)

    async def session():
        term = await open_terminal(world, job_id)
        await term.send("stdin", "echo up-$((2+3))\r")
        await term.until("up-5")
        r = world.user.api("POST", f"/training/{job_id}/halt")
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while True:  # the server says so and closes the socket
            left = deadline - time.monotonic()
            assert left > 0, term.out[-500:]
            raw = await asyncio.wait_for(term.ws.read_message(), left)
            if raw is None:
                break
            msg = json.loads(raw)
            if msg[0] == "stdout":
                term.out += msg[1]
        return term.out

    out = asyncio.run(session())
    assert "[the " in out  # "[the shell ended]" or "[the job ended]", whichever the server saw first
    rows = world.platform.api("GET", "/tenant/shell-sessions", world.admin_token, params={"jobId": job_id}).json()
    assert rows and rows[0]["closedAt"] and rows[0]["closeReason"] in ("the shell ended", "the job ended")


def test_shell_of_a_running_inference(world):
    body = {"name": "shell-infer", "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": world.dataset,
            "gitModel": {"owner": world.repo.owner, "repository": world.repo.name, "commitId": world.commit},
            "entryPoint": "sleep 600", "cpu": 0.2, "memory": 0.2, "gpu": 0}
    r = world.user.api("POST", "/inferences/run", json=body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    try:
        wait_job(world.user, job_id, ("Running",), timeout=120, kind="inferences")

        async def session():
            url = f"{world.platform.api_url}/inferences/{job_id}/shell".replace("http://", "ws://", 1)
            deadline = time.monotonic() + 60
            while True:
                try:
                    term = Terminal(await connect(url, world.user.token))
                    break
                except HTTPClientError as e:
                    assert e.code == 409 and time.monotonic() < deadline, e
                    await asyncio.sleep(0.5)
            await term.send("stdin", "echo inf-$((6*7)) $HOSTNAME\r")
            await term.until("inf-42 inference")
            term.ws.close()
            # the training route takes training ids (each kind counts 1, 2, 3 in a tenant): with the
            # inference's number it reaches the tenant's training of that number, never the inference
            try:
                other = Terminal(await connect(world.shell_url(job_id), world.user.token))
            except HTTPClientError as e:
                assert e.code in (404, 409), e  # no such training, or it does not run
            else:
                await other.send("stdin", "echo host-$HOSTNAME-$((6*7))\r")
                seen = (await other.until("-42\r")).rsplit("host-", 1)[-1]
                assert "inference" not in seen and "training" in seen, seen
                other.ws.close()

        asyncio.run(session())
        rows = world.platform.api("GET", "/tenant/shell-sessions", world.admin_token,
                                  params={"kind": "inference"}).json()
        assert [r["jobId"] for r in rows] == [job_id]
    finally:
        world.user.api("POST", f"/inferences/{job_id}/halt")


def test_shell_of_a_running_preprocessing(world):
    user = world.user
    prep = user.api("POST", "/preprocessings", json={
        "name": f"shell-prep-{uuid.uuid4().hex[:6]}", "entryPoint": "sleep 600",
        "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": world.repo.owner, "repository": world.repo.name, "commitId": world.commit},
        "cpu": 0.2, "memory": 0.2, "gpu": 0})
    assert prep.status_code == 201, prep.text
    prep_id = prep.json()["id"]
    data = create_data(user, "shell-prep-input", {"b.txt": b"beta"})["id"]
    offline = create_data(user, "shell-prep-offline", {"c.txt": b"gamma"})["id"]
    r = user.api("POST", f"/preprocessings/{prep_id}/run", json={"dataId": data, "cpu": 0.2, "memory": 0.2, "gpu": 0})
    assert r.status_code == 201, r.text
    base = f"/preprocessings/{prep_id}/histories/{data}"
    url = f"{world.platform.api_url}{base}/shell".replace("http://", "ws://", 1)
    try:
        deadline = time.monotonic() + 120
        while user.api("GET", base).json()["status"] != "Running":
            assert time.monotonic() < deadline
            time.sleep(0.2)

        async def session():
            deadline = time.monotonic() + 60
            while True:
                try:
                    term = Terminal(await connect(url, world.user.token))
                    break
                except HTTPClientError as e:
                    assert e.code == 409 and time.monotonic() < deadline, e
                    await asyncio.sleep(0.5)
            await term.send("stdin", "echo prep-$((7*6)) $DATA_ID\r")
            await term.until(f"prep-42 {data}")
            term.ws.close()
            # a history opened by hand has no container
            assert user.api("POST", f"/preprocessings/{prep_id}/histories/{offline}").status_code == 201
            offline_url = f"{world.platform.api_url}/preprocessings/{prep_id}/histories/{offline}/shell"
            assert await refused(offline_url.replace("http://", "ws://", 1), world.user.token) == 409

        asyncio.run(session())
        rows = world.platform.api("GET", "/tenant/shell-sessions", world.admin_token,
                                  params={"kind": "preprocessing"}).json()
        assert len(rows) == 1 and rows[0]["userName"] == user.name
    finally:
        user.api("POST", f"{base}/halt")
