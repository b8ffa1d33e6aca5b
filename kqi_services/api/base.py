"""The base of every kqi API handler: identity, current tenant, access, JSON and errors.

Handlers stay thin: they declare `access` (what each method needs, see permissions.Access),
parse input with the helpers here, call domain code and write JSON. Errors use
KAMONOHASHI's JsonErrorResponse shape: {type, title, status, detail, instance, errors}.
"""
from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from http.client import responses
from typing import Any

from botocore.exceptions import BotoCoreError
from jupyterhub.services.auth import HubOAuthenticated
from sqlalchemy import select
from tornado import web

from ..db.models import Tenant, UserSetting
from ..db.models_notebooks import Notebook
from ..domain.paging import Page, PageRequest, page_of_list
from ..domain.tenants import current_tenant
from ..domain.validation import ConflictError, NotFoundError, ValidationError
from ..hub_client import HubError
from ..storage.base import InsufficientStorage, StoreError, is_disk_full
from ..permissions import (Access, Identity, allowed, identity_from_model, job_identity, job_token_refusal,
                           notebook_identity, notebook_servers, notebook_token_refusal)
from .schemas.core import (InputError, Paging, body_data, contract_of, response_problems, validate_body,
                           validate_query)

TENANT_HEADER = "X-KQI-Tenant"
TENANT_COOKIE = "kqi-tenant"
#: the largest id the database holds (INTEGER columns); a path id above it names nothing (404)
DB_MAX_ID = 2**31 - 1
#: the methods a route may answer, in the order its 405's `Allow` header lists them
ALLOW_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ApiError(web.HTTPError):
    """A client error with a message for the user and, optionally, per-field messages."""

    def __init__(self, status: int, detail: str, errors: dict[str, list[str]] | None = None):
        super().__init__(status, reason=responses.get(status, "Error"))
        self.detail = detail
        self.errors = errors or {}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def notebook_tenants(db, owner: str, servers: list[str]) -> set[str]:
    """The tenants of the owner's KQI notebooks served as `servers` (hub named servers)."""
    rows = db.execute(select(Tenant.name).join(Notebook, Notebook.tenant_id == Tenant.id).where(
        Notebook.created_by == owner, Notebook.server_name.in_(servers))).all()
    return {name for (name,) in rows}


class BaseAPIHandler(HubOAuthenticated, web.RequestHandler):
    #: what each HTTP method needs: one Access for all, or {"GET": Access..., ...}
    access: Access | dict[str, Access] = Access.TENANT_USER

    identity: Identity | None = None
    tenant: Tenant | None = None
    #: the validated query and paging (models of the method's contract), None without one
    query = None
    paging: Paging | None = None
    _body_model = None
    _body_error: InputError | None = None
    _body_read = False

    @property
    def body(self):
        """The validated body (the contract's body model; None when it may be and was left out).

        A body that does not fit is refused (400) when the handler reads it, after it has looked up
        the object the path names: another tenant's or a missing object is a 404 whatever the body."""
        self._body_read = True
        if self._body_error is not None:
            raise ApiError(400, self._body_error.detail, self._body_error.errors)
        return self._body_model

    # ----------------------------------------------------------------- set-up
    @property
    def kqi(self):
        """The KqiService application (config, hub client, stores)."""
        return self.settings["kqi"]

    @property
    def log(self):
        return self.kqi.log

    @classmethod
    def access_for(cls, method: str) -> Access | None:
        if isinstance(cls.access, dict):
            return cls.access.get(method.upper())
        return cls.access

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this route answers (the class defines them and `access` names them): the
        `Allow` header of its 405 answers."""
        return [m for m in ALLOW_ORDER
                if getattr(cls, m.lower(), None) is not getattr(web.RequestHandler, m.lower())
                and cls.access_for(m) is not None]

    def check_xsrf_cookie(self):
        # token-authenticated API calls need no XSRF token; cookie ones do (HubOAuth checks)
        return self.hub_auth.check_xsrf_cookie(self)

    def get_current_user(self):
        return self.identity

    async def prepare(self):
        await self._authorize()
        self.refuse_nul()
        self.check_contract()

    def refuse_nul(self) -> None:
        """No name, id or filter of the API holds a NUL character, and PostgreSQL text cannot: a
        query parameter or a path segment with one is a 400, not a database error (a 500)."""
        bad = sorted({name for name, values in self.request.query_arguments.items()
                      if "\0" in name or any(b"\0" in value for value in values)})
        if any("\0" in (arg or "") for arg in self.path_args):
            bad.append("path")
        if bad:
            raise ApiError(400, "NUL characters are not allowed in " + ", ".join(bad) + ".",
                           {name: ["must not hold NUL characters"] for name in bad})

    def check_contract(self) -> None:
        """Validate the query (a 400 with per-field messages before the method runs) and the body
        (kept, refused when the method reads it: see `body`) against the method's contract."""
        declared = contract_of(type(self), self.request.method)
        if declared is None:
            return
        if declared.body is not None:
            try:
                self._body_model = validate_body(declared.body, self.request.body, declared.body_required)
            except InputError as e:
                self._body_error = e  # raised when the handler reads the body (see `body`)
        try:
            if declared.query is not None:
                self.query = validate_query(declared.query, self.request.query_arguments)
            if declared.paged:
                self.paging = validate_query(Paging, self.request.query_arguments)
        except InputError as e:
            raise ApiError(400, e.detail, e.errors)

    async def _authorize(self):
        self.db = self.settings["session_factory"]()
        access = self.access_for(self.request.method)
        if access is None or self.request.method not in self.allowed_methods():
            raise ApiError(405, f"{self.request.method} is not allowed here")
        job_token = self._job_token()
        if job_token is not None:
            if access is Access.ANONYMOUS:
                return
            await self._job_identity(job_token, access)
        else:
            await self._hub_identity(access)
        if access is Access.ANONYMOUS:
            return
        if self.identity is None:
            raise ApiError(401, "Sign in first: send a valid token (Authorization: Bearer <token>).")
        if self.tenant is None:
            self.tenant = self.resolve_tenant()
        tenant_name = self.tenant.name if self.tenant is not None else None
        if not allowed(access, self.identity, tenant_name):
            if access in (Access.TENANT_USER, Access.TENANT_ADMIN) and tenant_name is None:
                raise ApiError(403, "You belong to no tenant: ask an administrator to add you to one.")
            raise ApiError(403, f"This needs the {access.value} permission, which you do not have here.")

    async def _hub_identity(self, access: Access) -> None:
        """A hub token or the browser's OAuth cookie: the identity from its scopes."""
        model = None
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError as e:
            if e.status_code >= 500:
                raise
        if model is not None and model.get("kind", "user") == "user":
            if self.hub_auth.check_scopes(self.hub_auth.access_scopes, model):
                self.identity = identity_from_model(model)
                servers = notebook_servers(model)
                if servers:  # a notebook server's own token: the notebook's tenant only
                    refusal = notebook_token_refusal(access, self.request.method)
                    if refusal is not None:
                        raise ApiError(403, refusal)
                    self.identity = notebook_identity(self.identity, notebook_tenants(self.db, model["name"], servers))
            elif access is not Access.ANONYMOUS:
                raise ApiError(403, "This token does not give access to the kqi service.")

    def _job_token(self) -> str | None:
        """The running job's token (KQI_TOKEN, kqi-job.<id>.<secret>) the caller sent, if any."""
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() in ("bearer", "token") and token.startswith("kqi-job."):
            return token
        return None

    async def _job_identity(self, token: str, access: Access) -> None:
        """A running job's token acts as the job's owner in the job's tenant, with the rights the
        owner has there now (read from the hub, cached for hub_auth_cache_seconds), while the job
        runs; no header or cookie switches its tenant (see permissions.job_identity)."""
        job = self.kqi.jobs.job_for_token(self.db, token)
        tenant = self.db.get(Tenant, job.tenant_id) if job is not None else None
        if tenant is None:
            raise ApiError(401, "This job token is not valid: its job has ended or it never existed.")
        refusal = job_token_refusal(access, self.request.method)
        if refusal is not None:
            raise ApiError(403, refusal)
        owner = await self.kqi.hub.get_user_cached(job.created_by, self.kqi.hub_auth_cache_seconds)
        identity = job_identity(owner, tenant.name)
        if identity is None:
            raise ApiError(403, f"This job token no longer works: the job's owner {job.created_by} is no longer"
                                f" a member of the tenant {tenant.name}.")
        self.identity, self.tenant = identity, tenant

    def on_finish(self):
        db = getattr(self, "db", None)
        if db is not None:
            db.close()

    # ------------------------------------------------------------ current tenant
    def resolve_tenant(self) -> Tenant | None:
        """The tenant this request acts in.

        A tenant-bound token (the usual case for the CLI and SDK) names one tenant. A token
        or browser session that covers several picks one by the X-KQI-Tenant header, then
        the tenant switcher's cookie, then the user's default tenant, then the first.
        """
        return current_tenant(self.db, self.identity.name, self.identity.tenants,
                              self.request.headers.get(TENANT_HEADER), self.get_cookie(TENANT_COOKIE))

    def user_setting(self, create: bool = True) -> UserSetting | None:
        setting = self.db.scalar(select(UserSetting).where(UserSetting.name == self.identity.name))
        if setting is None and create:
            setting = UserSetting(name=self.identity.name)
            self.db.add(setting)
            self.db.flush()
        return setting

    # ------------------------------------------------------------------ storage
    def tenant_store(self):
        """The object store of the current tenant."""
        return self.kqi.stores.for_tenant(self.tenant)

    def base_url(self) -> str:
        """scheme://host the caller used, for the signed URLs the service serves itself."""
        return f"{self.request.protocol}://{self.request.host}"

    async def in_thread(self, func, *args):
        """Run blocking work (object store I/O, hashing) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.kqi.io_executor, func, *args)

    # ------------------------------------------------------------------ input
    def body_data(self):
        """The contract's validated body as plain JSON data with only the keys sent: a dict for a
        model, a list of dicts for `list[Model]` (for a union, whichever the JSON was); None when
        it may be and was left out. A body that does not fit is a 400 (see `body`)."""
        return body_data(self.body)

    def json_body(self, required: bool = True) -> dict:
        """The JSON object sent; with a contract's body model, the validated fields that were sent."""
        declared = contract_of(type(self), self.request.method)
        if declared is not None and declared.body is not None:
            return self.body.model_dump(mode="json", exclude_unset=True) if self.body is not None else {}
        raw = self.request.body
        if not raw or not raw.strip():
            if required:
                raise ApiError(400, "The request needs a JSON object as its body.")
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"The body is not valid JSON: {e}")
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a JSON object.")
        return body

    def int_path(self, value: str, what: str = "id") -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ApiError(400, f"The {what} must be a whole number, not {value!r}.")
        if number < 0 or number > 2**53:
            raise ApiError(400, f"The {what} is out of range.")
        if number > DB_MAX_ID:  # the database's ids are 32-bit: a larger one names nothing
            raise ApiError(404, f"Nothing here has the {what} {number}.")
        return number

    def int_query(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"The query parameter {name} must be a whole number.", {name: ["not a number"]})
        if minimum is not None and value < minimum:
            raise ApiError(400, f"The query parameter {name} must be at least {minimum}.", {name: ["too small"]})
        return value

    def page_request(self) -> PageRequest:
        """The perPage, page and withTotal of this request, for the domain's database paging."""
        paging = self.paging
        if paging is None:
            try:
                paging = validate_query(Paging, self.request.query_arguments)
            except InputError as e:
                raise ApiError(400, e.detail, e.errors)
        return PageRequest(paging.perPage, paging.page, paging.withTotal)

    def paginate(self, items: list | Page) -> list:
        """KAMONOHASHI paging: perPage, page (from 1), withTotal → X-Total-Count. `items` is a page the
        database made (domain.paging.fetch_page over page_request()) or a small list paged here."""
        page = items if isinstance(items, Page) else page_of_list(items, self.page_request())
        if page.total is not None:
            self.set_header("X-Total-Count", str(page.total))
        return page.rows

    # ----------------------------------------------------------------- output
    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self._refuse_unread_body()
        text = json.dumps(value, ensure_ascii=False, default=_json_default)
        if getattr(self.kqi, "check_responses", False):
            self.check_response(text)
        self.finish(text)

    def check_response(self, text: str) -> None:
        """Log an error when an answer does not fit the method's declared response model."""
        declared = contract_of(type(self), self.request.method)
        if declared is None:
            return
        problems = response_problems(declared, text)
        if problems:
            self.log.error("Response of %s %s does not fit its contract: %s", self.request.method,
                           self.request.path, "; ".join(problems[:10]))

    def _refuse_unread_body(self) -> None:
        """A body that does not fit its model is never answered with success, read or not."""
        if self._body_error is not None and not self._body_read:
            self.body

    def no_content(self) -> None:
        self._refuse_unread_body()
        self.set_status(204)
        self.finish()

    def _handle_request_exception(self, e):
        # domain errors become the 4xx they stand for
        mapped = as_api_error(e)
        if mapped is None:
            return super()._handle_request_exception(e)
        if self._finished:
            return
        self.log.info("%d %s %s: %s", mapped.status_code, self.request.method, self.request.path, mapped.detail)
        self.send_error(mapped.status_code, exc_info=(type(mapped), mapped, None))

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        detail = None
        errors = {}
        if isinstance(exc, ApiError):
            detail, errors = exc.detail, exc.errors
        elif isinstance(exc, web.HTTPError):
            detail = exc.log_message or exc.reason
        if status_code == 405:  # RFC 9110: a 405 names the methods the route does answer
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if not detail:
            detail = responses.get(status_code, "Error")
            if status_code >= 500:
                detail = "The server failed on this request; the error is in the service log."
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(
            json.dumps(
                {
                    "type": f"https://httpstatuses.io/{status_code}",
                    "title": responses.get(status_code, "Error"),
                    "status": status_code,
                    "detail": detail,
                    "instance": self.request.path,
                    "errors": errors,
                },
                ensure_ascii=False,
            )
        )


def as_api_error(e: BaseException) -> ApiError | None:
    """The client error a domain exception stands for, or None for a server fault."""
    if isinstance(e, ValidationError):
        return ApiError(400, str(e), e.errors)
    if isinstance(e, NotFoundError):
        return ApiError(404, str(e))
    if isinstance(e, ConflictError):
        return ApiError(409, str(e))
    if isinstance(e, InsufficientStorage):
        return ApiError(e.status, str(e))
    if is_disk_full(e):  # ENOSPC/EDQUOT, or the database's disk is full: 507, nothing was stored
        return ApiError(507, "The server's disk is full: nothing was stored. Try again once space is freed.")
    if isinstance(e, StoreError):
        if e.client_error:
            return ApiError(400, str(e))
        return ApiError(503, f"The object store failed: {e}")
    if isinstance(e, BotoCoreError):  # an S3 endpoint that cannot be reached or answers nonsense
        return ApiError(503, f"The object store cannot be used: {e}")
    if isinstance(e, HubError) and e.status < 500:
        return ApiError(e.status if e.status in (404, 409) else 400, f"The hub refused: {e.message}")
    return None


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")



class NotFoundHandler(BaseAPIHandler):
    """Anything under the service that no route matches: a 404 in the API's error shape."""

    access = {m: Access.ANONYMOUS for m in ("GET", "POST", "PUT", "PATCH", "DELETE")}

    def prepare(self):
        raise ApiError(404, f"No such route: {self.request.path}")
