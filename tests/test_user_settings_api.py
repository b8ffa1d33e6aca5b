"""The caller's own settings against a real KQI Hub: git tokens, registry credentials, the
Slack webhook and its test notification (to a receiver the test runs), display name, password.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import sqlalchemy


# ------------------------------------------------------------------------------ helpers
class Recorder:
    """Calls the kqi API and keeps every response text, to check that no secret leaks."""

    def __init__(self, platform, token):
        self.platform = platform
        self.token = token
        self.texts: list[str] = []

    def __call__(self, method, path, **kwargs):
        r = self.platform.api(method, path, self.token, **kwargs)
        self.texts.append(r.text + json.dumps(dict(r.headers)))
        return r

    def assert_never_returned(self, *secrets):
        for secret in secrets:
            for text in self.texts:
                assert secret not in text


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it is sent and answers `status`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.body = b"ok"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                receiver.requests.append({
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(raw),
                })
                body = receiver.body.replace(b"{path}", self.path.encode())
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_engine(platform):
    if platform.db_backend == "sqlite":
        return sqlalchemy.create_engine("sqlite:///" + sqlite_path(platform))
    return sqlalchemy.create_engine(platform.env["KQI_DB_URL"])


def sqlite_path(platform) -> str:
    return os.path.join(platform.data_dir, "kqi", "kqi.sqlite")


def db_rows(platform, sql: str, **params) -> list:
    engine = db_engine(platform)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sqlalchemy.text(sql), params)]
    finally:
        engine.dispose()


def assert_stored_encrypted(platform, secret: str) -> None:
    """The secret is in no table of the kqi DB (and, for SQLite, in no byte of its files)."""
    if platform.db_backend == "sqlite":
        base = sqlite_path(platform)
        for path in (base, base + "-wal", base + "-journal"):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    assert secret.encode() not in f.read(), path
    for table in ("user_settings", "user_git_tokens", "user_registry_credentials"):
        for row in db_rows(platform, f"SELECT * FROM {table}"):
            assert all(secret not in str(value) for value in row), table


def user_id(platform, name: str) -> int:
    return db_rows(platform, "SELECT id FROM user_settings WHERE name = :n", n=name)[0][0]


@pytest.fixture
def member(platform):
    """A fresh user of the sandbox tenant: (name, password, Recorder with its token)."""
    name, password = platform.create_user(tenants=["sandbox"])
    return name, password, Recorder(platform, platform.login(name, password))


# ------------------------------------------------------------------------------ git tokens
def test_git_tokens_are_set_hidden_encrypted_and_removed(platform, member):
    name, _, api = member
    secret = "ghp_" + uuid.uuid4().hex

    r = api("GET", "/account/gits")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["defaultGitId"] == 1
    assert body["gits"] == [{"id": 1, "name": "local", "serviceType": 6,
                             "repositoryUrl": body["gits"][0]["repositoryUrl"], "tokenSet": False, "token": None}]

    r = api("PUT", "/account/gits", json=[{"id": 1, "token": secret}])
    assert r.status_code == 200, r.text
    assert r.json()["gits"][0]["tokenSet"] is True
    assert r.json()["gits"][0]["token"] is None
    assert api("GET", "/account/gits").json()["gits"][0]["tokenSet"] is True

    rows = db_rows(platform, "SELECT token_encrypted FROM user_git_tokens WHERE user_id = :u",
                   u=user_id(platform, name))
    assert len(rows) == 1 and rows[0][0] and secret not in rows[0][0]
    assert_stored_encrypted(platform, secret)

    # another user of the same tenant has no token
    other, other_pw = platform.create_user(tenants=["sandbox"])
    r = platform.api("GET", "/account/gits", platform.login(other, other_pw))
    assert r.json()["gits"][0]["tokenSet"] is False

    # KAMONOHASHI's single-object form answers with that one credential
    r = api("PUT", "/account/gits", json={"id": 1, "token": secret + "2"})
    assert r.status_code == 200, r.text
    assert r.json() == {**body["gits"][0], "tokenSet": True}

    for removal in ("", None):
        api("PUT", "/account/gits", json=[{"id": 1, "token": "again-" + secret}])
        r = api("PUT", "/account/gits", json=[{"id": 1, "token": removal}])
        assert r.status_code == 200, r.text
        assert r.json()["gits"][0]["tokenSet"] is False
    assert db_rows(platform, "SELECT * FROM user_git_tokens WHERE user_id = :u", u=user_id(platform, name)) == []

    api.assert_never_returned(secret, "again-" + secret)
    assert secret not in platform.log_tail(10000)


def test_git_tokens_bad_input(platform, member):
    _, _, api = member
    cases = [
        ([{"id": 999, "token": "x"}], "[0].id"),
        ([{"id": 1}], "[0].token"),
        ([{"id": 1, "token": 5}], "[0].token"),
        ([{"id": 1, "token": " padded "}], "[0].token"),
        ([{"id": 1, "token": "a"}, {"id": 1, "token": "b"}], "[1].id"),
        ([{"token": "a"}], "[0].id"),
        ([{"id": 1, "token": "x", "secret": 1}], "[0].secret"),
        ("a string", "body"),
        ([1, 2], "[1]"),  # each item that is not an object is named
    ]
    for body, field in cases:
        r = api("PUT", "/account/gits", json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["errors"], (body, r.json())
    r = api("PUT", "/account/gits", data="{not json")
    assert r.status_code == 400
    # nothing was stored by the refused requests
    assert api("GET", "/account/gits").json()["gits"][0]["tokenSet"] is False


# ------------------------------------------------------------------------------ registries
def test_registry_credentials(platform, member):
    name, _, api = member
    secret = "reg-" + uuid.uuid4().hex

    r = api("GET", "/account/registries")
    assert r.status_code == 200, r.text
    assert r.json()["defaultRegistryId"] == 1
    item = r.json()["registries"][0]
    assert item == {"id": 1, "name": "docker-hub", "projectName": None, "serviceType": 1,
                    "userName": None, "passwordSet": False, "password": None}

    # a user name alone is refused while no password is stored
    r = api("PUT", "/account/registries", json=[{"id": 1, "userName": "bob"}])
    assert r.status_code == 400 and "[0].password" in r.json()["errors"]

    r = api("PUT", "/account/registries", json=[{"id": 1, "userName": "bob", "password": secret}])
    assert r.status_code == 200, r.text
    assert r.json()["registries"][0] == {**item, "userName": "bob", "passwordSet": True}
    assert_stored_encrypted(platform, secret)
    rows = db_rows(platform, "SELECT registry_user_name, password_encrypted FROM user_registry_credentials"
                             " WHERE user_id = :u", u=user_id(platform, name))
    assert rows[0][0] == "bob" and rows[0][1] and secret not in rows[0][1]

    # the user name can change without sending the password again
    r = api("PUT", "/account/registries", json={"id": 1, "userName": "robert"})
    assert r.status_code == 200, r.text
    assert r.json() == {**item, "userName": "robert", "passwordSet": True}
    assert db_rows(platform, "SELECT password_encrypted FROM user_registry_credentials WHERE user_id = :u",
                   u=user_id(platform, name))[0][0] == rows[0][1]

    for body in ([{"id": 42, "password": "x"}], [{"id": 1, "password": 3}], {"id": "1", "password": "x"}):
        r = api("PUT", "/account/registries", json=body)
        assert r.status_code == 400, (body, r.text)

    r = api("PUT", "/account/registries", json=[{"id": 1, "userName": "robert", "password": None}])
    assert r.status_code == 200
    assert r.json()["registries"][0] == item
    api.assert_never_returned(secret)
    assert secret not in platform.log_tail(10000)


def test_tenant_settings_need_a_tenant_but_webhook_does_not(platform):
    # a token that reaches the service but carries no tenant (as for a user in no tenant)
    name, password = platform.create_user(tenants=["sandbox"])
    r = requests.post(f"{platform.hub_api_url}/users/{name}/tokens",
                      json={"auth": {"username": name, "password": password},
                            "scopes": ["access:services!service=kqi"], "expires_in": 600}, timeout=10)
    assert r.status_code in (200, 201), r.text
    token = r.json()["token"]
    for path in ("/account/gits", "/account/registries"):
        r = platform.api("GET", path, token)
        assert r.status_code == 403, r.text
        assert "no tenant" in r.json()["detail"]
    r = platform.api("GET", "/account/webhook/slack", token)
    assert r.status_code == 200, r.text
    for method, path in (("GET", "/account/gits"), ("GET", "/account/webhook/slack"),
                         ("POST", "/account/webhook/slack/test"), ("PUT", "/account/password"),
                         ("PUT", "/account/displayName")):
        assert platform.api(method, path, None, json={}).status_code == 401


# ------------------------------------------------------------------------------ webhook
def test_webhook_settings(platform, member):
    name, _, api = member
    secret_url = f"https://hooks.slack.com/services/T000/B000/{uuid.uuid4().hex}"
    assert api("GET", "/account/webhook/slack").json() == {"slackUrl": None, "slackUrlSet": False,
                                                          "mention": None}

    for bad in ("ftp://example.com/x", "not a url", "http://", "javascript:alert(1)", 12,
                "https://example.com/" + "x" * 3000):
        r = api("PUT", "/account/webhook/slack", json={"slackUrl": bad})
        assert r.status_code == 400, (bad, r.text)
        assert "slackUrl" in r.json()["errors"]
    r = api("PUT", "/account/webhook/slack", json={"slackUrl": secret_url, "mention": "not ok <>"})
    assert r.status_code == 400 and "mention" in r.json()["errors"]
    assert api("GET", "/account/webhook/slack").json()["slackUrlSet"] is False

    r = api("PUT", "/account/webhook/slack", json={"slackUrl": secret_url, "mention": "@U012AB3CD"})
    assert r.status_code == 204, r.text
    assert api("GET", "/account/webhook/slack").json() == {"slackUrl": None, "slackUrlSet": True,
                                                          "mention": "U012AB3CD"}
    assert_stored_encrypted(platform, secret_url)
    stored = db_rows(platform, "SELECT slack_url_encrypted FROM user_settings WHERE name = :n", n=name)[0][0]
    assert stored and "hooks.slack.com" not in stored

    # leaving the URL out keeps it; null clears it
    assert api("PUT", "/account/webhook/slack", json={"mention": "U999"}).status_code == 204
    assert api("GET", "/account/webhook/slack").json() == {"slackUrl": None, "slackUrlSet": True,
                                                          "mention": "U999"}
    assert api("PUT", "/account/webhook/slack", json={"slackUrl": None, "mention": ""}).status_code == 204
    assert api("GET", "/account/webhook/slack").json() == {"slackUrl": None, "slackUrlSet": False,
                                                          "mention": None}
    api.assert_never_returned(secret_url, secret_url.rsplit("/", 1)[1])
    assert secret_url.rsplit("/", 1)[1] not in platform.log_tail(10000)


def test_webhook_test_notification(platform, member, receiver):
    name, _, api = member
    secret = uuid.uuid4().hex
    url = receiver.url(f"/services/T000/B000/{secret}")

    # nothing saved and nothing given
    r = api("POST", "/account/webhook/slack/test")
    assert r.status_code == 400, r.text
    assert "slackUrl" in r.json()["errors"]
    r = api("POST", "/account/webhook/slack/test", json={"slackUrl": "file:///etc/passwd"})
    assert r.status_code == 400

    # the URL of the body, with a mention
    r = api("POST", "/account/webhook/slack/test", json={"slackUrl": url, "mention": "U0TEST"})
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    sent = receiver.requests[-1]
    assert sent["path"] == f"/services/T000/B000/{secret}"
    assert sent["content_type"].startswith("application/json")
    assert sent["json"]["text"].startswith("<@U0TEST> ")
    assert name in sent["json"]["text"]

    # the saved URL and mention, when the body gives none
    assert api("PUT", "/account/webhook/slack", json={"slackUrl": url, "mention": "U0SAVED"}).status_code == 204
    r = api("POST", "/account/webhook/slack/test", json={})
    assert r.json() == {"success": True}, r.text
    assert receiver.requests[-1]["json"]["text"].startswith("<@U0SAVED> ")
    assert len(receiver.requests) == 2

    # the receiver fails: the reason has the status and the body, but not the URL
    receiver.status = 500
    receiver.body = b"no_service at {path}"
    r = api("POST", "/account/webhook/slack/test")
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["success"] is False
    assert "500" in result["reason"] and "no_service" in result["reason"]
    assert secret not in result["reason"] and url not in result["reason"]

    # nothing listens at the address
    gone = f"http://127.0.0.1:{closed_port()}/services/T1/B1/{secret}"
    r = api("POST", "/account/webhook/slack/test", json={"slackUrl": gone})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["success"] is False
    assert "refused" in result["reason"].lower()
    assert secret not in result["reason"] and gone not in result["reason"]

    api.assert_never_returned(secret)
    assert secret not in platform.log_tail(10000)


# ------------------------------------------------------------------------ display name
def test_display_name(platform, member):
    name, _, api = member
    r = api("PUT", "/account/displayName", json={"displayName": "  Alice Liddell "})
    assert r.status_code == 204, r.text
    assert api("GET", "/account").json()["userDisplayName"] == "Alice Liddell"
    assert api("PUT", "/account/displayName", json={"displayName": "x" * 300}).status_code == 400
    assert api("PUT", "/account/displayName", json={"displayName": 3}).status_code == 400
    assert api("PUT", "/account/displayName", json={}).status_code == 400
    assert api("PUT", "/account/displayName", json={"displayName": ""}).status_code == 204
    assert api("GET", "/account").json()["userDisplayName"] == name


# ------------------------------------------------------------------------------ password
def test_password_change(platform, member):
    name, password, api = member
    new = "new-" + uuid.uuid4().hex

    r = api("PUT", "/account/password", json={"currentPassword": "wrong-password", "newPassword": new})
    assert r.status_code == 400, r.text
    assert "currentPassword" in r.json()["errors"]
    for weak in ("short", "", " padded-password "):
        r = api("PUT", "/account/password", json={"currentPassword": password, "newPassword": weak})
        assert r.status_code == 400, (weak, r.text)
        assert "newPassword" in r.json()["errors"]
    r = api("PUT", "/account/password", json={"currentPassword": password, "newPassword": password})
    assert r.status_code == 400
    assert api("PUT", "/account/password", json={"newPassword": new}).status_code == 400
    # the refused requests changed nothing
    platform.login(name, password)

    r = api("PUT", "/account/password", json={"currentPassword": password, "newPassword": new})
    assert r.status_code == 204, r.text
    old = requests.post(f"{platform.api_url}/account/login", json={"userName": name, "password": password},
                        timeout=30)
    assert old.status_code == 401
    assert platform.login(name, new)
    # the check of the current password left no token behind
    tokens = platform.hub("GET", f"/users/{name}/tokens").json()["api_tokens"]
    assert not [t for t in tokens if "password change" in (t.get("note") or "")]
    api.assert_never_returned(password, new)
    assert new not in platform.log_tail(10000)


def test_job_end_notification_is_posted(receiver):
    """notify/slack.py's job-end message (what the jobs send) reaches a webhook as Slack JSON."""
    import asyncio

    from kqi_services.notify import slack
    from kqi_services.notify.policy import NotificationPolicy

    secret = uuid.uuid4().hex
    url = receiver.url(f"/services/T9/B9/{secret}")
    fields = dict(kind="training", job_id=7, name="resnet", tenant="Sandbox", user_name="alice",
                  status="Completed", url="http://127.0.0.1:8000/services/kqi/#/training/7", mention="U0JOB",
                  # the receiver is on http://127.0.0.1, which the default allow-list refuses
                  policy=NotificationPolicy(allowed_networks=["127.0.0.1/32"], allow_http=True))
    result = asyncio.run(slack.notify_job_end(url, **fields))
    assert result.success, result.reason
    message = receiver.requests[-1]["json"]
    assert message["text"].startswith("<@U0JOB> KQI Hub training 7 ended: Completed")
    attachment = message["attachments"][0]
    assert attachment["color"] == "#67C23A"
    assert {"title": "Status", "value": "Completed", "short": True} in attachment["fields"]
    assert attachment["title_link"] == fields["url"]

    # a running job that was deleted: no status, the reason as text
    deleted = slack.job_end_message(**{**{k: v for k, v in fields.items() if k != "policy"}, "status": None,
                                       "mention": None, "message": "The job was deleted while it ran."})
    assert not deleted["text"].startswith("<@")
    assert "Status" not in [f["title"] for f in deleted["attachments"][0]["fields"]]
    assert deleted["attachments"][0]["text"] == "The job was deleted while it ran."

    receiver.status = 404
    receiver.body = b"no_team"
    result = asyncio.run(slack.notify_job_end(url, **fields))
    assert not result.success and "404" in result.reason and "no_team" in result.reason
    assert secret not in result.reason
    assert asyncio.run(slack.notify_job_end(None, **fields)) is None
