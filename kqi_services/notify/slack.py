"""Slack notifications: the one place KQI Hub posts to a Slack (or Slack-compatible) webhook.

Two kinds of message exist, as in KAMONOHASHI: the test message a user sends from the
Webhook settings, and the message at the end of a training, inference or preprocessing
job. `send()` posts one message and reports what happened as a `SendResult`; it never
raises for a failed delivery, and its reason never contains the webhook URL (the URL is
the secret: anyone who knows it can post to the channel).
"""
from __future__ import annotations

import json
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from .policy import CheckedResolver, NotificationPolicy, NotificationRefused

log = logging.getLogger(__name__)

#: seconds to wait for the webhook (connecting, and answering)
DEFAULT_TIMEOUT = 10.0
#: how much of a failed answer's body goes into the reason
BODY_EXCERPT = 200
#: the largest answer read from a webhook (Slack answers "ok")
MAX_ANSWER_BYTES = 1024 * 1024

#: colours of the job-end message, by the job's end state
STATUS_COLORS = {
    "Completed": "#67C23A",
    "Killed": "#D00000",
    "Failed": "#D00000",
    "Error": "#D00000",
    "UserCanceled": "#E6A23C",
}
KIND_TITLES = {
    "training": "training",
    "inference": "inference",
    "preprocessing": "preprocessing",
}
_SPECIAL_MENTIONS = {"here", "channel", "everyone"}


@dataclass
class SendResult:
    success: bool
    reason: str | None = None
    status: int | None = None

    def as_json(self) -> dict:
        out = {"success": self.success}
        if not self.success:
            out["reason"] = self.reason
        return out


# ------------------------------------------------------------------------- messages
def mention_text(mention: str | None) -> str:
    """Slack's mention markup for a member id (U012AB3CD) or here/channel/everyone."""
    if not mention:
        return ""
    mention = mention.lstrip("@")
    if mention in _SPECIAL_MENTIONS:
        return f"<!{mention}>"
    return f"<@{mention}>"


def webhook_test_message(user_name: str, public_url: str, mention: str | None = None) -> dict:
    """The test notification of the Webhook settings."""
    head = mention_text(mention)
    text = (f"{head} " if head else "") + (
        f"KQI Hub test notification sent by {user_name}. "
        f"Job results will be posted here. {public_url}"
    )
    return {"text": text}


def job_end_message(
    *,
    kind: str,
    job_id: int,
    name: str,
    tenant: str,
    user_name: str,
    status: str | None,
    url: str,
    mention: str | None = None,
    message: str | None = None,
) -> dict:
    """The message at the end of a job (or, with status None, when a running job was deleted).

    `kind` is training, inference or preprocessing; `tenant` the tenant's display name;
    `url` the page of the job in the web UI.
    """
    what = KIND_TITLES.get(kind, kind)
    if status is None:
        title = f"KQI Hub {what} {job_id} was deleted while it ran"
        color = STATUS_COLORS["Killed"]
    else:
        title = f"KQI Hub {what} {job_id} ended: {status}"
        color = STATUS_COLORS.get(status, "#909399")
    head = mention_text(mention)
    fields = [
        {"title": "ID", "value": str(job_id), "short": True},
        {"title": "Name", "value": name or "-", "short": True},
        {"title": "Tenant", "value": tenant, "short": True},
        {"title": "Created by", "value": user_name, "short": True},
    ]
    if status is not None:
        fields.append({"title": "Status", "value": status, "short": True})
    attachment = {
        "fallback": title,
        "color": color,
        "title": title,
        "title_link": url,
        "fields": fields,
    }
    if message:
        attachment["text"] = message
    return {
        "text": (f"{head} " if head else "") + f"{title} <{url}|More>",
        "attachments": [attachment],
    }


# ------------------------------------------------------------------------- delivery
async def send(webhook_url: str, payload: dict, *, timeout: float = DEFAULT_TIMEOUT,
               policy: NotificationPolicy | None = None) -> SendResult:
    """Post `payload` as JSON to the webhook; never raises for a failed delivery.

    Only to the addresses `policy` allows (the strict default when None): the connection goes
    to the resolved addresses it checked, and redirects are not followed."""
    policy = policy or NotificationPolicy()
    try:
        policy.check_url(webhook_url)
    except NotificationRefused as e:
        return SendResult(False, scrub(str(e), webhook_url))
    request = HTTPRequest(
        webhook_url,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        connect_timeout=timeout,
        request_timeout=timeout,
        follow_redirects=False,
        user_agent="KQI Hub",
    )
    # a client of its own: slow webhooks must not queue the service's calls to the hub,
    # which share tornado's default client; it connects only to addresses the policy allows
    resolver = CheckedResolver(policy=policy)
    client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=MAX_ANSWER_BYTES, resolver=resolver)
    try:
        response = await client.fetch(request, raise_error=False)
    except NotificationRefused as e:
        return SendResult(False, scrub(str(e), webhook_url))
    except Exception as e:  # connection refused, DNS, TLS, timeout...
        return SendResult(False, scrub(f"Could not deliver to the webhook: {describe_error(e, timeout)}.",
                                       webhook_url))
    finally:
        client.close()
        resolver.close()
    if 200 <= response.code < 300:
        return SendResult(True, status=response.code)
    excerpt = _excerpt(response.body)
    reason = f"The webhook answered HTTP {response.code} {response.reason or ''}".rstrip()
    if excerpt:
        reason += f": {excerpt}"
    return SendResult(False, scrub(reason, webhook_url), status=response.code)


async def notify_job_end(webhook_url: str | None, policy: NotificationPolicy | None = None,
                         **fields) -> SendResult | None:
    """Send the job-end message (fields as `job_end_message`) when the user set a webhook.

    For the job code: failures are logged (without the URL) and reported, never raised.
    """
    if not webhook_url:
        return None
    result = await send(webhook_url, job_end_message(**fields), policy=policy)
    if not result.success:
        log.warning("Slack notification of %s %s for %s failed: %s", fields.get("kind"),
                    fields.get("job_id"), fields.get("user_name"), result.reason)
    return result


def describe_error(e: BaseException, timeout: float) -> str:
    if isinstance(e, HTTPClientError) and e.code == 599:
        text = str(e.message or e)
        if "timeout" in text.lower():
            return f"no answer within {timeout:g} seconds"
        return text
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} seconds"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (nothing listens at that address and port)"
    if isinstance(e, socket.gaierror):
        return "the host name is unknown"
    if isinstance(e, ssl.SSLError):
        return f"TLS error ({e.reason or e})"
    if isinstance(e, OSError) and e.strerror:
        return f"connection error ({e.strerror.lower()})"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _excerpt(body: bytes | None) -> str:
    if not body:
        return ""
    text = body[: BODY_EXCERPT * 4].decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > BODY_EXCERPT:
        text = text[:BODY_EXCERPT] + "..."
    return text


def scrub(text: str, webhook_url: str) -> str:
    """Remove the webhook URL and its secret path from a text meant for users and logs."""
    parts = urlsplit(webhook_url)
    secrets = [webhook_url, webhook_url.rstrip("/")]
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(path) > 1:
        secrets.extend([path, parts.path])
    if parts.query:
        secrets.append(parts.query)
    # a long path segment may be the secret on its own (Slack: /services/T…/B…/<secret>)
    secrets.extend(seg for seg in parts.path.split("/") if len(seg) >= 12)
    for secret in sorted({s for s in secrets if s and len(s) > 1}, key=len, reverse=True):
        text = text.replace(secret, "<webhook URL>")
    return text
