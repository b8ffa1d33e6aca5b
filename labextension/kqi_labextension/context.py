"""What the notebook knows about itself, and the rules of the extension's own routes: plain
functions (no HTTP), tested in tests/test_labextension_server.py."""
from __future__ import annotations

import os
import posixpath
import subprocess
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit


class RequestError(Exception):
    """A client error of the extension's routes: status and message (and extra JSON fields)."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


# ------------------------------------------------------------------ paths under the root
def inside_root(root: str, relative: str, *, writing: bool = False) -> str:
    """The absolute path of `relative` (a path as the file browser names it, '/' separated) under
    `root`; RequestError 400 when it leaves the root. A path to write to must also stay under the
    root once its symbolic links are followed."""
    if not isinstance(relative, str) or "\0" in relative:
        raise RequestError(400, "A path must be a text without NUL characters.")
    if relative.startswith("/") or relative.startswith("\\") or (len(relative) > 1 and relative[1] == ":"):
        raise RequestError(400, f"The path {relative!r} must be relative to the server's root folder.")
    clean = posixpath.normpath(relative.replace("\\", "/")) if relative else "."
    if clean == ".." or clean.startswith("../"):
        raise RequestError(400, f"The path {relative!r} leaves the server's root folder.")
    root = os.path.abspath(root)
    path = root if clean == "." else os.path.join(root, *clean.split("/"))
    if writing:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise RequestError(400, f"The path {relative!r} leads out of the server's root folder.")
    return path


def relative_to_root(root: str, path: str) -> str:
    return os.path.relpath(path, os.path.abspath(root)).replace(os.sep, "/")


def safe_file_name(name: str) -> str:
    """A data file's name as a single file name (no folders, no '..')."""
    base = posixpath.basename((name or "").replace("\\", "/"))
    if base in ("", ".", "..") or "\0" in base:
        raise RequestError(502, f"The kqi service named a file {name!r}, which is not a file name.")
    return base


# ------------------------------------------------------------------ git
def _git(path: str, *args: str) -> str | None:
    try:
        run = subprocess.run(["git", "-c", "safe.directory=*", "-C", path, *args], capture_output=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout.decode("utf-8", "replace") if run.returncode == 0 else None


def without_credentials(url: str) -> str:
    """A remote's URL without a user name or password in it (a clone URL may carry a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme in ("http", "https", "ssh", "git") and (parts.username or parts.password):
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def git_repository(path: str) -> dict | None:
    """{path, url, branch, commit, dirty} of the git work tree at `path`, None when it is none."""
    top = _git(path, "rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(top.strip()) != os.path.realpath(path):
        return None
    commit = (_git(path, "rev-parse", "--verify", "-q", "HEAD") or "").strip() or None
    branch = (_git(path, "symbolic-ref", "--short", "-q", "HEAD") or "").strip() or None
    url = without_credentials((_git(path, "remote", "get-url", "origin") or "").strip()) or None
    status = _git(path, "status", "--porcelain=v1", "-z", "--untracked-files=all") or ""
    dirty, entries, i = [], status.split("\0"), 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        dirty.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy names its source next
            i += 1
    return {"path": path, "url": url, "branch": branch, "commit": commit, "dirty": sorted(dirty)}


def git_repositories(roots: list[str]) -> list[dict]:
    """The repositories of `roots`: a root that is a work tree, else its sub-folders that are."""
    found, seen = [], set()

    def add(path):
        real = os.path.realpath(path)
        if real in seen or not os.path.isdir(path):
            return
        if not os.path.exists(os.path.join(path, ".git")):
            return
        repo = git_repository(path)
        if repo is not None:
            seen.add(real)
            found.append(repo)

    for root in roots:
        if not os.path.isdir(root):
            continue
        if os.path.exists(os.path.join(root, ".git")):
            add(root)
            continue
        try:
            children = sorted(os.listdir(root))
        except OSError:
            continue
        for name in children:
            if not name.startswith("."):
                add(os.path.join(root, name))
    return found


def with_model_branch(repositories: list[dict], model: dict | None) -> list[dict]:
    """The repositories with the notebook's gitModel branch on a work tree whose HEAD is detached at
    that model's commit (the platform checks /kqi/git out at the commit, so git itself names no
    branch there); other repositories, and one moved to another commit, stay as git says."""
    branch, commit = (model or {}).get("branch"), (model or {}).get("commitId")
    if not branch or not commit:
        return repositories
    return [{**repo, "branch": branch}
            if repo.get("branch") is None and len(str(commit)) >= 7 and (repo.get("commit") or "").startswith(str(commit))
            else repo
            for repo in repositories]


def notebook_repositories(cfg, root: str) -> list[dict]:
    """The notebook's repositories (its git roots and the server's root) as the context shows them."""
    return with_model_branch(git_repositories(list(cfg.git_roots) + [root]), cfg.git_model_dict())


# ------------------------------------------------------------------ the notebook's facts
def _int_or_none(text) -> int | None:
    try:
        return int(text) if str(text).strip() else None
    except (TypeError, ValueError):
        return None


def iso_time(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch else None


def notebook_context(cfg, root: str, tenant: dict | None = None, now: float | None = None) -> dict:
    """GET kqi/context: the notebook's tenant (`tenant`: as the service named it), dataset, mounts,
    image, lifetime and repositories."""
    now = time.time() if now is None else now
    expires = cfg.expires_at or None
    tenant = tenant or {}
    return {
        "tenantId": tenant.get("id") if tenant.get("id") is not None else _int_or_none(cfg.tenant_id),
        "tenantName": (tenant.get("displayName") or tenant.get("name") or cfg.tenant_display_name
                       or cfg.tenant_name or None),
        "user": cfg.user or None,
        "notebookId": _int_or_none(cfg.notebook_id),
        "datasetId": _int_or_none(cfg.dataset_id),
        "trainingIds": list(cfg.training_ids),
        "inferenceIds": list(cfg.inference_ids),
        "image": cfg.image or None,
        "expiresAt": iso_time(expires),
        "secondsLeft": max(0, int(expires - now)) if expires else None,
        "git": notebook_repositories(cfg, root),
        "kqiServer": cfg.kqi_server or None,
    }


# ------------------------------------------------------------------ train from here
def split_image(reference: str) -> dict | None:
    """registry/path:tag → {image, tag} of a training's containerImage (the tenant's default registry
    adds nothing to a reference that names its registry)."""
    if not reference:
        return None
    name, tag = reference, "latest"
    last = reference.rsplit("/", 1)[-1]
    if "@" in last:
        name, tag = reference.split("@", 1)
    elif ":" in last:
        name, tag = reference.rsplit(":", 1)
    return {"image": name, "tag": tag}


def owner_and_repository(url: str | None) -> tuple[str, str] | None:
    """(owner, repository) from a clone URL such as http://host/git/owner/repo.git."""
    if not url:
        return None
    path = urlsplit(url).path if "://" in url else url.split(":", 1)[-1]
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) < 2:
        return None
    repo = parts[-1][:-4] if parts[-1].endswith(".git") else parts[-1]
    return parts[-2], repo


def training_from_here(body: dict, cfg, repositories: list[dict]) -> dict:
    """The body of POST /training/run for 'Train from here': what the caller sent, with the git
    repository (its branch and current commit), the dataset and the image of the notebook where the
    caller left them out. RequestError 409 names the uncommitted files unless allowDirty is true."""
    if not isinstance(body, dict):
        raise RequestError(400, "The body must be a JSON object.")
    request = {k: v for k, v in body.items() if k not in ("allowDirty", "repositoryPath")}
    wanted = body.get("repositoryPath")
    repo = None
    if wanted:
        repo = next((r for r in repositories if r["path"] == wanted
                     or os.path.realpath(r["path"]) == os.path.realpath(str(wanted))), None)
        if repo is None:
            raise RequestError(400, f"{wanted} is not a git repository of this notebook.")
    elif repositories:
        repo = repositories[0]
    if repo is not None and repo["dirty"] and body.get("allowDirty") is not True:
        raise RequestError(409, f"The repository {repo['path']} has uncommitted changes: commit and push them,"
                                " or submit anyway (allowDirty) to train the last commit without them.",
                           dirty=repo["dirty"], path=repo["path"])
    if not request.get("gitModel"):
        model = dict(cfg.git_model_dict() or {})
        if not model.get("repository") and repo is not None:
            names = owner_and_repository(repo.get("url"))
            if names:
                model = {"owner": names[0], "repository": names[1]}
        if not model.get("repository"):
            raise RequestError(400, "The notebook has no model repository: name one (gitModel).")
        if repo is not None:
            if repo.get("commit"):
                model["commitId"] = repo["commit"]
            if repo.get("branch"):
                model["branch"] = repo["branch"]
        request["gitModel"] = {k: v for k, v in model.items() if v is not None}
    if request.get("dataSetId") is None and _int_or_none(cfg.dataset_id) is not None:
        request["dataSetId"] = int(cfg.dataset_id)
    if not request.get("containerImage") and cfg.image:
        request["containerImage"] = split_image(cfg.image)
    return request
