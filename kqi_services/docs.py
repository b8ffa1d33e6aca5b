"""The user guide at `<service prefix>docs/`: the static site MkDocs builds from `docs/en` and
`docs/ja` (`setup.sh` builds it into `build/docs/<language>/`).

- `docs/` sends the browser to `docs/<language>/`, English or Japanese by its Accept-Language
  (the same choice as the web UI's);
- `docs/en/...` and `docs/ja/...` are the built pages, served as they are.

The guide needs no sign-in. It is the repository's own text, the same for everybody, with no
tenant's data in it and nothing that depends on who reads it; and those who need it most may not
be able to sign in yet (how to sign up, how the CLI logs in, what an administrator sets up first).
Serving it without the hub's OAuth round trip also keeps it working while the hub is busy.
Because the pages share the platform's origin, they are sent with a Content-Security-Policy that
lets them load only this site's own files and never be framed.
"""
from __future__ import annotations

import os
import sys

from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from .ui.i18n import CATALOGS, choose_language

LANGUAGES = tuple(CATALOGS)  # ("en", "ja"): one built site per language of the UI
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the built pages use MkDocs' theme: its own scripts and stylesheets, one small inline script
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
                           " img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'")


class GuideSite(LoggingConfigurable):
    """Where the built user guide is."""

    site_dir = Unicode(
        help="Folder of the built user guide, with one site per language (en/, ja/), as"
        " `mkdocs build -f docs/mkdocs.<language>.yml` makes it (setup.sh does). Default:"
        " KQI_DOCS_DIR; else build/docs of the source tree the service runs from when it is there;"
        " else <Python environment>/share/kqi-hub/docs (where the hub image of the Helm chart builds it)."
        " A language whose site is missing answers 404 saying how to build it.",
    ).tag(config=True)

    @default("site_dir")
    def _site_dir_default(self):
        if os.environ.get("KQI_DOCS_DIR"):
            return os.environ["KQI_DOCS_DIR"]
        source_tree = os.path.join(REPO_ROOT, "build", "docs")
        if os.path.isdir(source_tree):
            return source_tree
        return os.path.join(sys.prefix, "share", "kqi-hub", "docs")

    def language_dir(self, language: str) -> str:
        return os.path.join(self.site_dir, language)

    def built(self, language: str) -> bool:
        return os.path.isfile(os.path.join(self.language_dir(language), "index.html"))


def guide_url(service_prefix: str, language: str, page: str = "") -> str:
    """The address of a page of the guide (page: "" for the start page, or e.g. "cli/")."""
    language = language if language in LANGUAGES else LANGUAGES[0]
    return url_path_join(service_prefix, "docs", language, page or "/")


class _GuideHeaders:
    def set_guide_headers(self):
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)


class GuidePageHandler(_GuideHeaders, web.StaticFileHandler):
    """The built pages of one language (directories answer their index.html)."""

    def initialize(self, path: str, site: GuideSite, language: str):
        super().initialize(path=path, default_filename="index.html")
        self.site = site
        self.language = language

    async def get(self, path, include_body=True):
        if not self.site.built(self.language):
            raise web.HTTPError(404, "guide not built")
        await super().get(path, include_body)

    def set_extra_headers(self, path):
        self.set_guide_headers()
        # not content-addressed URLs: revalidate (the ETag makes that cheap)
        self.set_header("Cache-Control", "no-cache")

    def write_error(self, status_code, **kwargs):
        self.set_guide_headers()
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.clear_header("Cache-Control")
        if status_code == 404 and not self.site.built(self.language):
            self.finish(f"The user guide ({self.language}) is not built here: run `bash setup.sh`, or"
                        f" `.venv/bin/mkdocs build -f docs/mkdocs.{self.language}.yml` in the source tree.\n")
        elif status_code == 404:
            self.finish("No such page in the user guide.\n")
        else:
            self.finish(f"{status_code}\n")


class GuideRootHandler(_GuideHeaders, web.RequestHandler):
    """docs/ and docs/<language> (no slash): to the start page in the reader's language."""

    def get(self, language=None):
        language = language or choose_language(self.request.headers.get("Accept-Language"))
        self.set_guide_headers()
        self.set_header("Vary", "Accept-Language")
        self.redirect(guide_url(self.settings["kqi"].service_prefix, language))


def make_handlers(service_prefix: str, site: GuideSite) -> list:
    base = url_path_join(service_prefix, "docs")
    routes = [
        (f"{base}/{language}/(.*)", GuidePageHandler,
         {"path": site.language_dir(language), "site": site, "language": language})
        for language in LANGUAGES
    ]
    routes.append((base + "(?:/(" + "|".join(LANGUAGES) + "))?/?", GuideRootHandler))
    return routes
