"""A job's own ports through the authenticated reverse proxy (/services/kqi/proxy/...), on a real
KQI Hub: a training serves its output folder with `python3 -m http.server`, the page is read
through the proxy with the user's token; another tenant's user, an anonymous caller, a job
token, an undeclared port and a cross-site WebSocket upgrade are all refused.
"""
from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
import requests

from .platform import ModelRepo, create_data, tenant_user, wait_job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_entry(port: int, marker: str) -> str:
    """A training command that writes its token and a page, then serves /kqi/output on `port`."""
    return (f"cd /kqi/output && printf '%s' \"$KQI_TOKEN\" > token.txt && echo '{marker}' > index.html"
            f" && mkdir -p sub && echo 'in sub' > sub/page.txt"
            f" && exec python3 -m http.server {port} --bind 127.0.0.1")


class World:
    def __init__(self, platform, tmp):
        self.platform = platform
        self.user = tenant_user(platform)
        self.repo = ModelRepo(platform, os.path.join(tmp, "work"), "team", f"ports-{uuid.uuid4().hex[:8]}",
                              tenant=self.user.tenant)
        self.commit = self.repo.commit({"README.md": "ports\n"}, "a model")
        data = create_data(self.user, "ports-data", {"a.txt": b"alpha"})["id"]
        r = self.user.api("POST", "/datasets", json={"name": "ports-set", "entries": {"training": [{"id": data}]}})
        assert r.status_code == 201, r.text
        self.dataset = r.json()["id"]

    def run(self, name: str, entry: str, ports: list[int]) -> int:
        body = {"name": name, "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": self.dataset,
                "gitModel": {"owner": self.repo.owner, "repository": self.repo.name, "commitId": self.commit},
                "entryPoint": entry, "cpu": 0.2, "memory": 0.2, "gpu": 0, "ports": ports}
        r = self.user.api("POST", "/training/run", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def proxy_url(self, job_id: int, port: int, path: str = "") -> str:
        return f"{self.platform.service_url}/proxy/training/{job_id}/{port}/{path}"

    def get(self, url: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(url, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    return World(platform, str(tmp_path_factory.mktemp("ports")))


def wait_served(world: World, job_id: int, port: int, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = world.get(world.proxy_url(job_id, port), world.user.token)
        if r.status_code == 200:
            return r
        assert time.monotonic() < deadline, f"{r.status_code} {r.text}"
        time.sleep(0.3)


def job_token(world: World, job_id: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        listing = world.user.api("GET", f"/training/{job_id}/container-files", params={"withUrl": "true"}).json()
        found = [f for f in listing["files"] if f["fileName"] == "token.txt" and f["size"]]
        if found:
            return requests.get(found[0]["url"], timeout=10).text.strip()
        assert time.monotonic() < deadline, listing
        time.sleep(0.3)


def test_a_training_port_is_served_to_its_tenant_only(world, platform):
    port, undeclared = free_port(), free_port()
    marker = f"served-{uuid.uuid4().hex[:8]}"
    job_id = world.run("serve", serve_entry(port, marker), [port])
    try:
        wait_job(world.user, job_id, "Running", timeout=120)
        r = wait_served(world, job_id, port)
        assert marker in r.text
        # the details show the port and its address while the job runs
        details = world.user.api("GET", f"/training/{job_id}").json()
        url = f"/services/kqi/proxy/training/{job_id}/{port}/"
        assert details["ports"] == [port]
        assert details["nodePorts"] == [{"key": str(port), "value": port, "url": url}]
        # paths below the prefix reach the same folder; the bare prefix gets its slash
        r = world.get(world.proxy_url(job_id, port, "sub/page.txt"), world.user.token)
        assert r.status_code == 200 and r.text == "in sub\n", r.text
        r = world.get(world.proxy_url(job_id, port).rstrip("/") + "?x=1", world.user.token, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"].endswith(f"{url}?x=1"), r.headers
        # the target's own redirect (a folder without its slash) stays under the prefix
        r = world.get(world.proxy_url(job_id, port, "sub"), world.user.token, allow_redirects=False)
        assert r.status_code == 301 and r.headers["Location"] == f"{url}sub/", r.headers

        # anonymous: 401; another tenant's user: 404; a job token: 403
        assert world.get(world.proxy_url(job_id, port)).status_code == 401
        other = tenant_user(platform)
        r = world.get(world.proxy_url(job_id, port), other.token)
        assert r.status_code == 404 and marker not in r.text, r.text
        token = job_token(world, job_id)
        assert token.startswith("kqi-job."), token
        r = world.get(world.proxy_url(job_id, port), token)
        assert r.status_code == 403 and marker not in r.text, r.text
        # a hub token of the user that does not give access to the kqi service: 403; one that gives
        # access to the service but not the tenant: 404
        r = platform.hub("POST", f"/users/{world.user.name}/tokens", json={"note": "no kqi", "scopes": ["read:users:name!user"]})
        assert r.status_code == 201, r.text
        r = world.get(world.proxy_url(job_id, port), r.json()["token"])
        assert r.status_code == 403 and marker not in r.text, r.text
        r = platform.hub("POST", f"/users/{world.user.name}/tokens",
                         json={"note": "service only", "scopes": ["access:services!service=kqi"]})
        assert r.status_code == 201, r.text
        r = world.get(world.proxy_url(job_id, port), r.json()["token"])
        assert r.status_code == 404 and marker not in r.text, r.text
        # a port the job did not declare: 404 (even though something may listen there)
        r = world.get(world.proxy_url(job_id, undeclared), world.user.token)
        assert r.status_code == 404, r.text
        # an id that does not exist, a kind that is not one
        assert world.get(world.proxy_url(999999, port), world.user.token).status_code == 404
        r = world.get(f"{platform.service_url}/proxy/preprocessing/{job_id}/{port}/", world.user.token)
        assert r.status_code == 404

        # a WebSocket upgrade from another site is refused before anything is forwarded
        ws_headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        r = world.get(world.proxy_url(job_id, port), world.user.token,
                      headers={**ws_headers, "Origin": "http://evil.example"})
        assert r.status_code == 403, r.text
        # as is a state-changing request from another site
        r = requests.post(world.proxy_url(job_id, port), data=b"x", timeout=30,
                          headers={"Authorization": f"Bearer {world.user.token}", "Origin": "http://evil.example"})
        assert r.status_code == 403, r.text
        # from this site, the upgrade reaches the target (http.server speaks no WebSocket: 502)
        host = platform.url.split("://", 1)[1]
        r = world.get(world.proxy_url(job_id, port), world.user.token,
                      headers={**ws_headers, "Origin": f"http://{host}"})
        assert r.status_code == 502, r.text
    finally:
        world.user.api("POST", f"/training/{job_id}/halt")
    wait_job(world.user, job_id, ("Killed", "Completed", "Failed", "Error"), timeout=60)
    # ended: no address, nothing served
    assert world.user.api("GET", f"/training/{job_id}").json()["nodePorts"] == []
    assert world.get(world.proxy_url(job_id, port), world.user.token).status_code == 404


def member_of(platform, user) -> str:
    """A token of another member of `user`'s tenant."""
    name, password = platform.create_user(tenants=[user.tenant["name"]])
    return platform.login(name, password, user.tenant["id"])


def test_another_member_of_the_tenant_opens_the_port(world, platform):
    port = free_port()
    job_id = world.run("serve-members", serve_entry(port, "for the tenant"), [port])
    try:
        wait_job(world.user, job_id, "Running", timeout=120)
        wait_served(world, job_id, port)
        r = world.get(world.proxy_url(job_id, port), member_of(platform, world.user))
        assert r.status_code == 200 and "for the tenant" in r.text, r.text
    finally:
        world.user.api("POST", f"/training/{job_id}/halt")


@pytest.fixture(scope="module")
def owner_only_platform(tmp_path_factory):
    from .platform import new_platform

    base = str(tmp_path_factory.mktemp("ports-owner"))
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write('c.KqiService.job_ports_for = "owner"\n')
    plat = new_platform(base, {"KQI_SERVICE_CONFIG": config})
    plat.db_backend = "sqlite"
    plat.start()
    yield plat
    plat.stop()


def test_owner_only_ports(owner_only_platform, tmp_path):
    platform = owner_only_platform
    world = World(platform, str(tmp_path))
    port = free_port()
    job_id = world.run("serve-owner", serve_entry(port, "for the owner"), [port])
    try:
        wait_job(world.user, job_id, "Running", timeout=120)
        assert "for the owner" in wait_served(world, job_id, port).text
        member = member_of(platform, world.user)
        r = world.get(world.proxy_url(job_id, port), member)
        assert r.status_code == 403 and "for the owner" not in r.text, r.text
        # the details show the address to the owner only
        assert world.user.api("GET", f"/training/{job_id}").json()["nodePorts"][0]["value"] == port
        assert platform.api("GET", f"/training/{job_id}", member).json()["nodePorts"] == []
    finally:
        world.user.api("POST", f"/training/{job_id}/halt")


# A WebSocket echo server in the standard library only (the job's image has no WebSocket package):
# it answers each text message with the path it was reached at and whether credentials came along.
WS_ECHO = r'''
import base64, hashlib, socket, struct, sys, threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def exact(conn, n):
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            raise EOFError
        data += more
    return data


def send(conn, opcode, payload):
    size = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([size]) if size < 126 else bytes([126]) + struct.pack(">H", size))
    conn.sendall(head + payload)


def handle(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(4096)
        if not more:
            return
        data += more
    lines = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())
    seen = "%s auth=%s prefix=%s" % (lines[0].split()[1], "authorization" in headers,
                                     headers.get("x-forwarded-prefix"))
    while True:
        first, second = exact(conn, 2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack(">H", exact(conn, 2))[0]
        elif size == 127:
            size = struct.unpack(">Q", exact(conn, 8))[0]
        mask = exact(conn, 4) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(exact(conn, size)))
        opcode = first & 0x0F
        if opcode == 8:
            send(conn, 8, b"")
            return
        if opcode == 1:
            send(conn, 1, (seen + " " + payload.decode()).encode())


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
'''


def test_a_websocket_through_the_hub_and_the_proxy(world, platform):
    import asyncio

    from tornado import httpclient, websocket

    port = free_port()
    commit = world.repo.commit({"ws_echo.py": WS_ECHO}, "a websocket echo")
    body = {"name": "ws-echo", "containerImage": {"image": "python", "tag": "3.11"}, "dataSetId": world.dataset,
            "gitModel": {"owner": world.repo.owner, "repository": world.repo.name, "commitId": commit},
            "entryPoint": f"python3 ws_echo.py {port}", "cpu": 0.2, "memory": 0.2, "gpu": 0, "ports": [port]}
    r = world.user.api("POST", "/training/run", json=body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    url = world.proxy_url(job_id, port, "socket?x=1").replace("http://", "ws://")
    prefix = f"/services/kqi/proxy/training/{job_id}/{port}"

    async def talk(headers):
        request = httpclient.HTTPRequest(url, headers=headers, connect_timeout=10, request_timeout=10)
        conn = await websocket.websocket_connect(request)
        await conn.write_message("hello")
        answer = await conn.read_message()
        conn.close()
        return answer

    try:
        wait_job(world.user, job_id, "Running", timeout=120)
        headers = {"Authorization": f"Bearer {world.user.token}", "Origin": platform.url}
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = asyncio.run(talk(headers))
                break
            except (httpclient.HTTPClientError, OSError, websocket.WebSocketClosedError) as e:
                assert time.monotonic() < deadline, e
                time.sleep(0.5)
        # relayed both ways; the prefix stripped and named; the caller's token not passed on
        assert answer == f"/socket?x=1 auth=False prefix={prefix} hello", answer
        for bad, status in (({"Authorization": f"Bearer {world.user.token}", "Origin": "http://evil.example"}, 403),
                            ({"Origin": platform.url}, 401)):
            try:
                asyncio.run(talk(bad))
                raise AssertionError(f"accepted {bad}")
            except httpclient.HTTPClientError as e:
                assert e.code == status, e
    finally:
        world.user.api("POST", f"/training/{job_id}/halt")
