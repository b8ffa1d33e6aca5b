"""KqiAuthenticator: username + password sign-in for the hub, with its hub-side API.

Every user has a password of their own, stored as a salted scrypt hash in the hub's
database (`kqi_user_passwords`). Users come into being in two ways, as the platform
expects:

- the sign-up page (`/hub/signup`): with `open_signup` the account works at once;
  otherwise it waits until an administrator adds the same name on the hub's admin
  page (or through the hub's users API);
- an administrator (or the kqi service with `admin:users`) sets a password through
  `PUT /hub/api/kqi/users/<name>/password`, which also creates the hub user.

The authenticator also owns the hub roles that turn a hub group into a KQI tenant
(`PUT/DELETE /hub/api/kqi/tenants/<group>`, see `tenant_roles.py`).
"""
from __future__ import annotations

import json
import os

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import Bool, Unicode, default

from .login_page import KqiLanguageMixin, KqiLoginHandler
from .passwords import (PasswordError, PasswordStore, check_password_strength, check_username, end_sessions,
                        running_server_token_ids)
from .tenant_roles import TenantRolesAPIHandler

TEMPLATE_DIR = os.path.join(os.path.dirname(__file__), "templates")


class KqiAuthenticator(Authenticator):
    """Password authenticator whose users and hashes live in the hub database."""

    open_signup = Bool(
        False,
        help="""Let a sign-up through /hub/signup log in at once.

        When False (the default), a new sign-up can log in only after an administrator
        has added the same user name on the hub's admin page or through the users API.
        """,
    ).tag(config=True)

    enable_signup = Bool(
        True,
        help="Serve the sign-up page /hub/signup. When False, only administrators create users.",
    ).tag(config=True)

    bootstrap_admin_password = Unicode(
        "",
        help="""Password given to each user in `admin_users` that has none yet, at hub start.

        The `kqi-hub` launcher sets it on the first start from KQI_ADMIN_PASSWORD (or a
        generated password that it prints once). Existing passwords are never replaced.
        """,
    ).tag(config=True)

    kqi_service_name = Unicode(
        "kqi",
        help="Name of the hub-managed kqi service that tenant roles grant access to.",
    ).tag(config=True)

    @default("allow_all")
    def _allow_all_default(self):
        # authenticate() already refuses anyone without a valid, authorized password
        return True

    def get_handlers(self, app):
        engine = app.db.get_bind()
        PasswordStore.create_table(engine)
        if self.bootstrap_admin_password:
            store = PasswordStore(app.db)
            for name in self.admin_users:
                if store.get(name) is None:
                    store.set_password(name, self.bootstrap_admin_password, authorized=True)
                    self.log.info("Set the first password of administrator %s", name)
        handlers = [
            ("/login", KqiLoginHandler),  # the hub's page, in the browser's language
            ("/change-password", ChangePasswordHandler),
            ("/api/kqi/users/([^/]+)/password", UserPasswordAPIHandler),
            ("/api/kqi/tenants/([^/]+)", TenantRolesAPIHandler),
        ]
        if self.enable_signup:
            handlers.append(("/signup", SignUpHandler))
        return handlers

    def delete_user(self, user):
        """The hub deleted a user: its password goes too, so the name cannot sign in again
        with the old password if an administrator re-adds it."""
        PasswordStore(user.db).delete(user.name)
        return super().delete_user(user)

    async def authenticate(self, handler, data):
        if not isinstance(data, dict):
            return None
        username = self.normalize_username(str(data.get("username") or ""))
        password = data.get("password")
        if not username or not isinstance(password, str):
            return None
        store = PasswordStore(handler.db)
        record = store.check(username, password)
        if record is None:
            self.log.warning("Failed sign-in for %r", username)
            return None
        known_to_hub = handler.find_user(username) is not None
        if not (record.is_authorized or known_to_hub or username in self.admin_users):
            self.log.warning("Sign-in of %r refused: not yet added by an administrator", username)
            return None
        return username


class SignUpHandler(KqiLanguageMixin, BaseHandler):
    """The /hub/signup page: choose a user name and a password."""

    async def _render(self, message="", error=False, username=""):
        html = await self.render_template(
            "kqi-signup.html",
            message=self.kqi_message(message),
            error=error,
            username=username,
            open_signup=self.authenticator.open_signup,
        )
        self.finish(html)

    async def get(self):
        await self._render()

    async def post(self):
        username = self.authenticator.normalize_username(self.get_body_argument("username", ""))
        password = self.get_body_argument("password", "")
        confirm = self.get_body_argument("password_confirmation", "")
        try:
            check_username(username)
            check_password_strength(password)
            if password != confirm:
                raise PasswordError("The two passwords differ.")
        except PasswordError as e:
            self.set_status(400)
            return await self._render(str(e), error=True, username=username)
        store = PasswordStore(self.db)
        if store.get(username) is not None:
            self.set_status(409)
            return await self._render(f"The user name {username} is taken.", error=True)
        store.set_password(username, password, authorized=self.authenticator.open_signup)
        if self.authenticator.open_signup or self.find_user(username) is not None:
            message = "Your account is ready: sign in with it now."
        else:
            message = "Your sign-up was saved. An administrator has to add you before you can sign in."
        await self._render(message)


class ChangePasswordHandler(KqiLanguageMixin, BaseHandler):
    """The /hub/change-password page of the signed-in user."""

    async def _render(self, message="", error=False):
        html = await self.render_template("kqi-change-password.html", message=self.kqi_message(message), error=error)
        self.finish(html)

    @web.authenticated
    async def get(self):
        await self._render()

    @web.authenticated
    async def post(self):
        user = self.current_user
        current = self.get_body_argument("current_password", "")
        new = self.get_body_argument("new_password", "")
        confirm = self.get_body_argument("new_password_confirmation", "")
        store = PasswordStore(self.db)
        if store.check(user.name, current) is None:
            self.set_status(400)
            return await self._render("The current password is wrong.", error=True)
        try:
            check_password_strength(new)
            if new != confirm:
                raise PasswordError("The two new passwords differ.")
        except PasswordError as e:
            self.set_status(400)
            return await self._render(str(e), error=True)
        store.set_password(user.name, new)
        # every token and every other browser's sign-in ends; this browser gets a new sign-in cookie
        revoked = end_sessions(self.db, user.orm_user, running_server_token_ids(self.db, user))
        self.set_login_cookie(user)
        self.log.info("%s changed their password: %d tokens revoked, other sign-ins ended", user.name, revoked)
        await self._render("Your password was changed. Your tokens were revoked and other sign-ins ended: "
                           "the web UI signs you in again, command-line tools need a new login.")


class UserPasswordAPIHandler(APIHandler):
    """PUT /hub/api/kqi/users/<name>/password {"password": "..."}

    Sets the password of a user, creating the hub user when it does not exist yet.
    Needs the `admin:users` scope. The password never appears in a response or a log.
    """

    @needs_scope("admin:users")
    async def put(self, user_name):
        body = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The body must be a JSON object")
        password = body.get("password")
        try:
            check_username(user_name)
            check_password_strength(password)
        except PasswordError as e:
            raise web.HTTPError(400, str(e))
        user = self.find_user(user_name)
        created = user is None
        if created:
            user = self.user_from_username(user_name)
            await maybe_future(self.authenticator.add_user(user))
        PasswordStore(self.db).set_password(user_name, password)
        revoked = 0
        if not created:  # a change or a reset: whoever held the old password keeps nothing
            revoked = end_sessions(self.db, user.orm_user, running_server_token_ids(self.db, user))
            self.log.info("Password of %s set: %d tokens revoked, every sign-in ended", user_name, revoked)
        self.set_status(201 if created else 200)
        self.write(json.dumps({"name": user_name, "created": created, "revokedTokens": revoked}))
