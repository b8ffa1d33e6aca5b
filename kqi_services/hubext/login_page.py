"""The hub's sign-in page in the browser's language.

JupyterHub renders `login.html` with the same namespace for every visitor, and its
`template_vars` cannot see the request; this LoginHandler adds the language that the
request's Accept-Language prefers (the KQI UI's own choice, English or Japanese) and that
language's labels, which `templates/login.html` (extending the hub's page) shows.
"""
from __future__ import annotations

from jupyterhub.handlers.login import LoginHandler

from ..ui.i18n import choose_language
from ..ui.i18n_login import CATALOGS, HUB_MESSAGES


def login_language(accept_language: str | None) -> str:
    """"ja" or "en", as the KQI UI chooses for the same header."""
    language = choose_language(accept_language)
    return language if language in CATALOGS else "en"


def login_labels(language: str) -> dict[str, str]:
    return CATALOGS.get(language, CATALOGS["en"])


def translate_login_error(message: str | None, language: str) -> str | None:
    """The hub's English sign-in error in the page's language (others stay as they are)."""
    key = HUB_MESSAGES.get(message or "")
    return login_labels(language)[key] if key else message


class KqiLoginHandler(LoginHandler):
    """The hub's LoginHandler with `kqi_lang` and `kqi_login` (the labels) in the template."""

    @property
    def kqi_language(self) -> str:
        return login_language(self.request.headers.get("Accept-Language"))

    @property
    def template_namespace(self):
        ns = super().template_namespace
        ns["kqi_lang"] = self.kqi_language
        ns["kqi_login"] = login_labels(self.kqi_language)
        return ns

    def _render(self, login_error=None, username=None, **kwargs):
        return super()._render(login_error=translate_login_error(login_error, self.kqi_language),
                               username=username, **kwargs)
