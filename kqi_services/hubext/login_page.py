"""The hub's sign-in page in the browser's language.

JupyterHub renders `login.html` with the same namespace for every visitor, and its
`template_vars` cannot see the request; this LoginHandler adds the language that the
request's Accept-Language prefers (the KQI UI's own choice, English or Japanese) and that
language's labels, which `templates/login.html` (extending the hub's page) shows.
"""
from __future__ import annotations

import re

from jupyterhub.handlers.login import LoginHandler

from ..ui.i18n import choose_language
from ..ui.i18n_login import CATALOGS, HUB_MESSAGES


def login_language(accept_language: str | None) -> str:
    """"ja" or "en", as the KQI UI chooses for the same header."""
    language = choose_language(accept_language)
    return language if language in CATALOGS else "en"


def login_labels(language: str) -> dict[str, str]:
    return CATALOGS.get(language, CATALOGS["en"])


TOO_SHORT = re.compile(r"Passwords need at least (\d+) characters\.")


def translate_login_error(message: str | None, language: str) -> str | None:
    """One of the hub's English messages in the page's language (others stay as they are)."""
    labels = login_labels(language)
    key = HUB_MESSAGES.get(message or "")
    if key:
        return labels[key]
    short = TOO_SHORT.fullmatch(message or "")
    if short:
        return labels["password.too_short"].replace("{count}", short.group(1))
    return message


class KqiLanguageMixin:
    """A hub page handler with `kqi_lang` and `kqi_login` (the labels of the browser's language)
    in its templates' namespace, and `kqi_message` to translate its own English messages."""

    @property
    def kqi_language(self) -> str:
        return login_language(self.request.headers.get("Accept-Language"))

    @property
    def template_namespace(self):
        ns = super().template_namespace
        ns["kqi_lang"] = self.kqi_language
        ns["kqi_login"] = login_labels(self.kqi_language)
        return ns

    def kqi_message(self, message: str | None) -> str | None:
        return translate_login_error(message, self.kqi_language)


class KqiLoginHandler(KqiLanguageMixin, LoginHandler):
    """The hub's LoginHandler in the browser's language."""

    def _render(self, login_error=None, username=None, **kwargs):
        return super()._render(login_error=self.kqi_message(login_error), username=username, **kwargs)
