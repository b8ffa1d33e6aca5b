"""The caller's own settings (KAMONOHASHI's ユーザ情報設定): git tokens and registry
credentials for the current tenant's servers, the Slack webhook with its test
notification, the display name and the password.

Secrets go in, never out: responses say whether one is set and carry null in its place.
"""
from __future__ import annotations

from ..domain import user_settings as settings
from ..domain.validation import ValidationError
from ..notify import policy as notify_policy
from ..notify import slack
from ..permissions import Access
from .base import BaseAPIHandler
from .schemas import user_settings as models
from .schemas.core import contract


class GitTokensHandler(BaseAPIHandler):
    """GET/PUT /account/gits: the caller's token per git server of the current tenant."""

    access = {"GET": Access.TENANT_USER, "PUT": Access.TENANT_USER}

    @contract(response=models.GitTokensOutput)
    def get(self):
        setting = self.user_setting()
        self.db.commit()
        self.write_json(settings.git_output(self.db, setting, self.tenant))

    @contract(body=list[models.GitTokenInput] | models.GitTokenInput,
              response=models.GitTokensOutput | models.GitTokenOutput)
    def put(self):
        # a list of {id, token} or one (KAMONOHASHI's form)
        changes, was_list = settings.read_git_tokens(self.body_data(), self.tenant)
        setting = self.user_setting()
        settings.apply_git_tokens(self.db, self.kqi.secret_box, setting, changes)
        self.log.info("%s changed git tokens of servers %s", self.identity.name, [c[0] for c in changes])
        output = settings.git_output(self.db, setting, self.tenant)
        if not was_list:  # KAMONOHASHI's form: one {id, token} in, that credential out
            output = next(g for g in output["gits"] if g["id"] == changes[0][0])
        self.write_json(output)


class RegistryCredentialsHandler(BaseAPIHandler):
    """GET/PUT /account/registries: the caller's credential per registry of the current tenant."""

    access = {"GET": Access.TENANT_USER, "PUT": Access.TENANT_USER}

    @contract(response=models.RegistryCredentialsOutput)
    def get(self):
        setting = self.user_setting()
        self.db.commit()
        self.write_json(settings.registry_output(self.db, setting, self.tenant))

    @contract(body=list[models.RegistryCredentialInput] | models.RegistryCredentialInput,
              response=models.RegistryCredentialsOutput | models.RegistryCredentialOutput)
    def put(self):
        # a list of {id, userName, password} or one (see GitTokensHandler.put)
        body = self.body_data()
        setting = self.user_setting()
        changes, was_list = settings.read_registry_credentials(body, self.tenant, self.db, setting)
        settings.apply_registry_credentials(self.db, self.kqi.secret_box, setting, changes)
        self.log.info("%s changed registry credentials of registries %s", self.identity.name,
                      [c.registry_id for c in changes])
        output = settings.registry_output(self.db, setting, self.tenant)
        if not was_list:
            output = next(r for r in output["registries"] if r["id"] == changes[0].registry_id)
        self.write_json(output)


class SlackWebhookHandler(BaseAPIHandler):
    """GET/PUT /account/webhook/slack {slackUrl, mention}: the URL is stored, never shown."""

    access = {"GET": Access.AUTHENTICATED, "PUT": Access.AUTHENTICATED}

    @contract(response=models.SlackWebhookOutput)
    def get(self):
        setting = self.user_setting()
        self.db.commit()
        self.write_json(settings.webhook_output(setting))

    @contract(body=models.SlackWebhookInput, response=None, status=204)
    def put(self):
        changes = settings.read_webhook(self.json_body())
        setting = self.user_setting()
        settings.apply_webhook(self.db, self.kqi.secret_box, setting, changes)
        self.log.info("%s changed the Slack webhook settings (%s)", self.identity.name,
                      ", ".join(sorted(changes)) or "nothing")
        self.no_content()


class SlackWebhookTestHandler(BaseAPIHandler):
    """POST /account/webhook/slack/test {slackUrl?, mention?}: send a test notification.

    Answers 200 {"success": true} or 200 {"success": false, "reason": ...}; the reason
    never contains the URL.
    """

    access = {"POST": Access.AUTHENTICATED}

    @contract(body=models.SlackWebhookTestInput, body_required=False, response=models.SlackWebhookTestOutput)
    async def post(self):
        body = self.json_body(required=False)
        setting = self.user_setting()
        self.db.commit()
        url, mention = settings.webhook_test_target(body, setting, self.kqi.secret_box)
        policy = notify_policy.policy_for(self.kqi)
        try:  # internal addresses and http are refused up front, with the reason (400)
            await policy.check(url)
        except notify_policy.NotificationRefused as e:
            raise ValidationError({"slackUrl": [slack.scrub(str(e), url)]}) from None
        message = slack.webhook_test_message(self.identity.name, self.kqi.public_url, mention)
        result = await slack.send(url, message, policy=policy)
        if result.success:
            self.log.info("Slack test notification of %s delivered", self.identity.name)
        else:
            self.log.info("Slack test notification of %s failed: %s", self.identity.name, result.reason)
        self.write_json(result.as_json())


class DisplayNameHandler(BaseAPIHandler):
    """PUT /account/displayName {displayName}"""

    access = {"PUT": Access.AUTHENTICATED}

    @contract(body=models.DisplayNameInput, response=None, status=204)
    def put(self):
        display_name = settings.read_display_name(self.json_body())
        setting = self.user_setting()
        setting.display_name = display_name
        self.db.commit()
        self.no_content()


class PasswordHandler(BaseAPIHandler):
    """PUT /account/password {currentPassword, newPassword}: checked and set by the hub."""

    access = {"PUT": Access.AUTHENTICATED}

    @contract(body=models.PasswordChangeInput, response=None, status=204)
    async def put(self):
        current, new = settings.read_password_change(self.json_body())
        await settings.change_password(self.kqi.hub, self.identity.name, current, new)
        self.log.info("%s changed their password", self.identity.name)
        self.no_content()


default_handlers = [
    (r"/account/gits", GitTokensHandler),
    (r"/account/registries", RegistryCredentialsHandler),
    (r"/account/webhook/slack", SlackWebhookHandler),
    (r"/account/webhook/slack/test", SlackWebhookTestHandler),
    (r"/account/displayName", DisplayNameHandler),
    (r"/account/password", PasswordHandler),
]
