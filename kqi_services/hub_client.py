"""Async client of the hub's REST API, used by the kqi service with its own token.

Small on purpose: each method is one hub call. Errors come back as HubError with the
hub's status code, so the service can turn them into its own clear messages.
"""
from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


#: the Accept type that makes the hub answer a list as {"items": [...], "_pagination": {offset, limit,
#: total, next}} (JupyterHub 2.0+); without it the hub answers at most one page as a bare list
PAGINATION = "application/jupyterhub-pagination+json"


class HubError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class HubClient:
    def __init__(self, api_url: str, token: str, timeout: float = 30):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        # name -> (when asked, the pending or done answer of get_user), see get_user_cached
        self._user_cache: dict[str, tuple[float, asyncio.Future]] = {}
        # (when asked, the answer of passwords_elsewhere)
        self._passwords_elsewhere: tuple[float, bool] | None = None

    async def _request(self, method: str, path: str, body=None, *, token: str | None = None, auth=True,
                       accept: str | None = None):
        headers = {"Content-Type": "application/json"}
        if accept:
            headers["Accept"] = accept
        if auth:
            headers["Authorization"] = f"token {token or self._token}"
        request = HTTPRequest(
            self.api_url + path,
            method=method,
            headers=headers,
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            message = ""
            if e.response is not None and e.response.body:
                try:
                    message = json.loads(e.response.body).get("message") or ""
                except ValueError:
                    message = e.response.body[:200].decode("utf-8", "replace")
            raise HubError(e.code, message or str(e)) from None
        if response.body:
            return json.loads(response.body)
        return None

    # --- users -----------------------------------------------------------------------
    async def get_user(self, name: str) -> dict | None:
        try:
            return await self._request("GET", f"/users/{quote(name, safe='')}")
        except HubError as e:
            if e.status == 404:
                return None
            raise

    async def get_user_cached(self, name: str, max_age: float) -> dict | None:
        """get_user, answered from a cache for up to `max_age` seconds (0: ask every time).

        Concurrent callers share one hub call, so a job calling the API in a loop does not
        ask the hub on every request. A failed call is not cached. The answer is shared:
        do not change it.
        """
        if max_age <= 0:
            return await self.get_user(name)
        now = time.monotonic()
        hit = self._user_cache.get(name)
        if hit is None or now - hit[0] >= max_age:
            for stale in [k for k, (at, _) in self._user_cache.items() if now - at >= max_age]:
                del self._user_cache[stale]
            hit = (now, asyncio.ensure_future(self.get_user(name)))
            self._user_cache[name] = hit
        try:
            return await asyncio.shield(hit[1])
        except Exception:
            if self._user_cache.get(name) is hit:
                del self._user_cache[name]
            raise

    async def list_users(self, state: str | None = None) -> list[dict]:
        """Every hub user (`state="active"`: only those with a server up or starting)."""
        users, _ = await self._users({"state": state} if state else {})
        return users

    async def users_page(self, offset: int, limit: int) -> tuple[list[dict], int]:
        """At most `limit` hub users from `offset` on, in the order of their names, and how many hub
        users there are in all. The hub sorts and pages in its database (`sort=name`), in its
        database's order of names."""
        if offset < 0 or limit < 1:
            raise ValueError(f"a page of users needs offset >= 0 and limit >= 1, not {offset}, {limit}")
        return await self._users({"sort": "name"}, offset, limit)

    async def _users(self, params: dict, offset: int = 0, limit: int | None = None) -> tuple[list[dict], int]:
        """The hub's users from `offset` on (at most `limit`; all without), and the total. The hub
        answers at most its `api_page_max_limit` users (200 by default) a request, so this asks
        for the next ones until it has them."""
        users: list[dict] = []
        while True:
            wanted = 200 if limit is None else limit - len(users)
            query = urlencode({**params, "offset": offset + len(users), "limit": wanted})
            answer = await self._request("GET", f"/users?{query}", accept=PAGINATION)
            if not isinstance(answer, dict) or not isinstance(answer.get("_pagination"), dict):
                raise HubError(502, "the hub answered its user list without paging (JupyterHub 2.0 or later"
                                    " is needed)")
            items = answer.get("items") or []
            paging = answer["_pagination"]
            users.extend(items)
            if (limit is not None and len(users) >= limit) or not items or not paging.get("next"):
                return users[:limit], int(paging.get("total") or 0)

    async def set_password(self, name: str, password: str) -> bool:
        """Create the hub user if needed and set its password; True when it was created."""
        result = await self._request(
            "PUT", f"/kqi/users/{quote(name, safe='')}/password", {"password": password}
        )
        return bool(result and result.get("created"))

    async def delete_user(self, name: str) -> None:
        await self._request("DELETE", f"/users/{quote(name, safe='')}")

    # --- named servers (notebooks) ----------------------------------------------------
    async def start_server(self, name: str, server_name: str, user_options: dict) -> None:
        await self._request("POST", f"/users/{quote(name, safe='')}/servers/{quote(server_name, safe='')}",
                            user_options)

    async def stop_server(self, name: str, server_name: str, remove: bool = False) -> None:
        """Stop a named server (and forget it with remove); no error when it is not running."""
        try:
            await self._request("DELETE", f"/users/{quote(name, safe='')}/servers/{quote(server_name, safe='')}",
                                {"remove": True} if remove else None)
        except HubError as e:
            if e.status not in (400, 404):
                raise

    # --- tokens ----------------------------------------------------------------------
    async def token_for_password(
        self, name: str, password: str, *, scopes: list[str], expires_in: int | None, note: str
    ) -> dict:
        """Ask the hub for a token with username + password (checked by the authenticator)."""
        body = {
            "auth": {"username": name, "password": password},
            "scopes": scopes,
            "expires_in": expires_in,
            "note": note,
        }
        return await self._request("POST", f"/users/{quote(name, safe='')}/tokens", body, auth=False)

    async def issue_token(self, name: str, *, scopes: list[str], expires_in: int | None, note: str) -> dict:
        body = {"scopes": scopes, "expires_in": expires_in, "note": note}
        return await self._request("POST", f"/users/{quote(name, safe='')}/tokens", body)

    async def revoke_token(self, name: str, token_id: str) -> None:
        await self._request("DELETE", f"/users/{quote(name, safe='')}/tokens/{quote(token_id, safe='')}")

    # --- tenants (hub groups + the roles the KQI authenticator manages) ------------------
    async def ensure_tenant(self, tenant: str, admins: list[str] | None = None) -> dict:
        body = {} if admins is None else {"admins": admins}
        return await self._request("PUT", f"/kqi/tenants/{quote(tenant, safe='')}", body)

    async def get_tenant(self, tenant: str) -> dict | None:
        try:
            return await self._request("GET", f"/kqi/tenants/{quote(tenant, safe='')}")
        except HubError as e:
            if e.status == 404:
                return None
            raise

    async def delete_tenant(self, tenant: str) -> None:
        try:
            await self._request("DELETE", f"/kqi/tenants/{quote(tenant, safe='')}")
        except HubError as e:
            if e.status != 404:
                raise

    async def directory_sync(self) -> dict:
        """Ask the hub's directory authenticator to apply the directory's groups to every user now
        (kqi_hub_config/directory_auth.py); 404 when the authenticator has no directory."""
        return await self._request("POST", "/kqi/directory/sync", {})

    async def directory_info(self) -> dict | None:
        """What the hub's directory authenticator (LDAP or OIDC, kqi_hub_config/directory_auth.py)
        says of itself: {"available": whether a sync is possible, ...}; None with the embedded
        authenticator, which keeps the passwords itself (the hub has no such route then)."""
        try:
            answer = await self._request("GET", "/kqi/directory/sync")
        except HubError as e:
            if e.status == 404:
                return None
            raise
        return answer if isinstance(answer, dict) else {}

    async def directory_sync_available(self) -> bool:
        """Whether the hub's authenticator can sync with a directory (LDAP)."""
        info = await self.directory_info()
        return bool(info and info.get("available"))

    async def passwords_elsewhere(self, max_age: float = 60) -> bool:
        """Whether the hub's authenticator keeps the passwords outside the hub (a directory: LDAP or
        OIDC), so KQI cannot change them. Asked once per `max_age` seconds (the authenticator is the
        hub's configuration: it changes only with a restart); a failed call is not remembered."""
        now = time.monotonic()
        if self._passwords_elsewhere is None or now - self._passwords_elsewhere[0] >= max_age:
            self._passwords_elsewhere = (now, await self.directory_info() is not None)
        return self._passwords_elsewhere[1]

    async def list_tokens(self, name: str) -> list[dict]:
        """The user's API tokens (their models: id, note, scopes, created, last_activity, expires_at)."""
        answer = await self._request("GET", f"/users/{quote(name, safe='')}/tokens")
        return answer.get("api_tokens", []) if isinstance(answer, dict) else (answer or [])

    async def add_group_users(self, group: str, users: list[str]) -> None:
        await self._request("POST", f"/groups/{quote(group, safe='')}/users", {"users": users})

    async def remove_group_users(self, group: str, users: list[str]) -> None:
        await self._request("DELETE", f"/groups/{quote(group, safe='')}/users", {"users": users})
