"""A user's own settings: git tokens, registry credentials, the Slack webhook, display name.

Secrets (git tokens, registry passwords, the webhook URL) are stored encrypted with the
service's SecretBox. Nothing here returns them: the outputs say whether one is set
(`tokenSet`, `passwordSet`, `slackUrlSet`) and carry null in the field that would hold it.
The `*_for` functions decrypt for the code that acts with them (cloning, pulling, notifying).
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Tenant, UserGitToken, UserRegistryCredential, UserSetting
from ..hub_client import HubError
from ..hubext.passwords import PasswordError, check_password_strength
from ..secrets import SecretBox
from .validation import Fields, ValidationError

SECRET_MAX_LENGTH = 4096
URL_MAX_LENGTH = 2048
MENTION_PATTERN = r"@?[A-Za-z0-9._-]{1,64}"
MENTION_HELP = "must be a Slack member id such as U012AB3CD (or here, channel, everyone)"

_MISSING = object()


def items_of(body, what: str) -> tuple[list[dict], bool]:
    """The objects of a PUT body that is one object or a list of them; (items, was_list)."""
    if isinstance(body, dict):
        return [body], False
    if isinstance(body, list) and all(isinstance(item, dict) for item in body):
        return body, True
    raise ValidationError({"body": [f"must be a list of {what} objects (or one such object)"]})


def _prefixed(errors: dict[str, list[str]], index: int, was_list: bool) -> dict[str, list[str]]:
    if not was_list:
        return errors
    return {f"[{index}].{key}": value for key, value in errors.items()}


def _secret_field(item: dict, name: str, f: Fields):
    """A secret in a body: _MISSING when absent, None to remove it, else the string.

    Secrets are taken as given (no stripping), but surrounding whitespace is refused,
    as it is almost always a copy-and-paste accident.
    """
    if name not in item:
        return _MISSING
    value = item[name]
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        f.error(name, "must be a string")
        return _MISSING
    if value != value.strip():
        f.error(name, "must not start or end with white space")
    if len(value) > SECRET_MAX_LENGTH:
        f.error(name, f"must have at most {SECRET_MAX_LENGTH} characters")
    if "\x00" in value:
        f.error(name, "must not contain NUL characters")
    return value


# ---------------------------------------------------------------------------------- git
def git_output(db: Session, setting: UserSetting, tenant: Tenant) -> dict:
    tokens = {
        t.git_server_id
        for t in db.scalars(select(UserGitToken).where(UserGitToken.user_id == setting.id)).all()
    }
    return {
        "defaultGitId": tenant.default_git_id,
        "gits": [git_item(g, g.id in tokens) for g in tenant.git_servers],
    }


def git_item(git, token_set: bool) -> dict:
    return {
        "id": git.id,
        "name": git.name,
        "serviceType": git.service_type,
        "repositoryUrl": git.repository_url,
        "tokenSet": token_set,
        "token": None,
    }


def read_git_tokens(body, tenant: Tenant) -> tuple[list[tuple[int, str | None]], bool]:
    """[(git server id, token or None to remove)] from a PUT body; ValidationError if wrong."""
    items, was_list = items_of(body, "{id, token}")
    allowed = {g.id for g in tenant.git_servers}
    changes, errors, seen = [], {}, set()
    for index, item in enumerate(items):
        f = Fields(item)
        git_id = f.int("id", required=True)
        token = _secret_field(item, "token", f)
        if token is _MISSING and "token" not in item:
            f.error("token", "is required (send null or \"\" to remove the token)")
        if git_id is not None:
            if git_id not in allowed:
                f.error("id", f"the git server {git_id} is not one of the current tenant's")
            elif git_id in seen:
                f.error("id", f"the git server {git_id} is given twice")
            seen.add(git_id)
        for key in set(item) - {"id", "token", "name", "serviceType", "repositoryUrl", "tokenSet"}:
            f.error(key, "is not a field of a git token")
        errors.update(_prefixed(f.errors, index, was_list))
        if not f.errors:
            changes.append((git_id, token))
    if errors:
        raise ValidationError(errors)
    return changes, was_list


def apply_git_tokens(db: Session, box: SecretBox, setting: UserSetting,
                     changes: list[tuple[int, str | None]]) -> None:
    for git_id, token in changes:
        row = db.get(UserGitToken, (setting.id, git_id))
        if token is None:
            if row is not None:
                db.delete(row)
        elif row is None:
            db.add(UserGitToken(user_id=setting.id, git_server_id=git_id, token_encrypted=box.encrypt(token)))
        else:
            row.token_encrypted = box.encrypt(token)
    db.commit()


def git_token_for(db: Session, box: SecretBox, user_name: str, git_server_id: int) -> str | None:
    """The user's git token for a git server, decrypted (for cloning), or None."""
    setting = db.scalar(select(UserSetting).where(UserSetting.name == user_name))
    if setting is None:
        return None
    row = db.get(UserGitToken, (setting.id, git_server_id))
    return box.decrypt(row.token_encrypted) if row is not None else None


# ----------------------------------------------------------------------------- registries
def registry_output(db: Session, setting: UserSetting, tenant: Tenant) -> dict:
    creds = {
        c.registry_id: c
        for c in db.scalars(
            select(UserRegistryCredential).where(UserRegistryCredential.user_id == setting.id)
        ).all()
    }
    return {
        "defaultRegistryId": tenant.default_registry_id,
        "registries": [registry_item(r, creds.get(r.id)) for r in tenant.registries],
    }


def registry_item(registry, cred: UserRegistryCredential | None) -> dict:
    return {
        "id": registry.id,
        "name": registry.name,
        "projectName": registry.project_name,
        "serviceType": registry.service_type,
        "userName": cred.registry_user_name if cred else None,
        "passwordSet": cred is not None,
        "password": None,
    }


@dataclass
class RegistryChange:
    registry_id: int
    user_name: str | None
    #: the new password; None removes the credential; KEEP changes only the user name
    password: object


KEEP = object()


def read_registry_credentials(body, tenant: Tenant, db: Session,
                              setting: UserSetting) -> tuple[list[RegistryChange], bool]:
    """Changes from a PUT body [{id, userName, password}].

    password null or "" removes the credential; a password leaves out (no "password" key)
    keeps the stored one and changes only the user name.
    """
    items, was_list = items_of(body, "{id, userName, password}")
    allowed = {r.id for r in tenant.registries}
    changes, errors, seen = [], {}, set()
    for index, item in enumerate(items):
        f = Fields(item)
        registry_id = f.int("id", required=True)
        user_name = f.str("userName", max_length=255)
        password = _secret_field(item, "password", f)
        if registry_id is not None:
            if registry_id not in allowed:
                f.error("id", f"the registry {registry_id} is not one of the current tenant's")
            elif registry_id in seen:
                f.error("id", f"the registry {registry_id} is given twice")
            seen.add(registry_id)
        if password is _MISSING and "password" not in item:
            stored = (db.get(UserRegistryCredential, (setting.id, registry_id))
                      if registry_id is not None else None)
            if stored is None:
                f.error("password", "is required (no password is stored for this registry yet)")
            password = KEEP
        for key in set(item) - {"id", "userName", "password", "name", "projectName", "serviceType",
                                "passwordSet"}:
            f.error(key, "is not a field of a registry credential")
        errors.update(_prefixed(f.errors, index, was_list))
        if not f.errors:
            changes.append(RegistryChange(registry_id, user_name, password))
    if errors:
        raise ValidationError(errors)
    return changes, was_list


def apply_registry_credentials(db: Session, box: SecretBox, setting: UserSetting,
                               changes: list[RegistryChange]) -> None:
    for change in changes:
        row = db.get(UserRegistryCredential, (setting.id, change.registry_id))
        if change.password is None:
            if row is not None:
                db.delete(row)
            continue
        if row is None:
            row = UserRegistryCredential(user_id=setting.id, registry_id=change.registry_id)
            db.add(row)
        row.registry_user_name = change.user_name
        if change.password is not KEEP:
            row.password_encrypted = box.encrypt(change.password)
    db.commit()


def registry_credential_for(db: Session, box: SecretBox, user_name: str,
                            registry_id: int) -> tuple[str | None, str] | None:
    """(user name, password) of the user for a registry, decrypted (for pulls), or None."""
    setting = db.scalar(select(UserSetting).where(UserSetting.name == user_name))
    if setting is None:
        return None
    row = db.get(UserRegistryCredential, (setting.id, registry_id))
    if row is None:
        return None
    return row.registry_user_name, box.decrypt(row.password_encrypted)


# -------------------------------------------------------------------------------- webhook
def webhook_output(setting: UserSetting) -> dict:
    return {
        "slackUrl": None,
        "slackUrlSet": bool(setting.slack_url_encrypted),
        "mention": setting.slack_mention,
    }


def check_webhook_url(url, field: str = "slackUrl") -> str:
    """The URL when it is a usable http(s) URL; ValidationError otherwise (without echoing it)."""
    problem = None
    if not isinstance(url, str):
        problem = "must be a string"
    elif url != url.strip() or any(c.isspace() for c in url):
        problem = "must not contain white space"
    elif len(url) > URL_MAX_LENGTH:
        problem = f"must have at most {URL_MAX_LENGTH} characters"
    else:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme.lower() not in ("http", "https"):
            problem = "must be an http:// or https:// URL"
        elif not host:
            problem = "must name a host"
    if problem:
        raise ValidationError({field: [problem]})
    return url


def read_mention(f: Fields, name: str = "mention"):
    """The mention from a body: _MISSING when absent, None to clear it."""
    if not f.has(name):
        return _MISSING
    value = f.str(name, max_length=65, pattern=MENTION_PATTERN, pattern_help=MENTION_HELP)
    return value.lstrip("@") if value else None


def read_webhook(body: dict) -> dict:
    """Changes from PUT /account/webhook/slack {slackUrl, mention}.

    A field left out keeps its stored value; null or "" clears it.
    """
    f = Fields(body)
    changes = {}
    if "slackUrl" in body:
        url = body["slackUrl"]
        if url is None or url == "":
            changes["slack_url"] = None
        else:
            try:
                changes["slack_url"] = check_webhook_url(url)
            except ValidationError as e:
                f.errors.update(e.errors)
    mention = read_mention(f)
    if mention is not _MISSING:
        changes["slack_mention"] = mention
    for key in set(body) - {"slackUrl", "mention", "slackUrlSet"}:
        f.error(key, "is not a field of the webhook settings")
    f.done()
    return changes


def apply_webhook(db: Session, box: SecretBox, setting: UserSetting, changes: dict) -> None:
    if "slack_url" in changes:
        url = changes["slack_url"]
        setting.slack_url_encrypted = box.encrypt(url) if url else None
    if "slack_mention" in changes:
        setting.slack_mention = changes["slack_mention"]
    db.commit()


def webhook_test_target(body: dict, setting: UserSetting, box: SecretBox) -> tuple[str, str | None]:
    """(URL, mention) for a test notification: the body's values, else the stored ones."""
    f = Fields(body)
    url = body.get("slackUrl")
    if url not in (None, ""):
        try:
            url = check_webhook_url(url)
        except ValidationError as e:
            f.errors.update(e.errors)
    mention = read_mention(f)
    f.done()
    if url in (None, ""):
        if not setting.slack_url_encrypted:
            raise ValidationError({"slackUrl": ["no webhook URL is saved: give one to test"]})
        url = box.decrypt(setting.slack_url_encrypted)
    if mention is _MISSING:
        mention = setting.slack_mention
    return url, mention


def slack_target_for(db: Session, box: SecretBox, user_name: str) -> tuple[str, str | None] | None:
    """(webhook URL, mention) of a user for job notifications, or None when none is set."""
    setting = db.scalar(select(UserSetting).where(UserSetting.name == user_name))
    if setting is None or not setting.slack_url_encrypted:
        return None
    return box.decrypt(setting.slack_url_encrypted), setting.slack_mention


# ------------------------------------------------------------------- display name, password
def read_display_name(body: dict) -> str | None:
    f = Fields(body)
    if "displayName" not in body:
        f.error("displayName", "is required (null or \"\" shows the user name instead)")
    name = f.str("displayName", max_length=255)
    f.done()
    return name or None


def read_password_change(body: dict) -> tuple[str, str]:
    """(current, new) from PUT /account/password; ValidationError for a missing or weak one."""
    errors: dict[str, list[str]] = {}
    current = body.get("currentPassword")
    new = body.get("newPassword")
    if not isinstance(current, str) or not current:
        errors["currentPassword"] = ["is required"]
    if not isinstance(new, str) or not new:
        errors["newPassword"] = ["is required"]
    else:
        try:
            check_new_password(new)
        except ValidationError as e:
            errors["newPassword"] = e.errors["password"]
        if not errors.get("newPassword") and new == current:
            errors["newPassword"] = ["must differ from the current password"]
    if errors:
        raise ValidationError(errors)
    return current, new


def check_new_password(password) -> str:
    """The hub authenticator's rule for passwords, plus no surrounding white space."""
    if not isinstance(password, str) or not password:
        raise ValidationError({"password": ["is required"]})
    if password != password.strip():
        raise ValidationError({"password": ["must not start or end with white space"]})
    try:
        check_password_strength(password)
    except PasswordError as e:
        raise ValidationError({"password": [str(e)]})
    return password


async def change_password(hub, user_name: str, current: str, new: str) -> None:
    """Check the current password with the hub's authenticator, then set the new one.

    The check asks the hub for a token with the current password (no scopes, one minute)
    and revokes it at once.
    """
    try:
        token = await hub.token_for_password(user_name, current, scopes=[], expires_in=60,
                                             note="kqi password change: check of the current password")
    except HubError as e:
        if e.status == 403:
            raise ValidationError({"currentPassword": ["is wrong"]})
        raise
    await hub.revoke_token(user_name, token["id"])
    await hub.set_password(user_name, new)
