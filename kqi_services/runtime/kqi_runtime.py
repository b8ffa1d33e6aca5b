#!/usr/bin/env python3
"""The KQI job runtime: what runs inside every training, inference and preprocessing job.

Both backends run this one file (stdlib only, Python 3.8+) in the job's container or pod,
where the job's own folder is /kqi. It performs the guide's flow, step by step:

  1. create /kqi/output
  2. check the tools the flow needs (sh, git; zip is done in Python)
  3. clone the model repository to /kqi/git and check out the commit
  4. lay the dataset out under /kqi/input (symlinks into /kqi/raw, or copies)
  5. run the command through a shell as the container's user with /kqi/git as working
     directory, stdout and stderr tee'd to the log in /kqi/attach
  6. judge success by the exit status
  7. zip /kqi/output to /kqi/attach/output.zip when asked (only after success)
  8. write the result to /kqi/tmp/result.json; the backend reports the end state

For notebooks ("mode": "notebook") steps 3-4 are the same; then JupyterLab is installed
when the image lacks it (the requested version), the links /input /git /parent /inference
are made, the start-up command runs, and the process becomes the notebook server. In
"prepare" mode (a Kubernetes init container) it stops after the preparation.

Usage: kqi_runtime.py /kqi/tmp/spec.json   (or: kqi_runtime.py --spec-env VARIABLE)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:  # the backends place layout.py beside this file
    from layout import COPY, SYMLINK, lay_out  # type: ignore
except ImportError:  # running from the source tree
    from kqi_services.domain.layout import COPY, SYMLINK, lay_out  # type: ignore  # noqa: F401

KQI = os.environ.get("KQI_ROOT", "/kqi")


class StepFailed(Exception):
    pass


class Log:
    """Writes the platform's own lines into the job log (which the command's output shares)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = open(path, "ab", buffering=0)

    def line(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.file.write(f"[kqi {stamp}] {text}\n".encode())
        sys.stdout.write(f"[kqi {stamp}] {text}\n")
        sys.stdout.flush()

    def write(self, data: bytes) -> None:
        self.file.write(data)


def step_output(log: Log) -> None:
    os.makedirs(os.path.join(KQI, "output"), exist_ok=True)
    log.line("created /kqi/output")


#: the guide's tools (学習の実行フロー 6): a Debian/Alpine/Fedora package of each, installed when missing
PACKAGES = {
    "git": {"apt-get": "git", "apk": "git", "dnf": "git", "microdnf": "git", "yum": "git"},
    "zip": {"apt-get": "zip", "apk": "zip", "dnf": "zip", "microdnf": "zip", "yum": "zip"},
    "pip": {"apt-get": "python3-pip", "apk": "py3-pip", "dnf": "python3-pip", "microdnf": "python3-pip",
            "yum": "python3-pip"},
}
KQI_CLI = "kamonohashi-cli==4.0.2"


def _has_pip() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def _install_packages(log: Log, tools: list) -> str:
    """Install Debian/Alpine/Fedora packages for `tools`; returns what went wrong ('' on success)."""
    for manager, update, install in (("apt-get", ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq"]),
                                     ("apk", None, ["apk", "add", "--no-cache"]),
                                     ("dnf", None, ["dnf", "install", "-y", "-q"]),
                                     ("microdnf", None, ["microdnf", "install", "-y"]),
                                     ("yum", None, ["yum", "install", "-y", "-q"])):
        if shutil.which(manager) is None:
            continue
        packages = [PACKAGES[t][manager] for t in tools]
        log.line(f"installing {', '.join(tools)} with {manager} ({' '.join(packages)})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if update:
            subprocess.run(update, env=env, capture_output=True)
        run = subprocess.run(install + packages, env=env, capture_output=True, text=True)
        return "" if run.returncode == 0 else (run.stderr or run.stdout).strip()[-300:]
    return "the image has no package manager (apt-get, apk, dnf, yum)"


def step_tools(log: Log, spec: dict) -> None:
    """The guide's step: git, zip, pip and the KAMONOHASHI CLI, each installed when the image lacks it."""
    wanted = spec.get("tools")
    if wanted is None:  # an older spec: check only
        wanted = ["git"] if spec.get("git") else []
    if shutil.which("sh") is None:
        raise StepFailed("missing tools in the image: sh")
    missing = [t for t in wanted if t in PACKAGES and (not _has_pip() if t == "pip" else shutil.which(t) is None)]
    if missing:
        problem = _install_packages(log, missing)
        still = [t for t in missing if (not _has_pip() if t == "pip" else shutil.which(t) is None)]
        if "git" in still and spec.get("git"):
            raise StepFailed(f"git is missing in the image and could not be installed: {problem}")
        if still:
            log.line(f"warning: could not install {', '.join(still)}: {problem}")
    if "kqi" in wanted:
        if shutil.which("kqi") is None and _has_pip():
            log.line(f"installing {KQI_CLI} (the image has no kqi command)")
            args = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", KQI_CLI]
            run = subprocess.run(args, capture_output=True, text=True)
            if run.returncode != 0 and "externally-managed" in (run.stderr + run.stdout):
                run = subprocess.run(args + ["--break-system-packages"], capture_output=True, text=True)
            if run.returncode != 0:
                log.line("warning: could not install the kqi command: " + (run.stderr or run.stdout).strip()[-300:])
        step_kqi_config(log)
    present = [t for t in ("sh", "git", "zip", "pip", "kqi") if
               (_has_pip() if t == "pip" else shutil.which(t) is not None)]
    log.line("tools present: " + ", ".join(present))


def step_kqi_config(log: Log) -> None:
    """~/.kqi/config.json from KQI_SERVER and KQI_TOKEN, so that `kqi ...` works in the command unchanged."""
    server, token = os.environ.get("KQI_SERVER"), os.environ.get("KQI_TOKEN")
    if not server or not token:
        return
    folder = os.path.join(os.path.expanduser("~"), ".kqi")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, "config.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"server": server, "token": token}, f)
    log.line("kqi CLI configured for this job (~/.kqi/config.json)")


def load_secret_files() -> None:
    """Secret variables given as files (a Kubernetes Secret volume): one file per variable."""
    folder = os.environ.get("KQI_SECRETS_DIR")
    if not folder or not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        with open(path) as f:
            os.environ[name] = f.read()


def step_git(log: Log, spec: dict) -> None:
    git = spec.get("git")
    target = os.path.join(KQI, "git")
    os.makedirs(target, exist_ok=True)
    if not git:
        log.line("no model repository")
        return
    # the repository may belong to another host user than the container's root (a local bare
    # repository mounted read-only): git refuses such "dubious ownership" without safe.directory
    # (git reads safe.directory only from the system or global configuration: a file of the clone's own)
    clone_config = os.path.join(KQI, "tmp", "clone.gitconfig")
    with open(clone_config, "w") as f:
        f.write("[safe]\n\tdirectory = *\n")
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_GLOBAL=clone_config)
    clone_env = dict(env)
    if git.get("token"):
        # the token travels in a header for this one command, given in its environment
        # (GIT_CONFIG_*): never in the URL, on a command line (ps shows it) or on disk
        import base64

        basic = base64.b64encode(f"x-access-token:{git['token']}".encode()).decode()
        clone_env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                         GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
    # a repository of the embedded git server (file://) is the one repository of the job's
    # tenant that the container engine mounted read-only: nothing else of the server is there
    log.line(f"cloning {git['url']} at {git['commit']}")
    run = subprocess.run(["git", "clone", "--quiet", "--no-checkout", git["url"], target],
                         env=clone_env, capture_output=True, text=True)
    if run.returncode != 0:
        raise StepFailed("git clone failed: " + _redact(run.stderr.strip(), git.get("token")))
    run = subprocess.run(["git", "-C", target, "checkout", "--quiet", "--detach", git["commit"]],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise StepFailed(f"git checkout of {git['commit']} failed: {run.stderr.strip()}")
    if os.path.exists(os.path.join(target, ".gitmodules")):
        subprocess.run(["git", "-C", target, "submodule", "update", "--init", "--recursive", "--quiet"],
                       env=env, capture_output=True, text=True)
    log.line(f"model at commit {git['commit']}")


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text


def step_dataset(log: Log, spec: dict) -> None:
    dataset = spec.get("dataset")
    input_dir = os.path.join(KQI, "input")
    os.makedirs(input_dir, exist_ok=True)
    if not dataset:
        log.line("no dataset")
        return
    urls = dataset.get("urls") or {}

    def open_stored(stored_path):
        import urllib.request  # only for stores without a data mount: it costs a job start ~0.1-0.3 s

        with urllib.request.urlopen(urls[stored_path], timeout=60) as response:
            while True:
                chunk = response.read(1024 * 1024)
                if not chunk:
                    return
                yield chunk

    raw = dataset.get("rawDir")
    count = lay_out(dataset["pairs"], input_dir, dataset["method"],
                    raw_dir=raw if raw and os.path.isdir(raw) else None,
                    link_target_dir=raw, open_stored=open_stored if urls else None)
    if spec.get("datasetId") is not None:
        what = f"dataset {spec['datasetId']}"
    elif spec.get("dataId") is not None:  # a preprocessing's input data: /kqi/input/<dataId>/<file>
        what = f"data {spec['dataId']}"
    else:
        what = "input"
    log.line(f"{what} laid out under /kqi/input by {dataset['method']}: {count} files")


def step_command(log: Log, spec: dict) -> int:
    command = spec["entryPoint"]
    log.line(f"running: {command}")
    env = dict(os.environ)
    env.update(spec.get("env") or {})
    process = subprocess.Popen(["sh", "-c", command], cwd=os.path.join(KQI, "git"), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    for chunk in iter(lambda: process.stdout.read1(65536), b""):
        log.write(chunk)
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    code = process.wait()
    log.line(f"the command exited with status {code}")
    return code


def oom_kills() -> int:
    """How often the kernel killed a process of this container for memory (its own cgroup, v1 or v2).

    The container's cgroup is at the root of /sys/fs/cgroup, or (a container on the host's network
    in a user namespace sees the host's cgroup tree) at the path /proc/self/cgroup names.
    """
    candidates = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.strip().split(":", 2)
                if controllers == "":
                    candidates.append(f"/sys/fs/cgroup{path.rstrip('/')}/memory.events")
                elif "memory" in controllers.split(","):
                    candidates.append(f"/sys/fs/cgroup/memory{path.rstrip('/')}/memory.oom_control")
    except (OSError, ValueError):
        pass
    candidates += ["/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"]
    for path in candidates:
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def step_zip(log: Log, spec: dict) -> None:
    output = os.path.join(KQI, "output")
    target = os.path.join(KQI, "attach", "output.zip")
    count = 0
    with zipfile.ZipFile(target + ".partial", "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for dirpath, _dirs, files in os.walk(output):
            for name in files:
                full = os.path.join(dirpath, name)
                archive.write(full, os.path.relpath(full, output))
                count += 1
    os.replace(target + ".partial", target)
    log.line(f"zipped /kqi/output ({count} files) to output.zip")


# finds the package and reads its version from the installed metadata without importing it:
# importing jupyterlab (and jupyter_server with it) takes seconds, on every notebook start
JUPYTERLAB_PROBE = ("import importlib.util, importlib.metadata as m, sys\n"
                    "sys.exit(3) if importlib.util.find_spec('jupyterlab') is None else print(m.version('jupyterlab'))")


def jupyterlab_version(python: str) -> str | None:
    if os.path.realpath(python) == os.path.realpath(sys.executable) and not sys.flags.no_site:
        # the server's Python runs this file: look here, without starting another interpreter
        import importlib.metadata
        import importlib.util

        if importlib.util.find_spec("jupyterlab") is None:
            return None
        try:
            return importlib.metadata.version("jupyterlab")
        except importlib.metadata.PackageNotFoundError:
            return None
    run = subprocess.run([python, "-c", JUPYTERLAB_PROBE], capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else None


def step_jupyterlab(log: Log, spec: dict) -> dict:
    """Install JupyterLab when the image lacks it; returns environment additions."""
    python = spec.get("python") or shutil.which("python3") or sys.executable
    have = jupyterlab_version(python)
    if have:
        log.line(f"JupyterLab {have} is in the image: nothing to install")
        return {}
    wanted = spec.get("jupyterlabVersion")
    target = os.path.join(KQI, "tmp", "jupyterlab")
    requirement = f"jupyterlab=={wanted}" if wanted else "jupyterlab"
    log.line(f"installing {requirement} (the image has no JupyterLab)")
    hub = f"jupyterhub=={spec['jupyterhubVersion']}" if spec.get("jupyterhubVersion") else "jupyterhub"
    run = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
                          target, requirement, hub], capture_output=True, text=True)
    if run.returncode != 0:
        raise StepFailed("installing JupyterLab failed: " + run.stderr.strip()[-500:])
    return jupyterlab_env(target)


def jupyterlab_env(target: str) -> dict:
    """The variables that make a JupyterLab installed with `pip --target` work: its modules and
    scripts, and its data files (the server extension's config enables /lab; the app's assets)."""
    path = os.environ.get("PYTHONPATH", "")
    config = os.environ.get("JUPYTER_CONFIG_PATH", "")
    data = os.environ.get("JUPYTER_PATH", "")
    return {"PYTHONPATH": target + (os.pathsep + path if path else ""),
            "PATH": os.path.join(target, "bin") + os.pathsep + os.environ.get("PATH", ""),
            "JUPYTER_CONFIG_PATH": os.path.join(target, "etc", "jupyter") + (os.pathsep + config if config else ""),
            "JUPYTER_PATH": os.path.join(target, "share", "jupyter") + (os.pathsep + data if data else ""),
            "JUPYTERLAB_DIR": os.path.join(target, "share", "jupyter", "lab")}


def step_links(log: Log) -> None:
    """/input, /git, /parent, /inference (made here, or by the container engine) and the same in the home."""
    home = os.path.join(KQI, "output")
    for name in ("input", "git", "parent", "inference"):
        target = os.path.join(KQI, name)
        for link in (f"/{name}", os.path.join(home, name)):
            if os.path.islink(link) or not os.path.exists(target):
                continue
            try:
                if not os.path.lexists(link):
                    os.symlink(target, link)
            except OSError:
                pass  # a read-only root file system
    log.line("links /input /git /parent /inference ready")


def notebook_main(spec: dict, log: Log) -> int:
    """notebook: prepare then serve; prepare: only prepare (an init container); start: only serve
    (after an init container prepared /kqi)."""
    try:
        if spec.get("mode") == "start":
            extra_env = {}
            target = os.path.join(KQI, "tmp", "jupyterlab")
            if os.path.isdir(target):
                extra_env = jupyterlab_env(target)
        else:
            step_output(log)
            step_tools(log, spec)
            step_git(log, spec)
            step_dataset(log, spec)
            extra_env = step_jupyterlab(log, spec)
        step_links(log)
    except StepFailed as e:
        log.line(f"failed: {e}")
        return 1
    if spec.get("mode") == "prepare":
        return 0
    env = dict(os.environ)
    env.update(extra_env)
    env.update(spec.get("env") or {})
    if spec.get("startupCommand"):
        log.line(f"start-up command: {spec['startupCommand']}")
        run = subprocess.run(["sh", "-c", spec["startupCommand"]], cwd=os.path.join(KQI, "git"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        log.write(run.stdout)
        log.line(f"the start-up command exited with status {run.returncode}")
    command = spec["serverCommand"]
    log.line("starting the notebook server")
    os.chdir(os.path.join(KQI, "output"))
    os.execvpe(command[0], command, env)
    return 127


def main(argv) -> int:
    if len(argv) >= 3 and argv[1] == "--spec-env":
        spec = json.loads(os.environ[argv[2]])
        if argv[3:]:  # the notebook server's arguments, given by the spawner
            spec["serverCommand"] = list(spec.get("serverCommand") or []) + argv[3:]
    elif len(argv) == 2:
        with open(argv[1]) as f:
            spec = json.load(f)
    else:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    load_secret_files()
    if spec.get("mode") == "serve":  # a TensorBoard: its server only, over folders mounted read-only
        command = spec["serverCommand"]
        os.execvp(command[0], command)
    if spec.get("mode") in ("notebook", "prepare", "start"):
        return notebook_main(spec, Log(os.path.join(KQI, "tmp", spec.get("logName", "notebook.log"))))
    log = Log(os.path.join(KQI, "attach", spec["logName"]))
    result = {"exitCode": None, "failedStep": None, "message": None}
    try:
        step_output(log)
        step_tools(log, spec)
        step_git(log, spec)
        step_dataset(log, spec)
        kills = oom_kills()
        result["startedAt"] = time.time()  # the command's own run: the usage ledger's times
        code = step_command(log, spec)
        result["endedAt"] = time.time()
        result["exitCode"] = code
        if oom_kills() > kills:
            result["oomKilled"] = True
            log.line("a process of the command was killed for using more memory than the job's limit")
        if code == 0 and spec.get("zip"):
            step_zip(log, spec)
    except StepFailed as e:
        result["failedStep"] = True
        result["message"] = str(e)
        log.line(f"failed: {e}")
    except Exception as e:  # a fault of the platform, not of the command
        result["failedStep"] = True
        result["message"] = f"{type(e).__name__}: {e}"
        log.line(f"platform error: {result['message']}")
    tmp = os.path.join(KQI, "tmp")
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "result.json.partial"), "w") as f:
        json.dump(result, f)
    os.replace(os.path.join(tmp, "result.json.partial"), os.path.join(tmp, "result.json"))
    if result["exitCode"] is None:
        return 125
    return result["exitCode"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
