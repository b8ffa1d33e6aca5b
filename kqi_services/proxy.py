"""The authenticated reverse proxy of the kqi service: `/services/kqi/proxy/...`, HTTP and WebSocket.

Interactive things that listen on a port (a job's own ports, TensorBoard) are reached only
through here; nothing is added to configurable-http-proxy (the hub deletes routes it does
not know). Every request:

- is authenticated exactly as the API is (the hub's OAuth cookie or a hub token, see
  api/base.py); a running job's token (KQI_TOKEN) is refused: a job does not browse other jobs;
- names its target (a job's port, a training's TensorBoard), which a subclass resolves;
  a target of a tenant the caller is not a member of is 404, as the API does;
- when it is a WebSocket upgrade or changes state (anything but GET/HEAD/OPTIONS), must come
  from this host (its Origin), so no other site can drive the user's session through it;
- is forwarded with its prefix stripped (X-Forwarded-Prefix tells the target where it lives)
  and without the caller's hub credentials (the Authorization header and the hub's cookies
  never reach the target).
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode, urlparse, parse_qsl

from tornado import httpclient, httputil, ioloop, websocket
from tornado.httputil import HTTPHeaders

from .api.base import ApiError, BaseAPIHandler
from .db.models import Tenant
from .db.models_jobs import Job
from .domain import job_status as st
from .permissions import Access, allowed

PROXY_PREFIX = "proxy"

#: headers that belong to one connection, never forwarded
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "content-length", "host"}
#: request headers that carry the caller's platform credentials
CREDENTIAL_HEADERS = {"authorization", "x-kqi-tenant"}
#: cookies of the hub and the kqi service: neither forwarded nor settable by a target
RESERVED_COOKIE_PREFIXES = ("jupyterhub", "kqi", "_xsrf")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
REQUEST_TIMEOUT = 300.0
MAX_BODY = 64 * 1024**3  # the largest answer or upload forwarded (streamed, never held whole)
_clients: dict = {}


def proxy_client() -> httpclient.AsyncHTTPClient:
    """The proxy's own HTTP client of this event loop (streaming, large bodies, many at once)."""
    loop = ioloop.IOLoop.current()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpclient.AsyncHTTPClient(force_instance=True, max_body_size=MAX_BODY,
                                                             max_clients=64)
    return client


class ProxyTarget:
    """Where a request goes: host, port, the public prefix it is served under, and the path in it."""

    def __init__(self, host: str, port: int, prefix: str, path: str):
        self.host, self.port, self.prefix, self.path = host, port, prefix, path


def same_host(origin: str | None, host: str) -> bool:
    """Whether an Origin header names the host the request came to (scheme aside)."""
    if not origin:
        return False
    parsed = urlparse(origin)
    return bool(parsed.netloc) and parsed.netloc.lower() == (host or "").lower()


def strip_reserved_cookies(cookie_header: str) -> str:
    """The Cookie header without the hub's and the service's cookies."""
    kept = []
    for part in cookie_header.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and not name.lower().startswith(RESERVED_COOKIE_PREFIXES):
            kept.append(part.strip())
    return "; ".join(kept)


class ProxyHandler(BaseAPIHandler, websocket.WebSocketHandler):
    """The base of every proxied target: authentication, tenant, Origin, forwarding.

    Subclasses implement `resolve(*path_args) -> ProxyTarget` (raise ApiError 404 for a target
    that does not exist, is not running, or belongs to a tenant the caller is not in) and may use
    `tenant_of(tenant_id)` to check membership.
    """

    access = {m: Access.AUTHENTICATED for m in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")}
    target: ProxyTarget | None = None
    upstream: websocket.WebSocketClientConnection | None = None

    # ------------------------------------------------------------- authentication
    def _job_token(self):
        token = super()._job_token()
        if token is None:
            token = self.get_query_argument("token", "") or None
            token = token if token and token.startswith("kqi-job.") else None
        return token

    async def _job_identity(self, token, access):
        raise ApiError(403, "A job token cannot open a job's ports or a TensorBoard: sign in as a user.")

    def check_xsrf_cookie(self):
        # called by HubOAuth before it accepts the cookie on a request that is not a plain page
        # view; the proxied application has no hub XSRF token to send, so the Origin stands in for
        # it: a state-changing request with the cookie must come from this host
        if self.request.method.upper() in SAFE_METHODS and not self.is_websocket():
            return
        if not self.from_this_host():
            raise ApiError(403, "A request that changes something must come from this site (Origin).")

    def from_this_host(self) -> bool:
        origin = self.request.headers.get("Origin")
        if origin:
            return same_host(origin, self.request.host)
        return self.request.headers.get("Sec-Fetch-Site") in ("same-origin", "none")

    def check_origin(self, origin: str) -> bool:
        return same_host(origin, self.request.host)

    def is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    async def prepare(self):
        await super().prepare()
        origin = self.request.headers.get("Origin")
        if (self.is_websocket() or self.request.method.upper() not in SAFE_METHODS) and origin \
                and not same_host(origin, self.request.host):
            raise ApiError(403, f"Requests from another site ({origin}) are refused.")
        self.target = self.resolve(*self.path_args)
        if self.target.path is None:  # the bare prefix: relative links need its slash
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(self.target.prefix + query)

    def tenant_of(self, tenant_id: int, what: str) -> Tenant:
        """The tenant a target belongs to when the caller is a member of it; 404 otherwise."""
        tenant = self.db.get(Tenant, tenant_id)
        if tenant is None or not allowed(Access.TENANT_USER, self.identity, tenant.name):
            raise ApiError(404, f"No {what} in your tenants.")
        self.tenant = tenant
        return tenant

    def tenant_job(self, kind: str, job_id: str, what: str) -> Job:
        """The job of `kind` the caller's current tenant (its token's, or the one the tenant switcher
        chose) knows by the id `job_id` (the id the API shows, domain/ids.py); 404 otherwise."""
        from .domain.ids import find_job

        tenant = self.resolve_tenant()
        job = find_job(self.db, tenant.id, kind, int(job_id)) if tenant is not None else None
        if job is None:
            raise ApiError(404, f"No {what} in your tenants.")
        self.tenant_of(job.tenant_id, what)
        return job

    def resolve(self, *args) -> ProxyTarget:
        raise NotImplementedError

    # ----------------------------------------------------------------- forwarding
    def upstream_url(self, scheme: str = "http") -> str:
        t = self.target
        path = "/" + t.path.lstrip("/")
        query = self.request.query
        if query:
            pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
            query = urlencode(pairs)
        return f"{scheme}://{t.host}:{t.port}{path}" + (f"?{query}" if query else "")

    def upstream_headers(self) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in self.request.headers.get_all():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in CREDENTIAL_HEADERS or lower.startswith("sec-websocket"):
                continue
            if lower == "cookie":
                value = strip_reserved_cookies(value)
                if not value:
                    continue
            headers.add(name, value)
        # the Host the caller used (so that the target's own Origin check, which compares the
        # two, passes for the same-site requests we let through)
        headers["Host"] = self.request.host
        headers["X-Forwarded-Prefix"] = self.target.prefix.rstrip("/")
        headers["X-Forwarded-Host"] = self.request.host
        headers["X-Forwarded-Proto"] = self.request.protocol
        headers["X-Forwarded-For"] = self.request.remote_ip or ""
        return headers

    def _rewrite_location(self, value: str) -> str:
        t = self.target
        for base in (f"http://{t.host}:{t.port}", f"http://localhost:{t.port}",
                     f"{self.request.protocol}://{self.request.host}"):
            if value.startswith(base):
                value = value[len(base):] or "/"
                break
        if value.startswith("/") and not value.startswith("//") and not value.startswith(t.prefix):
            value = t.prefix.rstrip("/") + value
        return value

    def _start_response(self, code: int, reason: str | None, headers: HTTPHeaders) -> None:
        self.set_status(code, reason)
        self._headers = HTTPHeaders()  # none of ours: the target's own
        for name, value in headers.get_all():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "set-cookie" and value.split("=", 1)[0].strip().lower().startswith(RESERVED_COOKIE_PREFIXES):
                continue
            if lower == "location":
                value = self._rewrite_location(value)
            self.add_header(name, value)

    async def _forward_http(self):
        """Forward the request; the answer is streamed back as it comes (any size)."""
        method = self.request.method.upper()
        body = self.request.body if self.request.body or method in ("POST", "PUT", "PATCH") else None
        progress = {"first": None, "headers": HTTPHeaders(), "started": False}

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                progress["first"], progress["headers"] = line.strip(), HTTPHeaders()
            elif line.strip():
                progress["headers"].parse_line(line)
            elif progress["first"]:
                start = httputil.parse_response_start_line(progress["first"])
                if start.code != 100:
                    progress["started"] = True
                    self._start_response(start.code, start.reason, progress["headers"])

        def on_chunk(chunk: bytes) -> None:
            if method != "HEAD" and self.get_status() not in (204, 304) and not self._finished:
                self.write(chunk)
                self.flush()

        request = httpclient.HTTPRequest(
            self.upstream_url(), method=method, headers=self.upstream_headers(), body=body,
            follow_redirects=False, decompress_response=False, allow_nonstandard_methods=True,
            request_timeout=REQUEST_TIMEOUT, connect_timeout=10.0,
            header_callback=on_header, streaming_callback=on_chunk,
        )
        try:
            response = await proxy_client().fetch(request, raise_error=False)
            error = response.error if response.code == 599 else None
        except (OSError, httpclient.HTTPClientError) as e:
            error = e
        if error is not None and not progress["started"]:
            raise ApiError(502, f"The target does not answer: {error}")
        if not self._finished:
            self.finish()

    async def get(self, *args):
        if self.is_websocket():
            await self._open_upstream()
            await websocket.WebSocketHandler.get(self, *args)
            return
        await self._forward_http()

    async def head(self, *args):
        await self._forward_http()

    post = put = patch = delete = options = head

    async def _open_upstream(self):
        subprotocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                        if p.strip()]
        request = httpclient.HTTPRequest(self.upstream_url("ws"), headers=self.upstream_headers(),
                                         connect_timeout=10.0, request_timeout=REQUEST_TIMEOUT)
        try:
            self.upstream = await websocket.websocket_connect(
                request, subprotocols=subprotocols or None, on_message_callback=self._from_upstream)
        except Exception as e:  # the target refused or is gone
            raise ApiError(502, f"The target refused the WebSocket: {e}")

    def select_subprotocol(self, subprotocols):
        return self.upstream.selected_subprotocol if self.upstream is not None else None

    def _from_upstream(self, message):
        if message is None:
            if self.ws_connection is not None:
                self.close()
            return
        if self.ws_connection is None:
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            self._close_upstream()

    async def on_message(self, message):
        if self.upstream is None:
            return
        try:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            self.close()

    def on_close(self):
        self._close_upstream()

    def _close_upstream(self):
        if self.upstream is not None:
            upstream, self.upstream = self.upstream, None
            upstream.close()

    def on_finish(self):
        # an upgrade that never completed (refused, failed) leaves the upstream open
        if self.get_status() != 101:
            self._close_upstream()
        super().on_finish()


# --------------------------------------------------------------------------- job ports
def job_port_host(kqi, job: Job, port: int) -> str:
    """The host a job's container port is reached at from the service."""
    address = getattr(kqi.jobs.backend, "port_host", None)
    return address(job.key) if address is not None else "127.0.0.1"


def job_port_path(service_prefix: str, job: Job, port: int) -> str:
    """The public address of a job's port, under the proxy."""
    return f"{service_prefix.rstrip('/')}/{PROXY_PREFIX}/{job.kind}/{job.display_id}/{port}/"


def node_ports(service_prefix: str, job: Job, enabled: bool = True) -> list[dict]:
    """KAMONOHASHI's nodePorts of a running job: each declared port with its address."""
    if job.status != st.RUNNING or not enabled:
        return []
    return [{"key": str(p), "value": p, "url": job_port_path(service_prefix, job, p)} for p in job.ports or []]


class JobPortProxyHandler(ProxyHandler):
    """`proxy/<training|inference>/<id>/<port>/<path>`: a running job's declared container port."""

    def resolve(self, kind, job_id, port, path=None):
        what = f"{kind} {job_id}"
        job = self.tenant_job(kind, job_id, what)
        who = getattr(self.kqi, "job_ports_for", "tenant")
        if who == "off":
            raise ApiError(404, "Jobs' ports are not opened on this platform.")
        if who == "owner" and job.created_by != self.identity.name:
            raise ApiError(403, f"Only {job.created_by}, who started the {kind}, may open its ports here.")
        port = int(port)
        if port not in (job.ports or []):
            raise ApiError(404, f"The {kind} {job_id} declares no port {port}.")
        if job.status != st.RUNNING:
            raise ApiError(404, f"The {kind} {job_id} is not running: its ports are open only while it runs.")
        prefix = job_port_path(self.kqi.service_prefix, job, port)
        return ProxyTarget(job_port_host(self.kqi, job, port), port, prefix, path)


class TensorBoardProxyHandler(ProxyHandler):
    """`proxy/tensorboard/<trainingId>/<path>`: the training's TensorBoard while it runs. TensorBoard
    serves under its own --path_prefix (this prefix), so the path is forwarded whole."""

    def resolve(self, training_id, path=None):
        from .tensorboard import proxy_prefix

        what = f"training {training_id}"
        job = self.tenant_job("training", training_id, what)
        state = self.kqi.tensorboards.state(job)
        if not state:
            raise ApiError(404, f"No TensorBoard runs for training {job.display_id}.")
        prefix = proxy_prefix(self.kqi.service_prefix, job.display_id)
        full = None if path is None else prefix + path
        return ProxyTarget(self.kqi.tensorboards.host(job.id), state["port"], prefix, full)


def make_handlers(service_prefix: str) -> list:
    base = f"{service_prefix.rstrip('/')}/{PROXY_PREFIX}"
    return [
        (rf"{base}/(training|inference)/([0-9]{{1,15}})/([0-9]{{1,5}})(?:/(.*))?", JobPortProxyHandler),
        (rf"{base}/tensorboard/([0-9]{{1,15}})(?:/(.*))?", TensorBoardProxyHandler),
    ]
