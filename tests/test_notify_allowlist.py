"""The address allow-list of outgoing notifications (Slack webhooks): by default only public
internet addresses over https; internal targets refused with a clear 400 by the test
notification route, and refused again where the connection is made (the resolved addresses
are checked and only those are connected to; redirects are not followed)."""
from __future__ import annotations

import asyncio

import pytest

from kqi_services.notify import slack
from kqi_services.notify.policy import NotificationPolicy, NotificationRefused

from .platform import new_platform, remove_tree
from .test_user_settings_api import Receiver, closed_port

INTERNAL = {
    "https://127.0.0.1/hook": "a loopback address",
    "https://10.1.2.3/hook": "a private network address",
    "https://192.168.0.7:8443/hook": "a private network address",
    "https://169.254.169.254/latest/meta-data/": "a link-local address",
    "https://[::1]/hook": "a loopback address",
    "https://[::ffff:127.0.0.1]/hook": "a loopback address",
    "https://0.0.0.0/hook": "an unspecified address",
    "https://224.0.0.1/hook": "a multicast address",
    "https://100.64.0.1/hook": "not a public internet address",
    "https://localhost/hook": "a loopback address",
}


# ------------------------------------------------------------------------------------ units
def test_policy_refuses_internal_addresses_and_http_by_default():
    policy = NotificationPolicy()
    for address in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "::1",
                    "fe80::1%eth0", "fd00::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1",
                    "::ffff:10.0.0.1", "100.64.0.1"):
        assert policy.problem(address), address
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert policy.problem(address) is None, address
    with pytest.raises(NotificationRefused, match="https:// only"):
        policy.check_url("http://hooks.example.com/x")
    assert policy.check_url("https://hooks.example.com/x") == ("hooks.example.com", 443)

    widened = NotificationPolicy(allowed_networks=["10.20.0.0/16", "::1/128"], allow_http=True)
    assert widened.problem("10.20.3.4") is None and widened.problem("::1") is None
    assert widened.problem("10.21.0.1") and widened.problem("127.0.0.1")
    assert widened.check_url("http://chat.internal:8065/hooks/x") == ("chat.internal", 8065)
    with pytest.raises(Exception):
        NotificationPolicy(allowed_networks=["not-a-network"])


def test_the_connection_goes_only_to_checked_addresses():
    """Without the route's check in front: the delivery itself resolves, checks and connects
    only to allowed addresses, so a name that resolves to an internal address is never posted
    to (what a DNS rebinding between a check and the connection would need)."""
    receiver = Receiver()
    try:
        port = receiver.server.server_address[1]
        lenient = NotificationPolicy(allow_http=True)  # http, but no internal network
        result = asyncio.run(slack.send(f"http://localhost:{port}/services/T/B/secret123secret", {"text": "x"},
                                        policy=lenient))
        assert result.success is False
        assert "a loopback address" in result.reason and "secret123secret" not in result.reason
        assert receiver.requests == []
        # the job-end message too (what the jobs send): with the default policy, nothing is posted
        result = asyncio.run(slack.notify_job_end(
            f"https://127.0.0.1:{port}/hook", kind="training", job_id=1, name="n", tenant="T", user_name="u",
            status="Completed", url="https://kqi.example.com/"))
        assert result.success is False and "a loopback address" in result.reason
        assert receiver.requests == []

        allowed = NotificationPolicy(allow_http=True, allowed_networks=["127.0.0.1/32"])
        result = asyncio.run(slack.send(f"http://localhost:{port}/hook", {"text": "y"}, policy=allowed))
        assert result.success is True, result.reason  # localhost's ::1 dropped, 127.0.0.1 used
        assert [r["json"] for r in receiver.requests] == [{"text": "y"}]
    finally:
        receiver.close()


# ---------------------------------------------------------------- a platform with the defaults
@pytest.fixture(scope="module")
def strict_platform(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("notify-strict"))
    plat = new_platform(base)  # no service config: the default allow-list
    plat.db_backend = "sqlite"
    plat.start()
    yield plat
    plat.stop()
    remove_tree(base)


def _test_notification(plat, token, url):
    return plat.api("POST", "/account/webhook/slack/test", token, json={"slackUrl": url})


def test_default_refuses_internal_targets_with_a_message(strict_platform):
    plat = strict_platform
    name, password = plat.create_user(tenants=["sandbox"])
    token = plat.login(name, password)
    receiver = Receiver()
    try:
        port = receiver.server.server_address[1]
        cases = dict(INTERNAL)
        cases[f"https://127.0.0.1:{port}/services/T/B/secretpath0001"] = "a loopback address"
        for url, why in cases.items():
            r = _test_notification(plat, token, url)
            assert r.status_code == 400, (url, r.text)
            body = r.json()
            assert body["status"] == 400 and why in body["detail"], (url, body)
            assert "public internet addresses" in body["errors"]["slackUrl"][0]
            assert "secretpath0001" not in r.text
        r = _test_notification(plat, token, receiver.url("/services/T/B/secretpath0002"))
        assert r.status_code == 400 and "https:// only" in r.json()["detail"], r.text
        assert "secretpath0002" not in r.text

        # a saved internal URL is refused at its test too
        saved = f"https://127.0.0.1:{port}/services/T/B/secretpath0003"
        assert plat.api("PUT", "/account/webhook/slack", token, json={"slackUrl": saved}).status_code == 204
        r = plat.api("POST", "/account/webhook/slack/test", token, json={})
        assert r.status_code == 400 and "a loopback address" in r.json()["detail"], r.text
        assert receiver.requests == []
    finally:
        receiver.close()
    assert "secretpath000" not in plat.log_tail(10000)


def test_widened_allow_list_delivers_and_still_refuses_the_rest(platform):
    """The shared test platform allows 127.0.0.1/32 over http (tests/conftest.py), as an
    administrator allows an internal chat server: delivered there, refused elsewhere."""
    name, password = platform.create_user(tenants=["sandbox"])
    token = platform.login(name, password)
    receiver = Receiver()
    try:
        r = _test_notification(platform, token, receiver.url("/services/T/B/abc"))
        assert r.status_code == 200 and r.json() == {"success": True}, r.text
        assert len(receiver.requests) == 1 and name in receiver.requests[0]["json"]["text"]
        port = receiver.server.server_address[1]
        r = _test_notification(platform, token, f"http://localhost:{port}/services/T/B/abc")
        assert r.json() == {"success": True}, r.text

        for url in ("https://10.1.2.3/hook", "https://169.254.169.254/latest/meta-data/",
                    f"http://[::1]:{port}/hook"):
            r = _test_notification(platform, token, url)
            assert r.status_code == 400 and "may not be sent" in r.json()["detail"], (url, r.text)

        # a redirect is not followed (it could point anywhere)
        receiver.status = 302
        r = _test_notification(platform, token, receiver.url("/services/T/B/abc"))
        assert r.status_code == 200 and r.json()["success"] is False and "302" in r.json()["reason"], r.text
        assert len(receiver.requests) == 3
        gone = f"http://127.0.0.1:{closed_port()}/hook"
        assert _test_notification(platform, token, gone).json()["success"] is False
    finally:
        receiver.close()
