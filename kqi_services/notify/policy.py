"""Where outgoing notifications may go: the address allow-list of webhook deliveries.

A webhook URL is chosen by a user, so without a rule the service would post to whatever it can
reach from inside: the cloud's metadata service (169.254.169.254), the hub's own API on
loopback, a database in the private network. By default a notification goes to public internet
addresses over https only; an administrator can allow more networks (a company's own chat
server) and plain http with the traits below.

The rule is checked on the addresses the host name resolves to, and the connection is made to
those checked addresses only (`CheckedResolver` is the HTTP client's resolver), so a name that
resolves to a public address when checked and to an internal one when connecting (DNS
rebinding) cannot get through. Redirects are never followed (kqi_services/notify/slack.py).
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from tornado.netutil import DefaultExecutorResolver, Resolver
from traitlets import Bool, List, Unicode, validate
from traitlets.config import Configurable

# the kinds of address refused unless an allowed network holds them, in the order they are named
_KINDS = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address (such as a cloud metadata service)"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private network address"),
    ("is_reserved", "a reserved address"),
)


class NotificationRefused(Exception):
    """A notification's address is not allowed; the message says why (without the URL's path)."""


def _plain(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def address_problem(ip) -> str | None:
    """Why an address is internal (loopback, private, …), or None for a public internet address."""
    for attribute, text in _KINDS:
        if getattr(ip, attribute):
            return text
    if not ip.is_global:
        return "not a public internet address"
    return None


class NotificationPolicy(Configurable):
    """The address allow-list of outgoing notifications (Slack webhooks)."""

    allowed_networks = List(
        Unicode(),
        help="""Networks (CIDR, e.g. 10.20.0.0/16 or 192.0.2.7/32) notifications may be posted to on top
        of public internet addresses. By default none: a webhook that resolves to a private,
        loopback, link-local, multicast, reserved or unspecified address is refused. Add your
        own chat server's network here when it is internal.""",
    ).tag(config=True)

    allow_http = Bool(
        False,
        help="""Allow webhooks over plain http://. Off by default: the webhook URL is a secret and the
        messages name users and jobs, so they go over https only.""",
    ).tag(config=True)

    @validate("allowed_networks")
    def _networks(self, proposal):
        for value in proposal["value"]:
            ipaddress.ip_network(value, strict=False)  # a clear error at start-up for a typo
        return proposal["value"]

    def networks(self):
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]

    def problem(self, address: str) -> str | None:
        """Why a resolved address may not be notified, or None when it may."""
        ip = _plain(address)
        if any(ip.version == n.version and ip in n for n in self.networks()):
            return None
        return address_problem(ip)

    def check_url(self, url: str) -> tuple[str, int]:
        """(host, port) of an allowed scheme; NotificationRefused for another scheme."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "http" and not self.allow_http:
            raise NotificationRefused("Notifications go over https:// only; this webhook is http:// "
                                      "(an administrator can allow http with c.NotificationPolicy.allow_http).")
        if scheme not in ("http", "https") or not parts.hostname:
            raise NotificationRefused("The webhook must be an https:// URL with a host.")
        return parts.hostname, parts.port or (443 if scheme == "https" else 80)

    def check_addresses(self, host: str, addresses: list[str]) -> list[str]:
        """The allowed ones of a host's resolved addresses; NotificationRefused when none is."""
        allowed, refused = [], []
        for address in addresses:
            problem = self.problem(address)
            if problem is None:
                allowed.append(address)
            else:
                refused.append((address, problem))
        if not allowed:
            address, problem = refused[0] if refused else ("nothing", "no address")
            where = f"{host} is" if host == address else f"{host} resolves to {address},"
            raise NotificationRefused(
                f"Notifications may not be sent to {host}: {where} {problem}. Webhooks must be public "
                "internet addresses (an administrator can allow more networks with "
                "c.NotificationPolicy.allowed_networks).")
        return allowed

    async def check(self, url: str) -> None:
        """Refuse a URL (NotificationRefused) whose scheme or every resolved address is not allowed.

        A host name that does not resolve is left to the delivery, which reports it."""
        host, port = self.check_url(url)
        try:
            resolved = await DefaultExecutorResolver().resolve(host, port)
        except (OSError, socket.gaierror):
            return
        self.check_addresses(host, [addr[0] for _family, addr in resolved])


class CheckedResolver(Resolver):
    """The HTTP client's resolver for notifications: only addresses the policy allows are used,
    so the connection goes to an address that was checked (no rebinding between check and use)."""

    def initialize(self, policy: NotificationPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver = resolver or DefaultExecutorResolver()

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC):
        resolved = await self.resolver.resolve(host, port, family)
        allowed = set(self.policy.check_addresses(host, [addr[0] for _family, addr in resolved]))
        return [(fam, addr) for fam, addr in resolved if addr[0] in allowed]

    def close(self) -> None:
        self.resolver.close()


def policy_for(app) -> NotificationPolicy:
    """The service's policy (configured as c.NotificationPolicy.* in the service's config)."""
    policy = getattr(app, "_notification_policy", None)
    if policy is None:
        policy = NotificationPolicy(parent=app)
        app._notification_policy = policy
    return policy
