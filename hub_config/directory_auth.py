"""Directory sign-in for KQI Hub: LDAP and OpenID Connect authenticators whose groups become tenants.

The hub's standard authenticators sign users in (jupyterhub-ldapauthenticator's
LDAPAuthenticator, oauthenticator's GenericOAuthenticator); the subclasses here add what the
platform needs from any authenticator:

- the hub-side API the kqi service uses to make tenants (`/hub/api/kqi/tenants/<group>`,
  `tenant_roles.py`), so nothing in the kqi service depends on the authenticator;
- directory groups mapped to tenants (hub groups) and to tenant-administrator rights
  (`group_tenants`, `tenant_admin_groups`), applied at every sign-in, through the hub's
  database as the hub's own group API does;
- for LDAP, a "sync now" (`POST /hub/api/kqi/directory/sync`) that reads every directory user,
  their groups and display names and applies the same mapping.

Only the tenants named in the mapping are managed: memberships of other tenants, given on the
hub's admin page or in the KQI UI, are left alone. A mapped tenant that does not exist yet (made
in KQI's tenant screen first) is skipped and reported.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from jupyterhub import orm, roles
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.handlers import BaseHandler
from tornado import web
from tornado.escape import xhtml_escape
from traitlets import Dict, HasTraits, Unicode

from kqi_services.hubext.tenant_roles import ADMIN_ROLE_PREFIX, TenantRolesAPIHandler

AUTHENTICATORS = {
    "kqi": "kqi",
    "ldap": "kqi_hub_config.directory_auth.KqiLDAPAuthenticator",
    "oidc": "kqi_hub_config.directory_auth.KqiOIDCAuthenticator",
}


def authenticator_class(choice: str) -> str:
    """The hub's authenticator_class for KQI_AUTHENTICATOR (kqi, ldap or oidc)."""
    choice = (choice or "kqi").strip().lower()
    if choice not in AUTHENTICATORS:
        raise SystemExit(f"KQI_AUTHENTICATOR must be one of {', '.join(AUTHENTICATORS)}, not {choice!r}")
    return AUTHENTICATORS[choice]


# --------------------------------------------------------------------------- the mapping (pure)
def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in (value or [])]


def mapped_tenants(directory_groups, group_tenants: dict, tenant_admin_groups: dict) -> tuple[set, set]:
    """(tenants the user belongs to, tenants the user administers) for their directory groups.

    `group_tenants` / `tenant_admin_groups` map a directory group to a tenant name or a list of
    them; an administrator of a tenant is also its member.
    """
    groups = set(directory_groups or ())
    members, admins = set(), set()
    for group, tenants in group_tenants.items():
        if group in groups:
            members.update(_as_list(tenants))
    for group, tenants in tenant_admin_groups.items():
        if group in groups:
            admins.update(_as_list(tenants))
    return members | admins, admins


def managed_tenants(group_tenants: dict, tenant_admin_groups: dict) -> tuple[set, set]:
    """(tenants whose membership the mapping manages, tenants whose administrators it manages)."""
    members = {t for v in group_tenants.values() for t in _as_list(v)}
    admins = {t for v in tenant_admin_groups.values() for t in _as_list(v)}
    return members | admins, admins


@dataclass
class TenantChange:
    name: str
    groups: list = field(default_factory=list)
    added: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    admin_added: list = field(default_factory=list)
    admin_removed: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # mapped tenants that do not exist

    def as_json(self) -> dict:
        return {"name": self.name, "groups": sorted(self.groups), "added": sorted(self.added),
                "removed": sorted(self.removed), "adminAdded": sorted(self.admin_added),
                "adminRemoved": sorted(self.admin_removed), "missingTenants": sorted(self.missing)}


def apply_directory_groups(db, orm_user, directory_groups, group_tenants, tenant_admin_groups) -> TenantChange:
    """Make the user's memberships of the mapped tenants follow their directory groups (commits)."""
    change = TenantChange(orm_user.name, list(directory_groups or ()))
    want, want_admin = mapped_tenants(directory_groups, group_tenants, tenant_admin_groups)
    managed, managed_admin = managed_tenants(group_tenants, tenant_admin_groups)
    for tenant in sorted(managed):
        group = orm.Group.find(db, tenant)
        if group is None:
            if tenant in want:
                change.missing.append(tenant)
            continue
        is_member = orm_user in group.users
        if tenant in want and not is_member:
            group.users.append(orm_user)
            change.added.append(tenant)
        elif tenant not in want and is_member:
            group.users.remove(orm_user)
            change.removed.append(tenant)
        if tenant in managed_admin:
            role = orm.Role.find(db, ADMIN_ROLE_PREFIX + tenant)
            if role is None:
                continue
            is_admin = orm_user in role.users
            if tenant in want_admin and not is_admin:
                roles.grant_role(db, orm_user, rolename=role.name, managed=True, commit=False)
                change.admin_added.append(tenant)
            elif tenant not in want_admin and is_admin:
                roles.strip_role(db, orm_user, rolename=role.name, managed=True, commit=False)
                change.admin_removed.append(tenant)
    db.commit()
    return change


class DirectoryTenantsMixin(HasTraits):
    """What the LDAP and OIDC authenticators of KQI Hub share: the mapping and the kqi API."""

    group_tenants = Dict(
        help="""Directory groups that make their members members of tenants.

        Keys are directory group names (LDAP: the group's `cn` or its full DN; OIDC: the values of
        the group claim), values a tenant name (the hub group KQI made for the tenant) or a list of
        them, e.g. {"ml-team": "vision", "all-staff": ["sandbox", "shared"]}. Applied at every
        sign-in and by a sync: a user no longer in the group leaves the tenant. Tenants not named
        here keep the memberships given by hand.
        """,
    ).tag(config=True)

    tenant_admin_groups = Dict(
        help="""Directory groups whose members administer tenants (and are members of them).

        Same form as `group_tenants`, e.g. {"vision-leads": "vision"}. The tenant-administrator
        rights of the tenants named here follow the directory; others stay as set in KQI.
        """,
    ).tag(config=True)

    kqi_service_name = Unicode(
        "kqi",
        help="Name of the hub-managed kqi service that tenant roles grant access to.",
    ).tag(config=True)

    def kqi_handlers(self):
        return [
            ("/api/kqi/tenants/([^/]+)", TenantRolesAPIHandler),
            ("/api/kqi/directory/sync", DirectorySyncAPIHandler),
            ("/api/kqi/users/([^/]+)/password", DirectoryPasswordAPIHandler),
            ("/change-password", DirectoryChangePasswordHandler),
        ]

    async def run_post_auth_hook(self, handler, auth_model):
        """After the hub's blocked/allowed checks passed: apply the directory groups that
        authenticate() put in the auth model (so a refused user is never made or changed)."""
        auth_model = await super().run_post_auth_hook(handler, auth_model)
        if auth_model and "kqi_groups" in auth_model:
            groups = auth_model.pop("kqi_groups")
            self.apply_tenant_mapping(handler, auth_model["name"], groups)
        return auth_model

    def apply_tenant_mapping(self, handler, username: str, directory_groups) -> TenantChange:
        """At sign-in: create the hub user if new and apply the mapping to it."""
        username = self.normalize_username(username)
        user = handler.user_from_username(username)
        change = apply_directory_groups(handler.db, user.orm_user, directory_groups,
                                        self.group_tenants, self.tenant_admin_groups)
        if change.added or change.removed or change.admin_added or change.admin_removed:
            self.log.info("Directory groups of %s: tenants +%s -%s, administrator +%s -%s", username,
                          change.added, change.removed, change.admin_added, change.admin_removed)
        for tenant in change.missing:
            self.log.warning("Directory group mapping names tenant %s, which does not exist", tenant)
        return change

    async def directory_users(self):
        """[(name, display name, groups)] of every directory user, for a sync."""
        raise web.HTTPError(400, f"{type(self).__name__} cannot list the directory's users: "
                                 "its groups are applied at each sign-in")


PASSWORDS_ELSEWHERE = ("Passwords are kept by the organisation's directory, not by KQI Hub: change or set them "
                      "there. Users come from the directory when they first sign in (or at a sync).")


class DirectoryPasswordAPIHandler(APIHandler):
    """PUT /hub/api/kqi/users/<name>/password with a directory authenticator: a clear 400 (the kqi
    service's user creation and password change pass the message on)."""

    @needs_scope("admin:users")
    def put(self, user_name):
        raise web.HTTPError(400, PASSWORDS_ELSEWHERE)


class DirectoryChangePasswordHandler(BaseHandler):
    """/hub/change-password (the KQI UI's user menu links it): where the password is changed instead."""

    @web.authenticated
    def get(self):
        from kqi_services.hubext.login_page import login_language
        from kqi_services.ui.i18n import CATALOGS

        lang = login_language(self.request.headers.get("Accept-Language"))
        labels = CATALOGS[lang]
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'>"
            f"<title>{xhtml_escape(labels['directory.password_title'])}</title></head><body>"
            "<main style='max-width:40em;margin:3em auto;font-family:sans-serif'><p id='kqi-password-elsewhere'>"
            f"{xhtml_escape(labels['directory.passwords_elsewhere'])}</p>"
            f"<p><a href='{xhtml_escape(self.hub.base_url)}'>{xhtml_escape(labels['directory.back'])}</a></p>"
            "</main></body></html>")


class DirectorySyncAPIHandler(APIHandler):
    """POST /hub/api/kqi/directory/sync: apply the directory's groups to every user now.

    Directory users that are in a mapped group and unknown to the hub are created; hub users not
    found in the directory lose their mapped tenants. Needs admin:users and admin:groups.
    """

    @needs_scope("admin:users")
    def get(self):
        """Whether a sync is possible here: {"available": bool, "passwordsElsewhere": true} (the kqi
        service reads the route's presence as "the passwords are the directory's")."""
        available = type(self.authenticator).directory_users is not DirectoryTenantsMixin.directory_users
        self.write(json.dumps({"available": available, "passwordsElsewhere": True}))

    @needs_scope("admin:users")
    async def post(self):
        if "admin:groups" not in self.expanded_scopes:
            raise web.HTTPError(403, "A sync needs the admin:groups scope")
        auth = self.authenticator
        if not isinstance(auth, DirectoryTenantsMixin):
            raise web.HTTPError(400, "The hub's authenticator has no directory to sync with")
        entries = await auth.directory_users()
        seen, users = set(), []
        for name, display_name, groups in entries:
            name = auth.normalize_username(name)
            seen.add(name)
            wanted, _ = mapped_tenants(groups, auth.group_tenants, auth.tenant_admin_groups)
            orm_user = orm.User.find(self.db, name)
            created = False
            if orm_user is None:
                if not wanted or name in (auth.blocked_users or ()):
                    continue  # nothing to give, or a name the hub refuses to sign in
                orm_user = self.user_from_username(name).orm_user
                created = True
            change = apply_directory_groups(self.db, orm_user, groups, auth.group_tenants, auth.tenant_admin_groups)
            users.append({**change.as_json(), "displayName": display_name, "created": created, "inDirectory": True})
        for orm_user in self.db.query(orm.User).all():
            if orm_user.name in seen:
                continue
            change = apply_directory_groups(self.db, orm_user, [], auth.group_tenants, auth.tenant_admin_groups)
            if change.removed or change.admin_removed:
                users.append({**change.as_json(), "displayName": None, "created": False, "inDirectory": False})
        self.log.info("Directory sync: %d users", len(users))
        self.write(json.dumps({"users": users}))


# ------------------------------------------------------------------------------------- LDAP
try:
    import ldap3
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn
    from ldapauthenticator import LDAPAuthenticator
except ImportError:  # pragma: no cover - installed with the package
    LDAPAuthenticator = None

if LDAPAuthenticator is not None:

    class KqiLDAPAuthenticator(DirectoryTenantsMixin, LDAPAuthenticator):
        """LDAPAuthenticator whose directory groups become tenants (see the module's help)."""

        group_search_base = Unicode(
            "",
            help="Where the groups are searched for (e.g. ou=groups,dc=example,dc=org). Empty: no groups.",
        ).tag(config=True)

        group_member_filter = Unicode(
            "(|(member={userdn})(uniqueMember={userdn})(memberUid={username}))",
            help="""The filter that finds a user's groups under group_search_base.

            {userdn} is the user's DN, {username} the user name (both escaped for the filter);
            the default covers groupOfNames, groupOfUniqueNames and posixGroup.""",
        ).tag(config=True)

        group_name_attribute = Unicode(
            "cn", help="The group attribute that names the group in group_tenants (its DN works too)."
        ).tag(config=True)

        sync_bind_dn = Unicode(
            "",
            help="""DN the sync binds with to read every user and group (read access is enough).
            Empty: lookup_dn_search_user. Sign-ins read the groups with the user's own bind.""",
        ).tag(config=True)

        sync_bind_password = Unicode(
            "", help="Password of sync_bind_dn (empty: lookup_dn_search_password)."
        ).tag(config=True)

        sync_user_search_base = Unicode(
            "",
            help="Where the sync finds the users (e.g. ou=people,dc=example,dc=org); empty: user_search_base.",
        ).tag(config=True)

        sync_user_name_attribute = Unicode(
            "uid", help="The user attribute that holds the hub user name, for a sync."
        ).tag(config=True)

        user_list_filter = Unicode(
            "(objectClass=inetOrgPerson)", help="The filter that finds every user for a sync."
        ).tag(config=True)

        display_name_attribute = Unicode(
            "displayName", help="The user attribute with the display name (falls back to cn)."
        ).tag(config=True)

        def get_handlers(self, app):
            from kqi_services.hubext.login_page import KqiLoginHandler

            return [("/login", KqiLoginHandler)] + self.kqi_handlers()

        def _user_dn(self, username: str) -> str | None:
            templates = list(self.bind_dn_template or [])
            return templates[0].format(username=escape_rdn(username)) if templates else None

        def _groups(self, conn, userdn: str, username: str) -> list[str]:
            if not self.group_search_base:
                return []
            conn.search(
                search_base=self.group_search_base, search_scope=ldap3.SUBTREE,
                search_filter=self.group_member_filter.format(userdn=escape_filter_chars(userdn),
                                                              username=escape_filter_chars(username)),
                attributes=[self.group_name_attribute],
            )
            names = []
            for entry in conn.entries:
                names.append(entry.entry_dn)
                value = entry.entry_attributes_as_dict.get(self.group_name_attribute) or []
                names.extend(str(v) for v in value)
            return names

        async def authenticate(self, handler, data):
            auth_model = await super().authenticate(handler, data)
            if not auth_model:
                return auth_model
            userdn = self._user_dn(data["username"])
            groups = []
            if userdn and self.group_search_base:
                conn = self.get_connection(userdn, data["password"])
                if conn:
                    try:
                        groups = self._groups(conn, userdn, data["username"])
                    finally:
                        conn.unbind()
            auth_model.setdefault("auth_state", {})["kqi_groups"] = groups
            auth_model["kqi_groups"] = groups  # applied by run_post_auth_hook, after the hub's checks
            return auth_model

        async def directory_users(self):
            bind_dn = self.sync_bind_dn or self.lookup_dn_search_user
            password = self.sync_bind_password or self.lookup_dn_search_password
            base = self.sync_user_search_base or self.user_search_base
            if not (bind_dn and base):
                raise web.HTTPError(400, "A sync needs sync_bind_dn (or lookup_dn_search_user) and sync_user_search_base")
            conn = self.get_connection(bind_dn, password)
            if not conn:
                raise web.HTTPError(502, "The sync could not bind to the directory")
            try:
                conn.search(search_base=base, search_scope=ldap3.SUBTREE, search_filter=self.user_list_filter,
                            attributes=[self.sync_user_name_attribute, self.display_name_attribute, "cn"])
                people = []
                for entry in conn.entries:
                    attrs = entry.entry_attributes_as_dict
                    name = (attrs.get(self.sync_user_name_attribute) or [None])[0]
                    if not name:
                        continue
                    display = (attrs.get(self.display_name_attribute) or attrs.get("cn") or [None])[0]
                    people.append((str(name), entry.entry_dn, str(display) if display else None))
                return [(name, display, self._groups(conn, dn, name)) for name, dn, display in people]
            finally:
                conn.unbind()
else:  # pragma: no cover
    KqiLDAPAuthenticator = None


# ------------------------------------------------------------------------------------- OIDC
try:
    from oauthenticator.generic import GenericOAuthenticator
except ImportError:  # pragma: no cover
    GenericOAuthenticator = None

if GenericOAuthenticator is not None:

    class KqiOIDCAuthenticator(DirectoryTenantsMixin, GenericOAuthenticator):
        """GenericOAuthenticator (OpenID Connect) whose group claim becomes tenants."""

        group_claim = Unicode(
            "groups",
            help="The claim of the user info (or ID token) that lists the user's groups.",
        ).tag(config=True)

        def get_handlers(self, app):
            return super().get_handlers(app) + self.kqi_handlers()

        def directory_groups(self, auth_model) -> list[str]:
            state = auth_model.get("auth_state") or {}
            info = state.get(self.user_auth_state_key) or {}
            value = info.get(self.group_claim)
            if value is None and isinstance(state.get("id_token_claims"), dict):
                value = state["id_token_claims"].get(self.group_claim)
            return _as_list(value)

        async def authenticate(self, handler, data=None):
            auth_model = await super().authenticate(handler, data)
            if not auth_model:
                return auth_model
            auth_model["kqi_groups"] = self.directory_groups(auth_model)  # see run_post_auth_hook
            return auth_model
else:  # pragma: no cover
    KqiOIDCAuthenticator = None
