"""Models of the caller's own settings (/account/gits, /account/registries,
/account/webhook/slack, /account/displayName, /account/password).

Secrets go in, never out: outputs carry null where a secret would be and say whether one
is set. domain/user_settings.py keeps the rules (servers of the current tenant, secrets
without surrounding white space, webhook URLs, password strength).

The git token, registry credential and webhook bodies refuse unknown fields (the API's other
bodies ignore them): a misspelt field there would silently keep an old secret, so the domain
has always refused them, and the models say so.
"""
from __future__ import annotations

from pydantic import ConfigDict, Field

from ...domain.user_settings import MENTION_HELP
from .core import ApiModel, Id, pattern_message
from .misc import RowId

SECRET_MAX = 4096
MENTION_PATTERN = pattern_message(r"^$|^@?[A-Za-z0-9._-]{1,64}$", MENTION_HELP)
#: an http(s) URL with a host name (ASCII: an international name in its xn-- form) or address, an optional
#: port and no white space, or "" (domain/user_settings.check_webhook_url checks it again)
WEBHOOK_URL_PATTERN = pattern_message(
    r"^$|^[Hh][Tt][Tt][Pp][Ss]?://([^\s/?#@]+@)?([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#]\S*)?$",
    "must be an http:// or https:// URL with a host name (ASCII, xn-- for international names) and no white space")


class GitTokenInput(ApiModel):
    """A git token of the caller for one of the current tenant's git servers.

    The other fields of the GET answer (name, serviceType, repositoryUrl, tokenSet) may be sent back."""

    model_config = ConfigDict(extra="forbid")

    id: RowId = Field(description="The git server's id.")
    token: str | None = Field(max_length=SECRET_MAX, description="The token; null or \"\" removes it.")
    name: str | None = None
    serviceType: int | None = None
    repositoryUrl: str | None = None
    tokenSet: bool | None = None


class GitTokenOutput(ApiModel):
    id: Id
    name: str
    serviceType: int
    repositoryUrl: str
    tokenSet: bool
    token: None = Field(description="Always null: tokens are never returned.")


class GitTokensOutput(ApiModel):
    defaultGitId: Id | None
    gits: list[GitTokenOutput]


class RegistryCredentialInput(ApiModel):
    """The caller's credential for one of the current tenant's registries.

    `password` left out keeps the stored one (changes the user name only); null or "" removes
    the credential. The other fields of the GET answer may be sent back."""

    model_config = ConfigDict(extra="forbid")

    id: RowId = Field(description="The registry's id.")
    userName: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=SECRET_MAX)
    name: str | None = None
    projectName: str | None = None
    serviceType: int | None = None
    passwordSet: bool | None = None


class RegistryCredentialOutput(ApiModel):
    id: Id
    name: str
    projectName: str | None
    serviceType: int
    userName: str | None
    passwordSet: bool
    password: None = Field(description="Always null: passwords are never returned.")


class RegistryCredentialsOutput(ApiModel):
    defaultRegistryId: Id | None
    registries: list[RegistryCredentialOutput]


class SlackWebhookInput(ApiModel):
    """PUT /account/webhook/slack: a field left out is kept; null or "" clears it."""

    model_config = ConfigDict(extra="forbid")

    slackUrl: str | None = Field(None, max_length=2048, pattern=WEBHOOK_URL_PATTERN,
                                 description="An http(s):// incoming-webhook URL.")
    mention: str | None = Field(None, max_length=65, pattern=MENTION_PATTERN,
                                description="A Slack member id such as U012AB3CD (or here, channel, everyone).")
    slackUrlSet: bool | None = Field(None, description="Ignored (the GET answer may be sent back).")


class SlackWebhookOutput(ApiModel):
    slackUrl: None = Field(description="Always null: the URL is never returned.")
    slackUrlSet: bool
    mention: str | None


class SlackWebhookTestInput(ApiModel):
    """POST /account/webhook/slack/test: the stored URL and mention unless given (the body may be left out)."""

    slackUrl: str | None = Field(None, max_length=2048, pattern=WEBHOOK_URL_PATTERN)
    mention: str | None = Field(None, max_length=65, pattern=MENTION_PATTERN)


class SlackWebhookTestOutput(ApiModel):
    success: bool
    reason: str | None = Field(None, description="Why it failed (only when success is false).")


class DisplayNameInput(ApiModel):
    """PUT /account/displayName"""

    displayName: str | None = Field(max_length=255, description="null or \"\": the user name is shown.")


class PasswordChangeInput(ApiModel):
    """PUT /account/password"""

    currentPassword: str = Field(min_length=1)
    newPassword: str = Field(min_length=8, max_length=1024,
                             description="At least 8 and at most 1024 characters, without white space at"
                                         " either end; not the current one.")
