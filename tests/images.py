"""Container images the tests run jobs and notebooks in, built here from Debian's packages.

No public container registry can be reached from the test machines; Debian's package
registry and PyPI can. A base image is made with `mmdebstrap` + `podman import`, then
layers are added by running pip in a container (host network, the host's package index
settings passed in) and `podman commit`. Each image is named after a hash of its recipe,
so it is built once and reused by later runs on the same machine.

    BASE      Debian bookworm with python3, pip, venv, git, zip and PIL
    PYTHON    BASE + kamonohashi-cli 4.0.2: what `-rim python -rt 3.11` runs in the tests
    NOTEBOOK  PYTHON + JupyterLab and the hub's jupyterhub (for the singleuser server)
    TENSORBOARD PYTHON + tensorboard (no TensorFlow): TensorBoards, and trainings that write event files
    BARE      Debian with python3 only (no git, zip, pip or kqi): the runtime installs them

Run `python -m tests.images` to build them all ahead of the tests.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

SUITE = "bookworm"
BASE_PACKAGES = ["python3", "python-is-python3", "python3-pip", "python3-venv", "python3-pil", "git", "zip", "ca-certificates", "procps"]
BARE_PACKAGES = ["python3", "ca-certificates"]
KQI_CLI = "kamonohashi-cli==4.0.2"
TENSORBOARD_PACKAGES = ["tensorboard==2.18.0"]


def _hub_version() -> str:
    from importlib.metadata import version

    return version("jupyterhub")


def _jupyterlab_version() -> str:
    return "4.2.5"


def podman(*args, check=True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True, **kwargs)


def podman_base_args() -> list[str]:
    from kqi_services.jobs.podman import PodmanSettings

    settings = PodmanSettings()
    args = (["--runtime", settings.oci_runtime] if settings.oci_runtime else [])
    for limit in settings.ulimits:
        args += ["--ulimit", limit]
    return args


def exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def _tag(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def host_package_env() -> tuple[list[str], dict]:
    """podman args and variables that let pip in a container use the host's package index settings."""
    args, env = ["--network", "host"], {}
    for name, value in os.environ.items():
        if name.startswith("PIP_") and name not in ("PIP_FIND_LINKS", "PIP_CERT"):
            env[name] = value
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    bundle = host_ca_bundle()
    if bundle:
        args += ["--volume", f"{bundle}:/etc/ssl/certs/kqi-host-ca.crt:ro"]
        env.update({"PIP_CERT": "/etc/ssl/certs/kqi-host-ca.crt", "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/kqi-host-ca.crt"})
    return args, env


def host_ca_bundle() -> str | None:
    for path in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if path and os.path.isfile(path):
            return path
    return None


def job_environment() -> dict:
    """The job environment setting the tests give the platform: the host's package index settings."""
    _args, env = host_package_env()
    return env


def build_rootfs_image(ref: str, packages: list[str]) -> None:
    if exists(ref):
        return
    with tempfile.TemporaryDirectory(prefix="kqi-image-") as tmp:
        tar = os.path.join(tmp, "rootfs.tar")
        subprocess.run(["mmdebstrap", "--quiet", "--variant=apt", f"--include={','.join(packages)}", SUITE, tar],
                       check=True, capture_output=True)
        podman("import", "--quiet", tar, ref)


def build_pip_layer(base: str, ref: str, requirements: list[str]) -> None:
    if exists(ref):
        return
    name = f"kqi-image-build-{os.getpid()}"
    args, env = host_package_env()
    env_args = [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
    podman("rm", "--force", "--ignore", name, check=False)
    # like the python images of Docker Hub, the system Python is pip's to manage (no PEP 668 marker)
    script = ("rm -f /usr/lib/python3*/EXTERNALLY-MANAGED && python3 -m pip install --quiet"
              " --no-warn-script-location " + " ".join(f"'{r}'" for r in requirements))
    run = podman("run", "--name", name, *podman_base_args(), *args, *env_args, base, "sh", "-c", script,
                 check=False)
    try:
        if run.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(requirements)} in {base} failed: {run.stderr[-2000:]}")
        podman("commit", "--quiet", name, ref)
    finally:
        podman("rm", "--force", "--ignore", name, check=False)


BASE = f"localhost/kqi-test/base:{_tag(SUITE, *BASE_PACKAGES)}"
BARE = f"localhost/kqi-test/bare:{_tag(SUITE, *BARE_PACKAGES)}"
PYTHON = f"localhost/kqi-test/python:{_tag(BASE, KQI_CLI, 'no-pep668')}"


def notebook_ref() -> str:
    return f"localhost/kqi-test/notebook:{_tag(PYTHON, _jupyterlab_version(), _hub_version())}"


TENSORBOARD = f"localhost/kqi-test/tensorboard:{_tag(PYTHON, *TENSORBOARD_PACKAGES)}"

#: the name the tests' jobs ask for (`-rim python -rt 3.11`)
PYTHON_ALIAS = "docker.io/library/python:3.11"


def ensure_images() -> dict[str, str]:
    """Build what is missing; returns the references. Needs root, podman and mmdebstrap.

    Test processes running side by side build each image once: they take turns (a file lock).
    """
    import fcntl

    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        raise RuntimeError("podman and mmdebstrap are needed: run `bash setup.sh --test`")
    with open(os.path.join(tempfile.gettempdir(), "kqi-test-images.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_rootfs_image(BASE, BASE_PACKAGES)
        build_rootfs_image(BARE, BARE_PACKAGES)
        build_pip_layer(BASE, PYTHON, [KQI_CLI])
        notebook = notebook_ref()
        build_pip_layer(PYTHON, notebook, [f"jupyterlab=={_jupyterlab_version()}", f"jupyterhub=={_hub_version()}"])
        build_pip_layer(PYTHON, TENSORBOARD, TENSORBOARD_PACKAGES)
        remove_stale({BASE, BARE, PYTHON, notebook, TENSORBOARD})
        # `python:3.11` resolves to the test image, unless a real one (not made here) is already there
        if not exists(PYTHON_ALIAS) or _is_test_image(PYTHON_ALIAS):
            podman("tag", PYTHON, PYTHON_ALIAS)
    return {"base": BASE, "bare": BARE, "python": PYTHON, "notebook": notebook, "alias": PYTHON_ALIAS,
            "tensorboard": TENSORBOARD}


def remove_stale(current: set[str]) -> None:
    """Images of earlier recipes (they would only fill the disk). Only older tags of the images named
    in `current`: an image a newer recipe adds is not this one's to remove."""
    listed = podman("images", "--filter", "reference=localhost/kqi-test/*", "--format", "{{.Repository}}:{{.Tag}}",
                    check=False).stdout.split()
    names = {ref.rsplit(":", 1)[0] for ref in current}
    for ref in listed:
        if ref not in current and ref.rsplit(":", 1)[0] in names:
            podman("rmi", "--force", ref, check=False)


def _is_test_image(ref: str) -> bool:
    labels = podman("image", "inspect", "--format", "{{json .RepoTags}}", ref, check=False).stdout
    return "localhost/kqi-test/" in labels


if __name__ == "__main__":
    for key, ref in ensure_images().items():
        print(f"{key}: {ref}")
    sys.exit(0)
