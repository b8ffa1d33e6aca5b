"""The reverse proxy's forwarding, in-process: a WebSocket relayed both ways (text and binary,
the subprotocol carried), a cross-site upgrade refused, and an HTTP request reaching the
target without the caller's hub credentials, with X-Forwarded-Prefix, its redirects kept
under the prefix and its attempts at the hub's cookies dropped."""
from __future__ import annotations

import asyncio
import json
import socket

from tornado import httpclient, httpserver, web, websocket

from kqi_services.permissions import Identity
from kqi_services.proxy import ProxyHandler, ProxyTarget, same_host, strip_reserved_cookies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Echo(websocket.WebSocketHandler):
    def select_subprotocol(self, subprotocols):
        return subprotocols[0] if subprotocols else None

    def on_message(self, message):
        self.write_message(("echo:" + message) if isinstance(message, str) else b"echo:" + message,
                           binary=isinstance(message, bytes))


class Show(web.RequestHandler):
    def head(self, path):
        self.set_header("X-Seen", path)

    async def get(self, path):
        if path == "big":  # more than tornado's default 100 MB body limit, in pieces
            for _ in range(110):
                self.write(b"x" * (1024 * 1024))
                await self.flush()
            return
        if path == "empty":
            self.set_status(204)
            return
        if path == "go":
            self.redirect("/elsewhere")
            return
        self.set_cookie("jupyterhub-session-id", "stolen")
        self.set_cookie("app", "fine")
        self.write({"path": path, "query": self.request.query, "headers": dict(self.request.headers)})


class FakeDb:
    def close(self):
        pass


class ProxyUnderTest(ProxyHandler):
    upstream_port = 0

    async def _hub_identity(self, access):
        if self.request.headers.get("Authorization") == "Bearer good":
            self.identity = Identity(name="alice")

    def resolve(self, path=None):
        return ProxyTarget("127.0.0.1", self.upstream_port, "/p/", path)


def run(coro):
    return asyncio.run(coro)


async def _world():
    target_port, proxy_port = _free_port(), _free_port()
    target = httpserver.HTTPServer(web.Application([(r"/ws", Echo), (r"/(.*)", Show)]))
    target.listen(target_port, "127.0.0.1")
    ProxyUnderTest.upstream_port = target_port
    proxy = httpserver.HTTPServer(web.Application([(r"/p(?:/(.*))?", ProxyUnderTest)],
                                                  session_factory=FakeDb, kqi=None))
    proxy.listen(proxy_port, "127.0.0.1")
    return target, proxy, proxy_port


def test_websocket_relayed_both_ways_and_cross_site_refused():
    async def main():
        target, proxy, port = await _world()
        try:
            headers = {"Authorization": "Bearer good", "Origin": f"http://127.0.0.1:{port}"}
            request = httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/p/ws", headers=headers)
            conn = await websocket.websocket_connect(request, subprotocols=["one", "two"])
            assert conn.selected_subprotocol == "one"
            await conn.write_message("hello")
            assert await conn.read_message() == "echo:hello"
            await conn.write_message(b"\x00\x01", binary=True)
            assert await conn.read_message() == b"echo:\x00\x01"
            conn.close()
            for bad in ({"Authorization": "Bearer good", "Origin": "http://evil.example"}, {}):
                request = httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/p/ws", headers=bad)
                try:
                    await websocket.websocket_connect(request)
                    raise AssertionError(f"accepted {bad}")
                except httpclient.HTTPClientError as e:
                    assert e.code == (403 if bad else 401), e
        finally:
            target.stop()
            proxy.stop()

    run(main())


def test_http_forwarded_without_credentials():
    async def main():
        target, proxy, port = await _world()
        client = httpclient.AsyncHTTPClient()
        try:
            r = await client.fetch(f"http://127.0.0.1:{port}/p/a/b?x=1&token=secret", headers={
                "Authorization": "Bearer good", "Cookie": "jupyterhub-hub-login=h; app=1; kqi-tenant=3"})
            seen = json.loads(r.body)
            assert seen["path"] == "a/b" and seen["query"] == "x=1"
            assert "Authorization" not in seen["headers"]
            assert seen["headers"]["Cookie"] == "app=1"
            assert seen["headers"]["X-Forwarded-Prefix"] == "/p"
            cookies = r.headers.get_list("Set-Cookie")
            assert any(c.startswith("app=") for c in cookies)
            assert not any(c.startswith("jupyterhub") for c in cookies)
            r = await client.fetch(f"http://127.0.0.1:{port}/p/go", headers={"Authorization": "Bearer good"},
                                   follow_redirects=False, raise_error=False)
            assert r.code == 302 and r.headers["Location"] == "/p/elsewhere"
            r = await client.fetch(f"http://127.0.0.1:{port}/p/a", raise_error=False)
            assert r.code == 401
            r = await client.fetch(f"http://127.0.0.1:{port}/p/empty", headers={"Authorization": "Bearer good"},
                                   raise_error=False)
            assert r.code == 204 and not r.body
            r = await client.fetch(f"http://127.0.0.1:{port}/p/a", method="HEAD",
                                   headers={"Authorization": "Bearer good"})
            assert r.code == 200 and not r.body and r.headers["X-Seen"] == "a"
            size = 0

            def count(chunk):
                nonlocal size
                size += len(chunk)

            r = await httpclient.AsyncHTTPClient(force_instance=True, max_body_size=2**31).fetch(
                f"http://127.0.0.1:{port}/p/big", headers={"Authorization": "Bearer good"},
                streaming_callback=count, request_timeout=120)
            assert r.code == 200 and size == 110 * 1024 * 1024
        finally:
            target.stop()
            proxy.stop()

    run(main())


def test_helpers():
    assert same_host("http://h:8000", "h:8000") and not same_host("http://h:8001", "h:8000")
    assert not same_host(None, "h") and not same_host("null", "h")
    assert strip_reserved_cookies("jupyterhub-session-id=1; a=2; _xsrf=3; kqi-tenant=4; b=5") == "a=2; b=5"
