"""The web shell on the Kubernetes backend: `KubernetesBackend.open_shell` against the fake API
server of test_kubernetes_backend.py, with a pods/exec WebSocket (v4.channel.k8s.io) added. The
fake plays the container's terminal: it answers what comes on stdin (channel 0) on stdout
(channel 1) and records resizes (channel 4); the exec that ends the session's processes when
the shell closes is checked too."""
from __future__ import annotations

import asyncio
import json
import threading
from urllib.parse import parse_qs

import pytest
from tornado import httpserver, netutil, web, websocket

from kqi_services.jobs import kubernetes as k8s
from kqi_services.jobs.shell import MARKER_VARIABLE

from .test_kubernetes_backend import TOKEN, FakeKubernetes, _Handler, request

EXEC = r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/exec"


class _ExecHandler(websocket.WebSocketHandler):
    def initialize(self, fake):
        self.fake = fake

    def select_subprotocol(self, subprotocols):
        return "v4.channel.k8s.io" if "v4.channel.k8s.io" in subprotocols else None

    async def get(self, *args, **kwargs):
        if self.request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.set_status(401)
            return self.finish()
        return await super().get(*args, **kwargs)

    def open(self, ns, name):
        query = parse_qs(self.request.query)
        self.call = {"ns": ns, "pod": name, **query}
        self.fake.execs.append(self.call)
        self.write_message(bytes([1]), binary=True)  # the empty first message of a channel
        if [v.lower() for v in query.get("stdin", [])] != ["true"]:  # (the client sends True/False)  # the command that ends the session: its status, then the end
            self.write_message(bytes([3]) + json.dumps({"status": "Success"}).encode(), binary=True)
            self.close()

    def on_message(self, message):
        channel, data = message[0], message[1:]
        if channel == 0:
            self.write_message(bytes([1]) + b"you typed: " + data, binary=True)
        elif channel == 4:
            self.fake.resizes.append(json.loads(data))


class FakeWithExec(FakeKubernetes):
    def start(self):
        self.execs, self.resizes = [], []
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)

            async def listen():
                sockets = netutil.bind_sockets(0, "127.0.0.1")
                self.port = sockets[0].getsockname()[1]
                self.server = httpserver.HTTPServer(web.Application([
                    (EXEC, _ExecHandler, {"fake": self}), (r"/.*", _Handler, {"fake": self})]))
                self.server.add_sockets(sockets)

            self.loop.run_until_complete(listen())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="fake-kubernetes-exec", daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self


@pytest.fixture(scope="module")
def fake():
    server = FakeWithExec().start()
    yield server
    server.stop()


def test_shell_through_the_exec_api(fake, tmp_path):
    backend = k8s.KubernetesBackend(kubeconfig=fake.kubeconfig(str(tmp_path / "kubeconfig")), namespace="kqi-test",
                                    storage_root=str(tmp_path / "storage"), status_cache_seconds=0,
                                    capacity_cache_seconds=0, request_timeout=10)
    try:
        backend.launch(request(backend.storage_root, key="training-77", job_id=77))
        pod = fake.run_pod("training-77")

        async def session():
            shell = await backend.open_shell("training-77", 30, 100)
            shell.write(b"ls\r")
            out = b""
            while b"you typed: ls" not in out:
                data = await asyncio.wait_for(shell.read(), 10)
                assert data is not None, out
                out += data
            shell.resize(40, 132)
            await asyncio.sleep(0.3)
            await shell.close()

        asyncio.run(session())
        interactive, ending = fake.execs
        assert interactive["pod"] == pod
        assert interactive["ns"] == "kqi-test"
        assert interactive["container"] == ["main"]
        flag = lambda call, name: [v.lower() for v in call.get(name, [])]  # noqa: E731
        assert flag(interactive, "stdin") == flag(interactive, "tty") == flag(interactive, "stdout") == ["true"]
        command = interactive["command"]
        assert command[:2] == ["/bin/sh", "-c"] and f"{MARKER_VARIABLE}=" in command[2]
        marker = command[2].split(f"{MARKER_VARIABLE}=", 1)[1].split(";", 1)[0]
        assert fake.resizes == [{"Width": 100, "Height": 30}, {"Width": 132, "Height": 40}]
        # closing ran the command that ends the session's processes, for this session only
        assert ending["pod"] == pod and flag(ending, "stdin") in ([], ["false"]) and flag(ending, "tty") == ["false"]
        assert f"{MARKER_VARIABLE}={marker}" in ending["command"][2] and "kill" in ending["command"][2]
    finally:
        backend.close()
