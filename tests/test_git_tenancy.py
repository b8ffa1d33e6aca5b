"""The embedded git server's repositories belong to a tenant, on a real KQI Hub.

Users push and clone with plain git over the kqi service's smart HTTP address
(<service>/git/<tenant>/<owner>/<repository>.git, HTTP Basic: hub user name + token, which
git asks its askpass program for after the 401), browse through the API, and trainings
clone at a commit in podman. Another tenant is refused everywhere: the API, git over HTTP
(with a user's token and with its own job's token), a training's clone.
"""
from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import uuid

import pytest
import requests

from kqi_services import gitserver
from kqi_services.gitserver import GitRequest, Refusal, decide, parse_request

from .platform import GIT_IDENTITY, create_data, tenant_user, user_hub_token, wait_job

ENDED = ("Completed", "Failed", "Killed", "Error")


# ------------------------------------------------------------------------------ pure rules
def test_addresses_of_the_smart_protocol_only():
    r = parse_request("team-a/alice/model.git/info/refs", "GET", "git-upload-pack")
    assert (r.tenant, r.owner, r.repository, r.endpoint, r.action) == ("team-a", "alice", "model", "info/refs", "read")
    assert parse_request("team-a/alice/model/git-receive-pack", "POST", None).action == "write"
    for path, method, service, status in [
        ("team-a/alice/model.git/info/refs", "GET", None, 404),  # the dumb protocol
        ("team-a/alice/model.git/HEAD", "GET", None, 404),
        ("team-a/alice/model.git/objects/info/packs", "GET", None, 404),
        ("team-a/alice/model.git/git-upload-pack", "GET", None, 405),
        ("Team/alice/model.git/info/refs", "GET", "git-upload-pack", 404),  # not a tenant name
        ("team-a/../model.git/info/refs", "GET", "git-upload-pack", 404),
        ("team-a/a/b/model.git/info/refs", "GET", "git-upload-pack", 404),
        ("team-a/alice/.git/info/refs", "GET", "git-upload-pack", 404),
    ]:
        with pytest.raises(Refusal) as e:
            parse_request(path, method, service)
        assert e.value.status == status, path


def test_access_rule():
    read = GitRequest("a", "o", "r", "info/refs", "read")
    write = GitRequest("a", "o", "r", "git-receive-pack", "write")
    kw = {"tenant_exists": True, "tenant_uses_server": True}
    decide(read, member_of={"a"}, job=False, **kw)
    decide(write, member_of={"a", "b"}, job=False, **kw)
    decide(read, member_of={"a"}, job=True, **kw)
    for request, member_of, job, extra, status in [
        (read, {"b"}, False, {}, 404), (write, {"b"}, False, {}, 404), (read, set(), True, {}, 404),
        (write, {"a"}, True, {}, 403), (read, {"a"}, False, {"tenant_uses_server": False}, 404),
        (read, {"a"}, False, {"tenant_exists": False}, 404),
    ]:
        with pytest.raises(Refusal) as e:
            decide(request, member_of=member_of, job=job, **{**kw, **extra})
        assert e.value.status == status


def _bare(path: str, work: str) -> str:
    subprocess.run(["git", *GIT_IDENTITY, "init", "-q", work], check=True)
    with open(os.path.join(work, "f"), "w") as f:
        f.write("x")
    subprocess.run(["git", *GIT_IDENTITY, "-C", work, "add", "f"], check=True)
    subprocess.run(["git", *GIT_IDENTITY, "-C", work, "commit", "-qm", "x"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", work, path], check=True)
    return path


def test_old_shared_layout_moves_into_the_first_tenant(tmp_path):
    root = tmp_path / "git"
    _bare(str(root / "alice" / "model.git"), str(tmp_path / "w1"))
    _bare(str(root / "bob" / "tools.git"), str(tmp_path / "w2"))
    _bare(str(root / "sandbox" / "carol" / "kept.git"), str(tmp_path / "w3"))  # the new layout already
    _bare(str(root / "sandbox" / "bob" / "tools.git"), str(tmp_path / "w4"))  # a clash: left in place
    (root / "alice" / "notes.txt").write_text("not a repository")
    moved = gitserver.migrate_flat_layout(str(root), "sandbox")
    assert moved == ["alice/model"]
    assert (root / "sandbox" / "alice" / "model.git" / "HEAD").is_file()
    assert not (root / "alice" / "model.git").exists() and (root / "alice" / "notes.txt").exists()
    assert (root / "bob" / "tools.git" / "HEAD").is_file()  # its target existed
    assert (root / "sandbox" / "carol" / "kept.git" / "HEAD").is_file()
    assert gitserver.migrate_flat_layout(str(root), "sandbox") == []  # once only


# --------------------------------------------------------------------------- the platform
class Git:
    """Plain git as a user runs it, isolated from this machine's configuration; credentials
    come from an askpass program when the server asks (401)."""

    def __init__(self, tmp: str, user: str | None = None, token: str | None = None):
        self.tmp = tmp
        askpass = os.path.join(tmp, f"askpass-{uuid.uuid4().hex[:6]}")
        with open(askpass, "w") as f:
            f.write('#!/bin/sh\ncase "$1" in Username*) echo "$KQI_GIT_USER";; *) echo "$KQI_GIT_TOKEN";; esac\n')
        os.chmod(askpass, os.stat(askpass).st_mode | stat.S_IXUSR)
        self.env = {"PATH": os.environ["PATH"], "HOME": tmp, "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LANG": "C"}
        if user is not None:
            self.env.update(GIT_ASKPASS=askpass, KQI_GIT_USER=user, KQI_GIT_TOKEN=token or "")

    def run(self, *args: str, cwd: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, env=self.env, capture_output=True,
                                text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result


def url_of(platform, tenant: str, owner: str, repository: str) -> str:
    return f"{platform.service_url}/git/{tenant}/{owner}/{repository}.git"


def push_model(git: Git, url: str, work: str, versions: list[str]) -> list[str]:
    """A new work tree whose commits (one per version, on main) are pushed to `url`; their ids."""
    git.run("init", "-q", "-b", "main", work)
    commits = []
    for version in versions:
        with open(os.path.join(work, "VERSION"), "w") as f:
            f.write(version + "\n")
        git.run("add", "VERSION", cwd=work)
        git.run("commit", "-qm", f"model {version}", cwd=work)
        commits.append(git.run("rev-parse", "HEAD", cwd=work).stdout.strip())
    git.run("push", "-q", url, "main", cwd=work)
    return commits


class World:
    def __init__(self, platform, tmp: str):
        self.platform, self.tmp = platform, tmp
        self.a = tenant_user(platform)
        self.b = tenant_user(platform)
        self.git_a = Git(tmp, self.a.name, self.a.token)
        self.git_b = Git(tmp, self.b.name, self.b.token)
        self.owner, self.name = self.a.name, f"model-{uuid.uuid4().hex[:6]}"
        self.url = url_of(platform, self.a.tenant["name"], self.owner, self.name)
        self.commits = push_model(self.git_a, self.url, os.path.join(tmp, "work-a"), ["v1", "v2"])
        self.bare = os.path.join(platform.data_dir, "git", self.a.tenant["name"], self.owner, self.name + ".git")
        # tenant B's own repository of the same owner and name
        self.url_b = url_of(platform, self.b.tenant["name"], self.owner, self.name)
        self.commits_b = push_model(self.git_b, self.url_b, os.path.join(tmp, "work-b"), ["b1"])

    def basic(self, user: str, token: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode(),
                "User-Agent": "git/2.39.5"}

    def training(self, user, name: str, entry: str, owner: str, repository: str, commit: str | None) -> int:
        data = create_data(user, f"{name}-data", {"x.txt": b"x"})
        dataset = user.api("POST", "/datasets", json={"name": f"{name}-ds", "entries": {
            "training": [{"id": data["id"]}], "testing": [], "validation": []}}).json()
        git_model = {"owner": owner, "repository": repository}
        if commit:
            git_model["commitId"] = commit
        r = user.api("POST", "/training/run", json={
            "name": name, "dataSetId": dataset["id"], "containerImage": {"image": "python", "tag": "3.11"},
            "gitModel": git_model, "entryPoint": entry, "cpu": 0.5, "memory": 0.5, "gpu": 0})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def output(self, user, job_id: int, name: str) -> str:
        r = user.api("GET", f"/training/{job_id}/container-files", params={"path": "/"})
        names = {f["fileName"] for f in r.json().get("files", [])}
        assert name in names, (name, r.text)
        from .platform import job_output_dir, job_row_id

        with open(os.path.join(job_output_dir(self.platform, user.tenant, job_row_id(user, job_id)), name)) as f:
            return f.read()


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    return World(platform, str(tmp_path_factory.mktemp("git-tenancy")))


def test_a_push_over_http_makes_the_tenants_repository(world):
    assert os.path.isfile(os.path.join(world.bare, "HEAD"))
    # HEAD follows the pushed branch (the repository was made by the push)
    head = subprocess.run(["git", "--git-dir", world.bare, "symbolic-ref", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert head == "refs/heads/main"
    # nothing of tenant A's repository is in the shared folder or in tenant B's
    assert not os.path.exists(os.path.join(world.platform.data_dir, "git", world.owner, world.name + ".git"))
    clone = os.path.join(world.tmp, "clone-a")
    world.git_a.run("clone", "-q", world.url, clone)
    assert open(os.path.join(clone, "VERSION")).read() == "v2\n"
    # a hub API token of the user (not only the kqi login token) works too
    hub_token = user_hub_token(world.platform, world.a.name, world.a.password)
    world_git = Git(world.tmp, world.a.name, hub_token)
    assert world_git.run("ls-remote", world.url).stdout.split()[0] == world.commits[1]
    # a later push (fast-forward) over the same address
    work = os.path.join(world.tmp, "work-a")
    with open(os.path.join(work, "VERSION"), "w") as f:
        f.write("v3\n")
    world.git_a.run("commit", "-qam", "model v3", cwd=work)
    world.git_a.run("push", "-q", world.url, "main", cwd=work)
    world.commits.append(world.git_a.run("rev-parse", "HEAD", cwd=work).stdout.strip())
    assert world.git_a.run("ls-remote", world.url, "main").stdout.split()[0] == world.commits[2]


def test_the_tenant_browses_its_repository_through_the_api(world):
    a = world.a
    repos = a.api("GET", "/git/1/repos").json()
    assert {"owner": world.owner, "name": world.name, "fullName": f"{world.owner}/{world.name}"} in repos
    base = f"/git/1/repos/{world.owner}/{world.name}"
    branches = a.api("GET", f"{base}/branches").json()
    assert [b["branchName"] for b in branches] == ["main"]
    commits = a.api("GET", f"{base}/commits", params={"branch": "main"}).json()
    assert [c["commitId"] for c in commits][-2:] == [world.commits[1], world.commits[0]]
    r = a.api("GET", f"{base}/commits/{world.commits[0]}")
    assert r.status_code == 200 and r.json()["comment"].startswith("model v1"), r.text


def test_another_tenant_is_refused_over_the_api(world):
    b = world.b
    listed = b.api("GET", "/git/1/repos").json()
    assert listed == [{"owner": world.owner, "name": world.name, "fullName": f"{world.owner}/{world.name}"}]
    base = f"/git/1/repos/{world.owner}/{world.name}"
    # the same owner/name in tenant B is B's own repository: A's commits are not found there
    r = b.api("GET", f"{base}/commits/{world.commits[0]}")
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == f"Commit {world.commits[0]} of {world.owner}/{world.name} is not found."
    assert [c["commitId"] for c in b.api("GET", f"{base}/commits").json()] == world.commits_b
    # A user of a tenant with no repositories lists nothing and finds nothing
    c = tenant_user(world.platform)
    assert c.api("GET", "/git/1/repos").json() == []
    for path in ("/branches", "/commits", f"/commits/{world.commits[0]}"):
        r = c.api("GET", base + path)
        assert r.status_code == 404, (path, r.text)
        assert set(r.json()) >= {"type", "title", "status", "detail", "instance", "errors"}


def test_another_tenant_is_refused_over_git(world):
    # clone, ls-remote and push of tenant A's address with B's credentials: not found
    refused = world.git_b.run("clone", "-q", world.url, os.path.join(world.tmp, "clone-b"), check=False)
    assert refused.returncode != 0 and "not found" in refused.stderr, refused.stderr
    assert not os.path.exists(os.path.join(world.tmp, "clone-b", "VERSION"))
    work = os.path.join(world.tmp, "work-b")
    pushed = world.git_b.run("push", "-q", world.url, "main", cwd=work, check=False)
    assert pushed.returncode != 0, pushed.stderr
    assert world.git_a.run("ls-remote", world.url, "main").stdout.split()[0] == world.commits[-1]
    # nor can B make a repository in A's folder
    new = url_of(world.platform, world.a.tenant["name"], world.b.name, "planted")
    planted = world.git_b.run("push", "-q", new, "main", cwd=work, check=False)
    assert planted.returncode != 0
    assert not os.path.exists(os.path.join(world.platform.data_dir, "git", world.a.tenant["name"], world.b.name))
    # the raw answers: 404 for every endpoint, with the reason git shows its user
    for method, endpoint, params in (("GET", "info/refs", {"service": "git-upload-pack"}),
                                     ("GET", "info/refs", {"service": "git-receive-pack"}),
                                     ("POST", "git-upload-pack", None), ("POST", "git-receive-pack", None)):
        r = requests.request(method, f"{world.url}/{endpoint}", params=params, data=b"0000",
                             headers=world.basic(world.b.name, world.b.token), timeout=30)
        assert r.status_code == 404, (endpoint, r.status_code, r.text)
        assert "not a member of its tenant" in r.text
    # A's token under B's name is no credential; B's under A's name neither
    r = requests.get(f"{world.url}/info/refs", params={"service": "git-upload-pack"},
                     headers=world.basic(world.b.name, world.a.token), timeout=30)
    assert r.status_code == 401
    r = requests.get(f"{world.url}/info/refs", params={"service": "git-upload-pack"},
                     headers=world.basic(world.a.name, world.b.token), timeout=30)
    assert r.status_code == 401


def test_anonymous_git_is_refused(world):
    anonymous = Git(world.tmp)
    r = anonymous.run("clone", "-q", world.url, os.path.join(world.tmp, "clone-anon"), check=False)
    assert r.returncode != 0 and "could not read Username" in r.stderr, r.stderr
    for bad in ({}, {"Authorization": "Basic !!"}, {**world.basic(world.a.name, "not-a-token"), "User-Agent": "curl/8"},
                {"Authorization": "Bearer kqi-job.1.nothing"}):
        r = requests.get(f"{world.url}/info/refs", params={"service": "git-upload-pack"}, headers=bad, timeout=30)
        assert r.status_code == 401, (bad, r.status_code, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
        assert r.json()["status"] == 401 and r.json()["detail"]  # the API's error shape for non-git clients
    r = requests.get(f"{world.url}/info/refs", params={"service": "git-upload-pack"}, timeout=30,
                     headers={"User-Agent": "git/2.39.5"})
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("text/plain")  # git shows it
    assert "hub user name and a hub API token" in r.text
    # a nonexistent tenant's address answers as one the caller is not in (nothing to learn)
    r = requests.get(url_of(world.platform, "no-such-tenant", "x", "y") + "/info/refs",
                     params={"service": "git-upload-pack"}, headers=world.basic(world.a.name, world.a.token),
                     timeout=30)
    assert r.status_code == 404


# the job: lists what of the git server the container sees, then clones over HTTP with its own
# KQI_TOKEN (a header from the environment: never on a command line), then tries to push
JOB = """\
set -u
cd /kqi/git
cat VERSION > /kqi/output/version.txt
git rev-parse HEAD > /kqi/output/head.txt
ls -1 {git_root} > /kqi/output/visible.txt 2>&1 || true
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: Bearer $KQI_TOKEN"
export GIT_TERMINAL_PROMPT=0
if git clone -q "$KQI_SERVER/git/{tenant}/{owner}/{name}.git" /tmp/http-clone > /kqi/output/clone.txt 2>&1
then echo cloned >> /kqi/output/clone.txt; else echo refused >> /kqi/output/clone.txt; fi
cd /kqi/git && git -c user.name=j -c user.email=j@x commit -q --allow-empty -m job
if git push -q "$KQI_SERVER/git/{own_tenant}/{owner}/{name}.git" HEAD:refs/heads/from-job > /kqi/output/push.txt 2>&1
then echo pushed >> /kqi/output/push.txt; else echo refused >> /kqi/output/push.txt; fi
"""


def test_trainings_clone_their_tenants_repository_only(world):
    git_root = os.path.join(world.platform.data_dir, "git")
    a_tenant, b_tenant = world.a.tenant["name"], world.b.tenant["name"]
    # tenant A at its first commit; its job clones A's repository over HTTP with its own token
    a_job = world.training(world.a, "git-a", JOB.format(git_root=git_root, tenant=a_tenant, own_tenant=a_tenant,
                                                        owner=world.owner, name=world.name),
                           world.owner, world.name, world.commits[0])
    # tenant B's job (B's own repository) tries A's repository over HTTP with B's job token
    b_job = world.training(world.b, "git-b", JOB.format(git_root=git_root, tenant=a_tenant, own_tenant=b_tenant,
                                                        owner=world.owner, name=world.name),
                           world.owner, world.name, None)
    a_done = wait_job(world.a, a_job, ENDED, timeout=240)
    b_done = wait_job(world.b, b_job, ENDED, timeout=240)
    assert a_done["status"] == "Completed", (a_done.get("conditionNote"), world.platform.log_tail(30))
    assert b_done["status"] == "Completed", b_done.get("conditionNote")
    assert a_done["gitModel"]["commitId"] == world.commits[0]
    assert world.output(world.a, a_job, "version.txt") == "v1\n"  # the commit asked for, not the head
    assert world.output(world.a, a_job, "head.txt").strip() == world.commits[0]
    assert world.output(world.b, b_job, "head.txt").strip() == world.commits_b[0]  # B's own repository
    # the container sees its tenant's folder of the git server only (the one repository, read-only)
    assert world.output(world.a, a_job, "visible.txt").split() == [a_tenant]
    assert world.output(world.b, b_job, "visible.txt").split() == [b_tenant]
    assert world.output(world.a, a_job, "clone.txt").strip().endswith("cloned")
    refused = world.output(world.b, b_job, "clone.txt")
    assert refused.strip().endswith("refused") and "not found" in refused, refused
    # a job token only fetches: its push to its own tenant's repository is refused (403)
    push = world.output(world.a, a_job, "push.txt")
    assert push.strip().endswith("refused") and "403" in push, push
    assert "from-job" not in world.git_a.run("ls-remote", world.url).stdout
    # no token in the job's log
    log = world.a.api("GET", f"/training/{a_job}/log")
    assert log.status_code == 200 and f"at {world.commits[0]}" in log.text, log.text[-2000:]
    assert not re.search(r"kqi-job\.[0-9]+\.[A-Za-z0-9_-]{20}", log.text), log.text
    assert "Authorization: Basic" not in log.text and "Bearer kqi" not in log.text


def test_a_training_of_another_tenant_cannot_name_the_repository(world):
    c = tenant_user(world.platform)
    data = create_data(c, "c-data", {"x.txt": b"x"})
    dataset = c.api("POST", "/datasets", json={"name": "c-ds", "entries": {"training": [{"id": data["id"]}]}}).json()
    r = c.api("POST", "/training/run", json={
        "name": "steal", "dataSetId": dataset["id"], "containerImage": {"image": "python", "tag": "3.11"},
        "gitModel": {"owner": world.owner, "repository": world.name, "commitId": world.commits[0]},
        "entryPoint": "true", "cpu": 0.5, "memory": 0.5, "gpu": 0})
    assert r.status_code == 400, r.text
    assert "does not exist" in r.json()["errors"]["gitModel.repository"][0]


def test_the_old_shared_layout_moves_into_the_first_tenant_at_start(world, platform):
    """A repository left in <data dir>/git/<owner>/<repo>.git (before repositories belonged to a
    tenant) is the first tenant's (sandbox) after a restart, and only its."""
    owner, name = f"legacy-{uuid.uuid4().hex[:6]}", "model"
    old = _bare(os.path.join(platform.data_dir, "git", owner, name + ".git"), os.path.join(world.tmp, "legacy"))
    platform.restart()
    assert not os.path.exists(old)
    assert os.path.isfile(os.path.join(platform.data_dir, "git", "sandbox", owner, name + ".git", "HEAD"))
    assert f"moved the repository {owner}/{name}.git of the old shared layout into the tenant sandbox" in \
        open(platform.log_path, errors="replace").read()
    name_s, password = platform.create_user(tenants=["sandbox"])
    sandbox = platform.login(name_s, password)
    repos = platform.api("GET", "/git/1/repos", sandbox).json()
    assert {"owner": owner, "name": name, "fullName": f"{owner}/{name}"} in repos
    for user in (world.a, world.b):
        token = platform.login(user.name, user.password, user.tenant["id"])
        assert platform.api("GET", f"/git/1/repos/{owner}/{name}/branches", token).status_code == 404
