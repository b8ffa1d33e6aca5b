"""Calls to the kqi service with the notebook server's hub token (tornado's AsyncHTTPClient)."""
from __future__ import annotations

import json
from urllib.parse import urlencode, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from .context import RequestError

TENANT_HEADER = "X-KQI-Tenant"


class KqiClient:
    def __init__(self, cfg):
        self.cfg = cfg
        self.http = AsyncHTTPClient(force_instance=True, max_clients=cfg.max_clients)
        self._tenant: dict | None = None

    async def tenant(self) -> dict | None:
        """The notebook's tenant ({id, name, displayName}): the one the spawner named (KQI_TENANT_ID,
        c.KqiLab.tenant_id), else the one the service gives this server's token (GET /account's
        selectedTenant, asked once); None when neither is known. Either way the service decides
        what the token reaches: a server's own token acts only in its notebook's tenant."""
        if self._tenant is None and str(self.cfg.tenant_id).isdigit():
            self._tenant = {"id": int(self.cfg.tenant_id), "name": self.cfg.tenant_name or None,
                            "displayName": self.cfg.tenant_display_name or None}
        if self._tenant is None and self.cfg.kqi_server and self.cfg.api_token:
            try:
                account = await self.api("GET", "account")
            except RequestError:
                account = None
            selected = (account or {}).get("selectedTenant") if isinstance(account, dict) else None
            if isinstance(selected, dict) and selected.get("id") is not None:
                self._tenant = {"id": selected["id"], "name": selected.get("name"),
                                "displayName": selected.get("displayName")}
        return self._tenant

    # ------------------------------------------------------------------ addresses
    def api_url(self, path: str, query: dict | str | None = None) -> str:
        if not self.cfg.kqi_server:
            raise RequestError(503, "This notebook does not know the kqi service (KQI_SERVER is not set).")
        url = self.cfg.kqi_server.rstrip("/") + "/api/v2/" + path.lstrip("/")
        if query:
            url += "?" + (query if isinstance(query, str) else urlencode(query))
        return url

    def absolute(self, url: str) -> str:
        """A URL the service gave (a signed upload or download URL), made absolute on the service's
        address when it is a path."""
        return url if urlsplit(url).scheme else urljoin(self.cfg.kqi_server.rstrip("/") + "/", url)

    def api_headers(self, extra: dict | None = None) -> dict:
        """The browser's `extra` headers with the server's credential and tenant (never the browser's)."""
        headers = {k: v for k, v in (extra or {}).items() if k.lower() not in ("authorization", "cookie",
                                                                                 TENANT_HEADER.lower())}
        headers["Authorization"] = f"token {self.cfg.api_token}"
        tenant_id = self._tenant["id"] if self._tenant else self.cfg.tenant_id
        if tenant_id:
            headers[TENANT_HEADER] = str(tenant_id)
        return headers

    def request(self, url: str, method: str = "GET", *, headers: dict | None = None, body=None,
                timeout: float | None = None, **kwargs) -> HTTPRequest:
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        return HTTPRequest(url, method=method, headers=headers or {}, body=body, follow_redirects=False,
                           connect_timeout=self.cfg.connect_timeout,
                           request_timeout=timeout or self.cfg.request_timeout,
                           ca_certs=self.cfg.ca_certs or None, allow_nonstandard_methods=True, **kwargs)

    # ------------------------------------------------------------------ calls
    async def fetch(self, req: HTTPRequest) -> HTTPResponse:
        """The response whatever its status; RequestError 502 when the service cannot be reached."""
        try:
            return await self.http.fetch(req, raise_error=False)
        except HTTPClientError as e:  # a timeout (599)
            raise RequestError(504, f"The kqi service did not answer in time: {e}") from None
        except OSError as e:
            raise RequestError(502, f"The kqi service cannot be reached: {e}") from None

    async def api(self, method: str, path: str, *, query=None, body=None):
        """Call the service's API; its JSON answer, or RequestError with the service's status and
        message on an error."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = await self.fetch(self.request(self.api_url(path, query), method,
                                                 headers=self.api_headers(headers), body=data))
        if response.code == 599:
            raise RequestError(502, f"The kqi service cannot be reached: {response.error}")
        if response.code >= 400:
            raise RequestError(response.code if response.code < 500 else 502, service_message(response),
                               **service_extra(response))
        if not response.body:
            return None
        return json.loads(response.body)


def service_message(response: HTTPResponse) -> str:
    """The message of an error answer of the kqi service (KAMONOHASHI's {title, detail, errors})."""
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        data = {}
    if isinstance(data, dict):
        detail = data.get("detail") or data.get("message") or data.get("title")
        if detail:
            return f"kqi service: {detail}"
    return f"kqi service: HTTP {response.code} {response.reason or ''}".strip()


def service_extra(response: HTTPResponse) -> dict:
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        return {}
    if isinstance(data, dict) and isinstance(data.get("errors"), dict) and data["errors"]:
        return {"errors": data["errors"]}
    return {}
