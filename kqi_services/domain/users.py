"""Users as KQI sees them, and the changes system and tenant administrators make to them.

A user, its password and its tenants belong to the hub: the user is a hub user, its
password is the KQI authenticator's, a tenant membership is a hub group membership and
a tenant administrator holds the hub role `kqi-tenant-admin.<tenant>`. The kqi DB only
keeps the user's settings (`UserSetting`, whose id is the user's id in the API).

A change that needs several hub calls goes through `HubChanges`: every step that worked
records how to undo it, and when a later step fails the earlier ones are undone in
reverse order, so a request either happens completely or not at all. When an undo fails
too, the error says exactly what is left to fix by hand.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.models import Tenant, UserGitToken, UserRegistryCredential, UserSetting
from ..hub_client import HubError
from ..hubext.passwords import PasswordError, check_username
from .paging import Page, PageRequest, page_of_list
from .user_settings import check_new_password
from .validation import ConflictError, Fields, NotFoundError, ValidationError

SYSTEM_ADMIN_ROLE = "kqi-system-admin"
TENANT_ADMIN_ROLE_PREFIX = "kqi-tenant-admin."
SERVICE_TYPE_LOCAL = 1  # KAMONOHASHI's AuthServiceType.Local: the password is the platform's

log = logging.getLogger(__name__)


class HubStepFailed(Exception):
    """A hub call of a multi-step change failed; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------ all-or-nothing
class HubChanges:
    """Hub calls that are undone, last first, when a later step fails."""

    def __init__(self):
        self._undo: list[tuple[str, Callable[[], Awaitable]]] = []
        self._done = 0

    async def step(self, what: str, do: Callable[[], Awaitable], undo: Callable[[], Awaitable] | None = None):
        try:
            result = await do()
        except Exception as e:
            raise await self.failed(what, e) from e
        self._done += 1
        if undo is not None:
            self._undo.append((what, undo))
        return result

    async def undo_all(self) -> list[str]:
        """Undo what was done; the descriptions of the steps that could not be undone."""
        left = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                await undo()
            except Exception as e:  # keep undoing the rest
                log.error("Could not undo '%s': %s", what, e)
                left.append(what)
        return left

    async def failed(self, what: str, error: BaseException, status: int | None = None) -> HubStepFailed:
        """Undo everything and describe the failure of `what` for the user."""
        done_before = self._done
        left = await self.undo_all()
        if isinstance(error, HubError):
            cause = error.message
            if status is None:
                status = 409 if error.status in (404, 409) else 400 if error.status < 500 else 502
        else:
            cause = str(error) or type(error).__name__
            status = status or 502
        message = f"{what} failed: {cause}."
        if left:
            status = 502
            message += " These earlier changes could not be undone and need fixing by hand: " + "; ".join(left) + "."
        elif done_before:
            message += " The earlier changes of this request were undone: nothing was changed."
        else:
            message += " Nothing was changed."
        return HubStepFailed(status, message)


# --------------------------------------------------------------------------- reading
@dataclass
class Membership:
    tenant: Tenant
    is_admin: bool
    in_group: bool = True


def memberships_of(model: dict, tenants_by_name: dict[str, Tenant]) -> dict[int, Membership]:
    """The KQI tenants of a hub user model: its groups that are tenants, and its admin roles.

    A tenant-admin role alone also makes its holder a member (its scopes include the
    user scope), so such a tenant is listed too, with in_group False.
    """
    result: dict[int, Membership] = {}
    for group in model.get("groups") or []:
        tenant = tenants_by_name.get(group)
        if tenant is not None:
            result[tenant.id] = Membership(tenant, False)
    for role in model.get("roles") or []:
        if role.startswith(TENANT_ADMIN_ROLE_PREFIX):
            tenant = tenants_by_name.get(role[len(TENANT_ADMIN_ROLE_PREFIX):])
            if tenant is None:
                continue
            if tenant.id in result:
                result[tenant.id].is_admin = True
            else:
                result[tenant.id] = Membership(tenant, True, in_group=False)
    return dict(sorted(result.items()))


def admin_user_row(model: dict, setting: UserSetting, memberships: dict[int, Membership]) -> dict:
    """A user as the system administrator sees it."""
    return {
        "id": setting.id,
        "name": model["name"],
        "displayName": setting.display_name or model["name"],
        "serviceType": SERVICE_TYPE_LOCAL,
        "isSystemAdmin": SYSTEM_ADMIN_ROLE in (model.get("roles") or []),
        "defaultTenantId": setting.default_tenant_id,
        "tenants": [
            {
                "id": m.tenant.id,
                "name": m.tenant.name,
                "displayName": m.tenant.display_name,
                "isTenantAdmin": m.is_admin,
                "default": m.tenant.id == setting.default_tenant_id,
            }
            for m in memberships.values()
        ],
        "createdAt": model.get("created"),
        "lastActivity": model.get("last_activity"),
    }


def tenant_user_row(name: str, setting: UserSetting, is_admin: bool) -> dict:
    """A member as the tenant administrator sees it."""
    return {
        "id": setting.id,
        "name": name,
        "displayName": setting.display_name or name,
        "serviceType": SERVICE_TYPE_LOCAL,
        "isTenantAdmin": is_admin,
    }


def checked_name(name: str, field_name: str = "name") -> str:
    try:
        return check_username(name)
    except PasswordError as e:
        raise ValidationError({field_name: [str(e)]})


@dataclass
class TenantChoice:
    """Wanted memberships: tenant id -> administrator?, and the default tenant."""

    admin_by_tenant: dict[int, bool] = field(default_factory=dict)
    default_tenant_id: int | None = None


def read_tenant_choice(value, db: Session, f: Fields, name: str = "tenants") -> TenantChoice:
    """[{id*, isTenantAdmin, default}] → TenantChoice; errors go into `f`."""
    choice = TenantChoice()
    if value is None:
        return choice
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        f.error(name, "must be a list of {id, isTenantAdmin} objects")
        return choice
    known = {t.id for t in db.scalars(select(Tenant)).all()}
    for index, item in enumerate(value):
        item_f = Fields(item)
        tenant_id = item_f.int("id", required=True)
        is_admin = item_f.bool("isTenantAdmin", default=False)
        default = item_f.bool("default", default=False)
        for key, messages in item_f.errors.items():
            for message in messages:
                f.error(f"{name}[{index}].{key}", message)
        if tenant_id is None:
            continue
        if tenant_id not in known:
            f.error(f"{name}[{index}].id", f"no tenant has the id {tenant_id}")
        elif tenant_id in choice.admin_by_tenant:
            f.error(f"{name}[{index}].id", f"the tenant {tenant_id} is given twice")
        else:
            choice.admin_by_tenant[tenant_id] = bool(is_admin)
        if default:
            if choice.default_tenant_id is not None:
                f.error(f"{name}[{index}].default", "only one tenant can be the default")
            choice.default_tenant_id = tenant_id
    return choice


@dataclass
class NewUser:
    name: str
    password: str
    display_name: str | None
    tenants: TenantChoice


def read_new_user(body: dict, db: Session) -> NewUser:
    f = Fields(body)
    name = f.str("name", required=True, max_length=64)
    if name:
        try:
            check_username(name)
        except PasswordError as e:
            f.error("name", str(e))
    try:
        password = check_new_password(body.get("password"))
    except ValidationError as e:
        f.errors.update(e.errors)
        password = None
    display_name = f.str("displayName", max_length=255)
    tenants = read_tenant_choice(body.get("tenants"), db, f)
    if body.get("systemRoles"):
        f.error("systemRoles", "system administrators are set in the hub configuration, not here")
    f.done()
    return NewUser(name, password, display_name or None, tenants)


def read_user_edit(body: dict, db: Session) -> tuple[dict, TenantChoice | None]:
    """PUT /admin/users/{name} {displayName?, tenants?}: (setting changes, tenant choice or None)."""
    f = Fields(body)
    changes = {}
    if "displayName" in body:
        changes["display_name"] = f.str("displayName", max_length=255) or None
    tenants = read_tenant_choice(body["tenants"], db, f) if "tenants" in body and body["tenants"] is not None \
        else None
    if body.get("systemRoles"):
        f.error("systemRoles", "system administrators are set in the hub configuration, not here")
    f.done()
    return changes, tenants


def read_tenants_body(body, db: Session) -> TenantChoice:
    """PUT /admin/users/{name}/tenants: a list [{id, isTenantAdmin}] or {"tenants": [...]}."""
    if isinstance(body, dict):
        body = body.get("tenants", body if body else None)
    f = Fields({})
    if body is None:
        f.error("tenants", "is required (an empty list removes the user from every tenant)")
    choice = read_tenant_choice(body, db, f) if body is not None else TenantChoice()
    f.done()
    return choice


# --------------------------------------------------------------------------- changing
class UserManager:
    """Reads and changes users on both sides: the hub (user, password, groups, roles) and
    the kqi DB (settings)."""

    def __init__(self, db: Session, hub):
        self.db = db
        self.hub = hub

    # ---------------------------------------------------------------- reading
    def tenants_by_name(self) -> dict[str, Tenant]:
        return {t.name: t for t in self.db.scalars(select(Tenant).order_by(Tenant.id)).all()}

    def settings_for(self, names: list[str]) -> dict[str, UserSetting]:
        """The settings rows of these users, made where missing (their ids are the user ids)."""
        names = sorted(set(names))
        if not names:
            return {}
        rows = {s.name: s for s in self.db.scalars(select(UserSetting).where(UserSetting.name.in_(names))).all()}
        missing = [n for n in names if n not in rows]
        if missing:
            for n in missing:
                self.db.add(UserSetting(name=n))
            try:
                self.db.commit()
            except IntegrityError:  # made at the same moment by another request
                self.db.rollback()
            rows = {s.name: s for s in
                    self.db.scalars(select(UserSetting).where(UserSetting.name.in_(names))).all()}
        return rows

    async def hub_user(self, name: str) -> dict:
        checked_name(name)
        model = await self.hub.get_user(name)
        if model is None:
            raise NotFoundError(f"No user is named {name}.")
        return model

    async def list_page(self, request: PageRequest) -> Page:
        """One page of every user, by name: the hub sorts, pages and counts in its database and
        answers only the page's users (a request without perPage is a page of 1000 users), and
        the settings are read for those users only. The hub orders names in its database's
        collation: code-point order with SQLite or a C collation (the order the users were listed
        in when KQI sorted them itself); a language collation may order '.', '_' and '-' otherwise,
        but always the same way from one page to the next."""
        request = request.or_per_page()
        models, total = await self.hub.users_page(request.offset, request.limit)
        settings = self.settings_for([m["name"] for m in models])
        tenants = self.tenants_by_name()
        rows = [admin_user_row(m, settings[m["name"]], memberships_of(m, tenants)) for m in models]
        return Page(rows, total if request.with_total else None)

    async def row(self, name: str) -> dict:
        model = await self.hub_user(name)
        setting = self.settings_for([name])[name]
        return admin_user_row(model, setting, memberships_of(model, self.tenants_by_name()))

    # ------------------------------------------------------- system administrator
    async def create(self, new: NewUser) -> dict:
        if await self.hub.get_user(new.name) is not None:
            raise ConflictError(f"A user named {new.name} exists already.")
        tenants = {t.id: t for t in self.tenants_by_name().values()}
        changes = HubChanges()
        created = await changes.step(
            f"Creating the user {new.name}",
            lambda: self.hub.set_password(new.name, new.password),
            lambda: self.hub.delete_user(new.name),
        )
        if not created:
            # someone made the same user at the same moment: it is theirs, leave it (but its
            # password is now the one of this request, so say so)
            raise ConflictError(f"A user named {new.name} was created by someone else at the same moment;"
                                " this request set its password: set it again.")
        for tenant_id, is_admin in new.tenants.admin_by_tenant.items():
            tenant = tenants[tenant_id]
            await self._join(changes, tenant.name, new.name)
            if is_admin:
                await self._set_admin(changes, tenant.name, new.name, True)
        try:
            self._forget_settings(new.name)  # a stale row of an earlier user with this name
            self.db.add(UserSetting(name=new.name, display_name=new.display_name,
                                    default_tenant_id=new.tenants.default_tenant_id))
            self.db.commit()
        except Exception as e:
            self.db.rollback()
            raise await changes.failed(f"Saving the settings of {new.name}", e, status=500) from e
        return await self.row(new.name)

    async def set_password(self, name: str, password: str) -> None:
        await self.hub_user(name)  # the hub would create a missing user
        await self.hub.set_password(name, password)

    async def edit(self, name: str, setting_changes: dict, choice: TenantChoice | None) -> dict:
        await self.hub_user(name)
        if choice is not None:
            await self.replace_tenants(name, choice)
        if setting_changes:
            setting = self.settings_for([name])[name]
            for key, value in setting_changes.items():
                setattr(setting, key, value)
            self.db.commit()
        return await self.row(name)

    async def replace_tenants(self, name: str, choice: TenantChoice) -> dict:
        model = await self.hub_user(name)
        tenants_by_name = self.tenants_by_name()
        tenants = {t.id: t for t in tenants_by_name.values()}
        current = memberships_of(model, tenants_by_name)
        changes = HubChanges()
        for tenant_id, membership in current.items():
            if tenant_id not in choice.admin_by_tenant:
                await self._leave(changes, membership, name)
        for tenant_id, is_admin in choice.admin_by_tenant.items():
            tenant = tenants[tenant_id]
            membership = current.get(tenant_id)
            if membership is None or not membership.in_group:
                await self._join(changes, tenant.name, name)
            if is_admin != (membership.is_admin if membership else False):
                await self._set_admin(changes, tenant.name, name, is_admin)
        try:
            setting = self.settings_for([name])[name]
            if choice.default_tenant_id is not None:
                setting.default_tenant_id = choice.default_tenant_id
            elif setting.default_tenant_id not in choice.admin_by_tenant:
                setting.default_tenant_id = None
            self.db.commit()
        except Exception as e:
            self.db.rollback()
            raise await changes.failed(f"Saving the default tenant of {name}", e, status=500) from e
        return await self.row(name)

    async def delete(self, name: str, actor: str) -> None:
        if name == actor:
            raise ValidationError({"name": ["you cannot delete yourself: ask another system administrator"]})
        await self.hub_user(name)
        try:
            await self.hub.delete_user(name)
        except Exception as e:
            raise await HubChanges().failed(f"Deleting the user {name}", e) from e
        # the settings are removed only now, with no await before the commit: a write held open
        # across a hub call keeps SQLite's write lock while other requests of this event loop wait
        # for it (each blocking the loop up to the busy timeout, then failing "database is locked")
        try:
            self._forget_settings(name)
            self.db.commit()
        except Exception as e:
            self.db.rollback()
            raise HubStepFailed(500, f"The user {name} was deleted from the hub, but its KQI settings could not"
                                     f" be removed ({e}); they are removed when a user of that name is made"
                                     " again.") from e

    def _forget_settings(self, name: str) -> None:
        """Remove (without committing) the settings and secrets kept for a user name."""
        setting = self.db.scalar(select(UserSetting).where(UserSetting.name == name))
        if setting is None:
            return
        # delete the secrets explicitly: SQLite does not enforce ON DELETE CASCADE by default
        self.db.execute(delete(UserGitToken).where(UserGitToken.user_id == setting.id))
        self.db.execute(delete(UserRegistryCredential).where(UserRegistryCredential.user_id == setting.id))
        self.db.delete(setting)
        self.db.flush()

    # ------------------------------------------------------- tenant administrator
    async def tenant_admins_and_members(self, tenant: Tenant) -> tuple[set[str], set[str]]:
        info = await self.hub.get_tenant(tenant.name)
        if info is None:
            return set(), set()
        admins = set(info.get("admins") or [])
        return admins, set(info.get("users") or []) | admins

    async def tenant_page(self, tenant: Tenant, request: PageRequest) -> Page:
        """One page of the tenant's members, by name. The hub is the source of the members: it
        gives a group's members (and the tenant's administrators) as one list of names, without
        paging, filtering or counting, so the names are sorted and paged here. Names are all it
        gives, and cheap; what costs is the kqi-side settings (made where missing), so those are
        read only for the names of the page."""
        admins, members = await self.tenant_admins_and_members(tenant)
        page = page_of_list(sorted(members), request)
        settings = self.settings_for(page.rows)
        return Page([tenant_user_row(n, settings[n], n in admins) for n in page.rows], page.total)

    async def tenant_row(self, tenant: Tenant, name: str) -> dict:
        checked_name(name)
        admins, members = await self.tenant_admins_and_members(tenant)
        if name not in members:
            raise NotFoundError(f"{name} is not a member of the tenant {tenant.name}.")
        return tenant_user_row(name, self.settings_for([name])[name], name in admins)

    async def put_tenant_member(self, tenant: Tenant, name: str, is_admin: bool, actor: str) -> dict:
        """Add an existing hub user to the tenant, or change its administrator flag."""
        model = await self.hub_user(name)
        membership = memberships_of(model, {tenant.name: tenant}).get(tenant.id)
        was_admin = membership.is_admin if membership else False
        if name == actor and was_admin and not is_admin:
            raise ValidationError({"isTenantAdmin": [
                "you cannot take away your own administrator role: ask another administrator"]})
        changes = HubChanges()
        if membership is None or not membership.in_group:
            await self._join(changes, tenant.name, name)
        if is_admin != was_admin:
            await self._set_admin(changes, tenant.name, name, is_admin)
        return await self.tenant_row(tenant, name)

    async def remove_tenant_member(self, tenant: Tenant, name: str, actor: str) -> None:
        checked_name(name)
        if name == actor:
            raise ValidationError({"name": ["you cannot remove yourself from the tenant: ask another administrator"]})
        model = await self.hub_user(name)
        membership = memberships_of(model, {tenant.name: tenant}).get(tenant.id)
        if membership is None:
            raise NotFoundError(f"{name} is not a member of the tenant {tenant.name}.")
        changes = HubChanges()
        await self._leave(changes, membership, name)
        try:
            setting = self.db.scalar(select(UserSetting).where(UserSetting.name == name))
            if setting is not None and setting.default_tenant_id == tenant.id:
                setting.default_tenant_id = None
                self.db.commit()
        except Exception as e:
            self.db.rollback()
            raise await changes.failed(f"Saving the default tenant of {name}", e, status=500) from e

    # -------------------------------------------------------------- hub steps
    async def _join(self, changes: HubChanges, tenant: str, name: str) -> None:
        await changes.step(
            f"Adding {name} to the tenant {tenant}",
            lambda: self.hub.add_group_users(tenant, [name]),
            lambda: self.hub.remove_group_users(tenant, [name]),
        )

    async def _leave(self, changes: HubChanges, membership: Membership, name: str) -> None:
        tenant = membership.tenant.name
        if membership.is_admin:
            await self._set_admin(changes, tenant, name, False)
        if membership.in_group:
            await changes.step(
                f"Removing {name} from the tenant {tenant}",
                lambda: self.hub.remove_group_users(tenant, [name]),
                lambda: self.hub.add_group_users(tenant, [name]),
            )

    async def _set_admin(self, changes: HubChanges, tenant: str, name: str, admin: bool) -> None:
        info = await changes.step(f"Reading the administrators of the tenant {tenant}",
                                  lambda: self.hub.get_tenant(tenant))
        before = sorted(set((info or {}).get("admins") or []))
        after = sorted(set(before) | {name}) if admin else sorted(set(before) - {name})
        if after == before:
            return
        what = (f"Making {name} an administrator of the tenant {tenant}" if admin
                else f"Removing the administrator role of {name} in the tenant {tenant}")
        await changes.step(
            what,
            lambda: self.hub.ensure_tenant(tenant, admins=after),
            lambda: self.hub.ensure_tenant(tenant, admins=before),
        )
