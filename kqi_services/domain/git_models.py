"""Model repositories: where a repository of a git server lives, and which commit to run.

A commit wins over a branch; with no commit, the branch head (the repository's default
branch when no branch is given) is resolved at submit time and stored, so a job always
records the exact commit it ran.
"""
from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile

from ..db.models import GitServer
from .validation import ValidationError

LOCAL_BARE = 6
NAME_PART = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")


def check_repository_name(owner: str, repository: str) -> None:
    errors = {}
    for field, value in (("owner", owner), ("repository", repository)):
        if not isinstance(value, str) or not NAME_PART.match(value) or ".." in value:
            errors[f"gitModel.{field}"] = ["letters, digits, '_', '-' and '.' (no '..'), at most 100"]
    if errors:
        raise ValidationError(errors)


def repository_url(server: GitServer, owner: str, repository: str, *, tenant: str | None = None) -> str:
    """Where a job clones from. A type-6 server's repositories belong to a tenant:
    <root>/<tenant>/<owner>/<repository>.git, so the tenant's name is required there."""
    check_repository_name(owner, repository)
    base = server.repository_url.rstrip("/")
    if server.service_type == LOCAL_BARE:
        from .infra import tenant_git_root

        base = tenant_git_root(base, tenant)
    suffix = repository if repository.endswith(".git") else repository + ".git"
    return f"{base}/{owner}/{suffix}"


def local_path(url: str) -> str | None:
    return url[len("file://"):] if url.startswith("file://") else None


def _git(args: list[str], token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    if token:
        # the token travels in the environment (GIT_CONFIG_*), never on the command line (ps shows it)
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=timeout, env=env)


def resolve_commit(url: str, branch: str | None, commit: str | None, token: str | None = None) -> tuple[str, str | None]:
    """(full commit id, branch) to run; raises ValidationError with a clear message."""
    path = local_path(url)
    if path is not None and not os.path.isdir(path):
        # (named by owner/repository: the server's folder is not the user's business)
        name = "/".join(url.rstrip("/").split("/")[-2:]).removesuffix(".git")
        raise ValidationError({"gitModel.repository": [f"the repository {name} does not exist on this git server"]})
    if commit:
        if not COMMIT.match(commit):
            raise ValidationError({"gitModel.commitId": ["a commit id is 4 to 40 hexadecimal digits"]})
        if path is not None:
            run = _git(["--git-dir", path, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"])
            if run.returncode != 0:
                raise ValidationError({"gitModel.commitId": [f"the repository has no commit {commit}"]})
            return run.stdout.strip(), branch
        return _fetch_remote_commit(url, commit, token), branch
    run = _git(["ls-remote", "--symref", url], token=token)
    if run.returncode != 0:
        raise ValidationError({"gitModel.repository": ["the repository cannot be read: " +
                                                       _redact(run.stderr.strip(), token)[:300]]})
    heads, default_branch = {}, None
    for line in run.stdout.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            default_branch = line[len("ref: refs/heads/"):].split("\t")[0]
            continue
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref[len("refs/heads/"):]] = sha
    branch = branch or default_branch or ("master" if "master" in heads else "main")
    if branch not in heads:
        raise ValidationError({"gitModel.branch": [f"the repository has no branch {branch}"]})
    return heads[branch], branch


def _fetch_remote_commit(url: str, commit: str, token: str | None) -> str:
    with tempfile.TemporaryDirectory(prefix="kqi-commit-") as tmp:
        _git(["init", "--quiet", "--bare", tmp])
        run = _git(["--git-dir", tmp, "fetch", "--quiet", "--depth", "1", url, commit], token=token, timeout=120)
        if run.returncode != 0:
            raise ValidationError({"gitModel.commitId": [f"the repository has no commit {commit} (or it cannot be "
                                                         "fetched by id)"]})
        run = _git(["--git-dir", tmp, "rev-parse", "FETCH_HEAD"])
        return run.stdout.strip()


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text
