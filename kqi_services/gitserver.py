"""The embedded git server over smart HTTP, one folder per tenant.

The seeded git server `local` (service type 6) keeps bare repositories on this machine,
`<data dir>/git/<tenant name>/<owner>/<repository>.git`: a repository belongs to the tenant
whose folder holds it. This module serves them to git clients at

    <service prefix>git/<tenant name>/<owner>/<repository>.git   (".git" may be left out)

with `git http-backend` run as a CGI program for each request, its input and output streamed
(a push is never held in memory). Only the smart protocol is served (info/refs with a
`service`, git-upload-pack, git-receive-pack); the dumb protocol's file reads are 404.

Who may do what (the rules are `decide()`, plain code the tests call):

- credentials are HTTP Basic: the hub user's name and a hub API token of that user with
  access to the kqi service (a token of another user is refused), or a running job's token
  (KQI_TOKEN, any user name; also accepted as `Authorization: Bearer`). None: 401 with
  `WWW-Authenticate`, so git asks its credential helper;
- the caller must be a member of the tenant named in the address (a job token: the job's
  tenant, while its owner is still a member); otherwise 404, as for a repository that does
  not exist, so that one tenant learns nothing of another's repositories. Being a system
  administrator gives no access to a tenant's repositories;
- the tenant must use the embedded git server (it is among the tenant's git servers);
- every member reads and pushes every repository of the tenant (the tenant is the team);
  a push to a repository that does not exist creates it (KAMONOHASHI users push to their
  git server); a job token only fetches (403 on a push).

Old installations kept `<data dir>/git/<owner>/<repository>.git` for every tenant: at start
`migrate_flat_layout` moves each such repository into the folder of the first tenant that
uses the server (logged), see seed.py.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from http.client import responses

from jupyterhub.utils import url_path_join
from sqlalchemy import select
from tornado import web

from .db.models import GitServer, Tenant
from .domain.infra import GIT_LOCAL, REPO_SEGMENT, TENANT_FOLDER, file_url_path, tenant_git_root
from .hub_client import HubError
from .permissions import identity_from_model, job_identity, notebook_identity, notebook_servers

log = logging.getLogger(__name__)

READ, WRITE = "read", "write"
REALM = 'Basic realm="KQI git", charset="UTF-8"'
#: <tenant>/<owner>/<repository>[.git]/<smart HTTP endpoint>
PATH = re.compile(r"([^/]+)/([^/]+)/([^/]+?)(?:\.git)?/(info/refs|git-upload-pack|git-receive-pack)")
SERVICES = {"git-upload-pack": READ, "git-receive-pack": WRITE}
CHUNK = 64 * 1024


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class GitRequest:
    tenant: str
    owner: str
    repository: str
    endpoint: str  # info/refs, git-upload-pack or git-receive-pack
    action: str  # READ or WRITE


def parse_request(path: str, method: str, service: str | None) -> GitRequest:
    """What a request asks for, from the address below `git/`; Refusal(404) for anything but
    the smart protocol of a well-formed repository name."""
    m = PATH.fullmatch(path)
    if m is None:
        raise Refusal(404, "Not a repository address: <tenant>/<owner>/<repository>.git (smart HTTP only).")
    tenant, owner, repository, endpoint = m.groups()
    if not TENANT_FOLDER.fullmatch(tenant) or not all(
            REPO_SEGMENT.fullmatch(s) and ".." not in s for s in (owner, repository)):
        raise Refusal(404, "Not a repository address: tenant, owner and repository are letters, digits,"
                           " '.', '_' and '-'.")
    if endpoint == "info/refs":
        if method not in ("GET", "HEAD") or service not in SERVICES:
            raise Refusal(404 if method in ("GET", "HEAD") else 405,
                          "Only the smart HTTP protocol is served (info/refs?service=git-upload-pack"
                          " or git-receive-pack).")
        action = SERVICES[service]
    else:
        if method != "POST":
            raise Refusal(405, f"{endpoint} takes a POST.")
        action = SERVICES[endpoint]
    return GitRequest(tenant, owner, repository, endpoint, action)


def basic_credentials(header: str) -> tuple[str | None, str | None]:
    """(user name, secret) of an Authorization header: Basic, or Bearer/token (no name)."""
    scheme, _, value = (header or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        try:
            name, sep, secret = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return (name, secret) if sep and secret else (None, None)
    if scheme.lower() in ("bearer", "token") and value:
        return None, value
    return None, None


def decide(request: GitRequest, *, member_of: set[str], job: bool, tenant_exists: bool,
           tenant_uses_server: bool) -> None:
    """The access rule (pure): raises Refusal, or returns when the caller may go on."""
    if request.tenant not in member_of or not tenant_exists:
        raise Refusal(404, f"Repository {request.tenant}/{request.owner}/{request.repository} is not found"
                           " (or you are not a member of its tenant).")
    if not tenant_uses_server:
        raise Refusal(404, f"The tenant {request.tenant} does not use the embedded git server:"
                           " ask an administrator to add the git server to the tenant.")
    if job and request.action == WRITE:
        raise Refusal(403, "A job token can only fetch from the git server, not push.")


def embedded_root(data_dir: str) -> str:
    return os.path.realpath(os.path.join(data_dir, "git"))


def serves_embedded(server: GitServer, data_dir: str) -> bool:
    return (server.service_type == GIT_LOCAL
            and os.path.realpath(file_url_path(server.repository_url)) == embedded_root(data_dir))


def repository_path(root: str, request: GitRequest) -> str:
    tenant_root = os.path.realpath(tenant_git_root(root, request.tenant))
    path = os.path.realpath(os.path.join(tenant_root, request.owner, request.repository + ".git"))
    if not path.startswith(tenant_root + os.sep):
        raise Refusal(404, "Not a repository address.")
    return path


def is_bare_repository(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))


def _git_env() -> dict:
    """git's environment here: no user or system configuration, no prompts."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "HOME": os.devnull,
            "LANG": "C"}


def create_repository(path: str) -> None:
    """An empty bare repository (a first push); its HEAD is set after the push (fix_head)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", path], env=_git_env(), check=True,
                   capture_output=True, timeout=60)


def fix_head(path: str) -> None:
    """After a push into a repository whose HEAD names no branch (made by a first push of
    `main` while HEAD says master): point HEAD at main, master or the only branch."""
    env = _git_env()
    run = subprocess.run(["git", "--git-dir", path, "rev-parse", "--verify", "--quiet", "HEAD"], env=env,
                         capture_output=True, timeout=30)
    if run.returncode == 0:
        return
    heads = subprocess.run(["git", "--git-dir", path, "for-each-ref", "--format=%(refname)", "refs/heads/"],
                           env=env, capture_output=True, text=True, timeout=30).stdout.split()
    for wanted in ("refs/heads/main", "refs/heads/master", *heads[:1]):
        if wanted in heads:
            subprocess.run(["git", "--git-dir", path, "symbolic-ref", "HEAD", wanted], env=env,
                           capture_output=True, timeout=30)
            return


# ---------------------------------------------------------------- migration
def migrate_flat_layout(root: str, tenant: str, logger=log) -> list[str]:
    """Move repositories of the old layout, <root>/<owner>/<repository>.git, into
    <root>/<tenant>/<owner>/<repository>.git; the moved ones (owner/repository), each logged.
    A repository whose target exists already is left where it is (logged)."""
    moved = []
    if not os.path.isdir(root) or not TENANT_FOLDER.fullmatch(tenant or ""):
        return moved
    for owner in sorted(os.listdir(root)):
        owner_dir = os.path.join(root, owner)
        if os.path.islink(owner_dir) or not os.path.isdir(owner_dir):
            continue
        for entry in sorted(os.listdir(owner_dir)):
            source = os.path.join(owner_dir, entry)
            if not entry.endswith(".git") or os.path.islink(source) or not is_bare_repository(source):
                continue
            target = os.path.join(root, tenant, owner, entry)
            if os.path.exists(target):
                logger.warning("git: %s/%s of the old layout stays where it is: %s exists already",
                               owner, entry, target)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(source, target)
            moved.append(f"{owner}/{entry[:-4]}")
            logger.warning("git: moved the repository %s/%s of the old shared layout into the tenant %s (%s)",
                           owner, entry, tenant, target)
        try:
            os.rmdir(owner_dir)  # only when it is empty now
        except OSError:
            pass
    return moved


def migrate_all(db, app_log=log) -> None:
    """Every type-6 git server: its old flat layout into its first tenant (the lowest id that
    uses it), at start."""
    for server in db.scalars(select(GitServer).where(GitServer.service_type == GIT_LOCAL)).all():
        users = sorted((t for t in db.scalars(select(Tenant)).all()
                        if t.default_git_id == server.id or server in t.git_servers), key=lambda t: t.id)
        if users:
            migrate_flat_layout(file_url_path(server.repository_url), users[0].name, app_log)


# ------------------------------------------------------------------ handler
@web.stream_request_body
class GitHttpHandler(web.RequestHandler):
    """git smart HTTP for the embedded git server (see the module's docstring)."""

    process: asyncio.subprocess.Process | None = None
    refusal: Refusal | None = None
    repo_path: str | None = None
    request_info: GitRequest | None = None
    user: str = ""
    _output: asyncio.Queue | None = None
    _stderr: bytes = b""

    @property
    def kqi(self):
        return self.settings["kqi"]

    def check_xsrf_cookie(self):
        return None  # git sends no cookies: credentials are in every request

    async def prepare(self):
        self.request.connection.set_max_body_size(self.kqi.git_max_push_bytes)
        try:
            await self._admit()
            await self._start()
        except Refusal as e:
            # answered once the body is read: a reply while git still sends makes the proxy
            # drop the connection (git then reports a broken pipe instead of the reason)
            self.refusal = e

    async def _admit(self) -> None:
        rest = self.path_args[0] if self.path_args else ""
        request = parse_request(rest, self.request.method, self.get_query_argument("service", None))
        name, secret = basic_credentials(self.request.headers.get("Authorization", ""))
        if not secret:
            raise Refusal(401, "Sign in: your hub user name and a hub API token (or a job's KQI_TOKEN).")
        db = self.settings["session_factory"]()
        try:
            if secret.startswith("kqi-job."):
                member_of, job = await self._job_tenants(db, secret), True
            else:
                member_of, job = await self._user_tenants(name, secret, db), False
            tenant = db.scalar(select(Tenant).where(Tenant.name == request.tenant))
            uses = tenant is not None and any(serves_embedded(g, self.kqi.data_dir) for g in tenant.git_servers)
        finally:
            db.close()
        decide(request, member_of=member_of, job=job, tenant_exists=tenant is not None, tenant_uses_server=uses)
        path = repository_path(embedded_root(self.kqi.data_dir), request)
        if not is_bare_repository(path):
            if request.action != WRITE or request.endpoint != "info/refs":
                raise Refusal(404, f"Repository {request.tenant}/{request.owner}/{request.repository} is not found"
                                   " (or you are not a member of its tenant).")
            await asyncio.to_thread(create_repository, path)
            self.kqi.log.info("git: %s created the repository %s/%s/%s by a push", self.user, request.tenant,
                              request.owner, request.repository)
        self.request_info, self.repo_path = request, path

    async def _user_tenants(self, name: str | None, token: str, db=None) -> set[str]:
        hub_auth = self.kqi.hub_auth
        try:
            model = await hub_auth.user_for_token(token, sync=False)
        except web.HTTPError as e:
            if e.status_code >= 500:
                raise Refusal(503, "The hub cannot check the token now: try again in a moment.")
            model = None
        if not model or model.get("kind", "user") != "user" or (name and model.get("name") != name):
            raise Refusal(401, "The user name and token do not match a hub user: use your hub user name and"
                               " one of your hub API tokens.")
        if not hub_auth.check_scopes(hub_auth.access_scopes, model):
            raise Refusal(403, "This token does not give access to the kqi service.")
        identity = identity_from_model(model)
        servers = notebook_servers(model)
        if servers and db is not None:  # a notebook server's own token: its notebook's tenant only
            from .api.base import notebook_tenants

            identity = notebook_identity(identity, notebook_tenants(db, model["name"], servers))
        self.user = identity.name
        return set(identity.tenants)

    async def _job_tenants(self, db, token: str) -> set[str]:
        job = self.kqi.jobs.job_for_token(db, token)
        tenant = db.get(Tenant, job.tenant_id) if job is not None else None
        if tenant is None:
            raise Refusal(401, "This job token is not valid: its job has ended or it never existed.")
        try:
            owner = await self.kqi.hub.get_user_cached(job.created_by, self.kqi.hub_auth_cache_seconds)
        except HubError:
            raise Refusal(503, "The hub cannot check the job's owner now: try again in a moment.")
        identity = job_identity(owner, tenant.name)
        if identity is None:
            raise Refusal(403, f"This job token no longer works: the job's owner is no longer a member of the"
                               f" tenant {tenant.name}.")
        self.user = f"{job.created_by} (job {job.key})"
        return set(identity.tenants)

    async def _start(self) -> None:
        request, headers = self.request_info, self.request.headers
        env = {
            **_git_env(),
            "GIT_PROJECT_ROOT": os.path.dirname(os.path.dirname(self.repo_path)),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{request.owner}/{request.repository}.git/{request.endpoint}",
            "REQUEST_METHOD": self.request.method,
            "QUERY_STRING": self.request.query,
            "CONTENT_TYPE": headers.get("Content-Type", ""),
            "REMOTE_USER": self.user,  # also what lets git http-backend take pushes
            "REMOTE_ADDR": self.request.remote_ip or "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        if headers.get("Content-Length") and "chunked" not in headers.get("Transfer-Encoding", "").lower():
            env["CONTENT_LENGTH"] = headers["Content-Length"]
        if headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = headers["Content-Encoding"]
        if headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = headers["Git-Protocol"]
        try:
            self.process = await asyncio.create_subprocess_exec(
                "git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            raise Refusal(503, f"git cannot run on the service host: {e}")
        self._output = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read_output())
        self._errors = asyncio.ensure_future(self._read_errors())

    async def _read_output(self) -> None:
        while True:
            chunk = await self.process.stdout.read(CHUNK)
            await self._output.put(chunk)
            if not chunk:
                return

    async def _read_errors(self) -> None:
        self._stderr = (await self.process.stderr.read())[-4000:]

    async def data_received(self, chunk: bytes):
        if self.process is not None and self.process.stdin is not None:
            try:
                self.process.stdin.write(chunk)
                await self.process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # git stopped reading: its answer says why

    async def get(self, _rest):
        await self._answer()

    async def post(self, _rest):
        await self._answer()

    async def _answer(self) -> None:
        if self.refusal is not None:
            return self.refuse(self.refusal.status, self.refusal.message)
        try:
            self.process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            chunk = await self._output.get()
            if not chunk:
                break
            head += chunk
        sep = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
        header_block, _, body = head.partition(sep)
        status = 200
        for line in header_block.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if not key:
                continue
            if key.lower() == "status":
                try:
                    status = int(value.split()[0])
                except (ValueError, IndexError):
                    status = 500
            else:
                self.set_header(key, value)
        self.set_status(status)
        if body:
            self.write(body)
            await self.flush()
        while True:
            chunk = await self._output.get()
            if not chunk:
                break
            self.write(chunk)
            await self.flush()
        code = await self.process.wait()
        await self._errors
        self.process = None
        if code != 0 or status >= 400:
            self.kqi.log.warning("git: %s %s/%s/%s %s ended with %s: %s", self.user, self.request_info.tenant,
                                 self.request_info.owner, self.request_info.repository, self.request_info.endpoint,
                                 code, self._stderr.decode(errors="replace").strip()[-500:])
        if self.request_info.endpoint == "git-receive-pack":
            await asyncio.to_thread(fix_head, self.repo_path)
            self.kqi.log.info("git: %s pushed to %s/%s/%s", self.user, self.request_info.tenant,
                              self.request_info.owner, self.request_info.repository)
        self.finish()

    def refuse(self, status: int, message: str) -> None:
        """git shows a text/plain answer to its user ("remote: ..."); other clients get the
        API's JSON error shape."""
        self.clear()
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", REALM)
        if status == 405:
            self.set_header("Allow", "GET, POST")
        if self.request.headers.get("User-Agent", "").startswith("git/"):
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish(message + "\n")
        else:
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"type": f"https://httpstatuses.io/{status}", "title": responses.get(status, "Error"),
                                    "status": status, "detail": message, "instance": self.request.path,
                                    "errors": {}}))

    def write_error(self, status_code: int, **kwargs):
        self.refuse(status_code, responses.get(status_code, "Error"))

    def on_connection_close(self):
        self._kill()

    def on_finish(self):
        self._kill()

    def _kill(self):
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
        self.process = None


def make_handlers(service_prefix: str) -> list:
    return [(url_path_join(service_prefix, "git/") + "(.*)", GitHttpHandler)]

