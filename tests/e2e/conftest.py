"""Fixtures of the browser tests: headless Chromium (Debian's, never a download) driven by
Playwright, signing in at the hub, and a local HTTP receiver that stands in for Slack."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only: a platform test that checks the UI, not the database: run on SQLite only")


def pytest_collection_modifyitems(config, items):
    # skip (at collection, so that no PostgreSQL platform is started for nothing)
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.get_closest_marker("sqlite_only") and callspec is not None \
                and callspec.params.get("db_backend", "sqlite") != "sqlite":
            item.add_marker(pytest.mark.skip(reason="browser tests run on the SQLite platform only"))


@pytest.fixture(scope="package")
def browser():
    # package scope: sync Playwright keeps an event loop running in this thread while it is
    # open, which would break every later test that runs asyncio (asyncio.run, pytest-asyncio)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records what is POSTed to it (a fake Slack webhook)."""

    def __init__(self, status: int = 200):
        self.requests: list[dict] = []
        self.status = status
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append({
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type", ""),
                        "body": raw,
                    })
                body = b"ok" if receiver.status < 400 else b"invalid_token"
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def json_bodies(self) -> list:
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def sign_in(page, platform, name: str, password: str, path: str = "/") -> None:
    """Open a page of the kqi UI; the hub's sign-in comes first, then OAuth brings us back."""
    page.goto(platform.service_url + path)
    page.wait_for_selector("#username_input")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(platform.service_url + path + "**")
    page.wait_for_selector("body[data-kqi-ready]")
