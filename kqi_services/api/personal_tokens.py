"""Personal access tokens (issue 16): /account/tokens, KAMONOHASHI's AccessTokenSetting.

A personal access token is a hub API token of the caller, made through the hub's token API with
the scopes of one tenant (as `kqi account login` makes them, api/account.py), so the official CLI
and SDK take it unchanged whatever authenticator signs users in. The hub keeps it (hashed); KQI
keeps nothing: the list is the caller's hub tokens whose note marks them as personal tokens. The
token is in the answer to its creation only, never in a list or a log.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import select

from ..db.models import Tenant
from ..hub_client import HubError
from ..permissions import SCOPE_USER, Access, tenant_token_scopes
from .account import AccountMixin
from .base import ApiError, BaseAPIHandler, iso
from .schemas.core import contract
from .schemas.personal_tokens import PersonalTokenCreatedOutput, PersonalTokenCreateInput, PersonalTokenOutput

NOTE_PREFIX = "kqi personal token"
NOTE_RE = re.compile(r"^kqi personal token \(tenant (?P<tenant>[^)]*)\)(?:: (?P<note>.*))?$", re.S)
TOKEN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def token_note(tenant: str, note: str | None) -> str:
    """The hub token's note: marks it as a personal token, names its tenant and keeps the user's note."""
    text = f"{NOTE_PREFIX} (tenant {tenant})"
    return f"{text}: {note}" if note else text


def parse_note(note: str | None) -> tuple[str, str | None] | None:
    """(tenant, user's note) of a personal token's hub note; None for other tokens."""
    match = NOTE_RE.match(note or "")
    if match is None:
        return None
    return match.group("tenant"), match.group("note")


def token_tenant(model: dict, noted: str) -> str:
    """The tenant a token acts in: the group filter of its kqi user scope (else the note's)."""
    for scope in model.get("scopes") or []:
        if scope.startswith(SCOPE_USER + "!group="):
            return scope.split("=", 1)[1]
    return noted


def _time(value: str | None):
    if not value:
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return iso(when)


def personal_tokens(models: list[dict], tenants_by_name: dict) -> list[dict]:
    """The personal tokens among a user's hub token models, newest first (pure)."""
    found = []
    for model in models:
        parsed = parse_note(model.get("note"))
        if parsed is None:
            continue
        tenant_name = token_tenant(model, parsed[0])
        tenant = tenants_by_name.get(tenant_name)
        found.append({
            "id": str(model["id"]),
            "note": parsed[1],
            "tenantId": tenant.id if tenant else None,
            "tenantName": tenant.display_name if tenant else tenant_name,
            "createdAt": _time(model.get("created")),
            "lastUsedAt": _time(model.get("last_activity")),
            "expiresAt": _time(model.get("expires_at")),
        })
    found.sort(key=lambda t: t["createdAt"] or "", reverse=True)
    return found


class PersonalTokenListHandler(AccountMixin, BaseAPIHandler):
    """GET /account/tokens; POST /account/tokens {tenantId, note?, expiresInDays}"""

    access = {"GET": Access.AUTHENTICATED, "POST": Access.AUTHENTICATED}

    async def _list(self):
        models = await self.kqi.hub.list_tokens(self.identity.name)
        names = {t.name: t for t in self.db.scalars(select(Tenant))}
        return personal_tokens(models, names)

    @contract(response=list[PersonalTokenOutput])
    async def get(self):
        self.write_json(await self._list())

    @contract(body=PersonalTokenCreateInput, response=PersonalTokenCreatedOutput, status=201)
    async def post(self):
        body = self.json_body()
        note = (body.get("note") or "").strip() or None
        model, tenants = await self.hub_user_tenants(self.identity.name)
        tenant = next((t for t in tenants if t.id == body["tenantId"]), None)
        if tenant is None:
            raise ApiError(400, f"You are not a member of a tenant with the id {body['tenantId']}.",
                           {"tenantId": ["not one of your tenants"]})
        scopes = tenant_token_scopes(set(model.get("roles") or []), tenant.name, self.kqi.service_name)
        try:
            created = await self.kqi.hub.issue_token(
                self.identity.name, scopes=scopes, expires_in=int(body["expiresInDays"]) * 86400,
                note=token_note(tenant.name, note))
        except HubError as e:
            raise ApiError(400, f"The hub refused the token: {e.message}")
        self.log.info("%s made a personal access token (%s) for tenant %s", self.identity.name,
                      created.get("id"), tenant.name)
        listed = personal_tokens([created], {tenant.name: tenant})[0]
        self.write_json({**listed, "token": created["token"]}, status=201)


class PersonalTokenHandler(BaseAPIHandler):
    """DELETE /account/tokens/{id}: revoke one of the caller's personal access tokens."""

    access = {"DELETE": Access.AUTHENTICATED}

    @contract(response=None, status=204)
    async def delete(self, token_id):
        if not TOKEN_ID_RE.match(token_id):
            raise ApiError(404, "No personal access token with this id.")
        models = await self.kqi.hub.list_tokens(self.identity.name)
        if not any(str(m.get("id")) == token_id and parse_note(m.get("note")) for m in models):
            raise ApiError(404, "No personal access token with this id.")
        await self.kqi.hub.revoke_token(self.identity.name, token_id)
        self.log.info("%s revoked personal access token %s", self.identity.name, token_id)
        self.no_content()


default_handlers = [
    (r"/account/tokens", PersonalTokenListHandler),
    (r"/account/tokens/([^/]+)", PersonalTokenHandler),
]
