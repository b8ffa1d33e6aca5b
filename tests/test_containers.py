"""Local jobs as podman containers: the podman command line, and real containers that try to
escape (each attempt made by a job, each asserted to have failed).

The backend is driven directly here (a LaunchRequest per job, the runtime in the image built
by tests/images.py); tests/test_container_jobs.py drives the same through the platform.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
import uuid

import pytest

from kqi_services.jobs.launch import (CONTAINER_CAPABILITIES, LaunchRequest, Mount, image_reference,
                                      kqi_mounts, normalize_image)
from kqi_services.jobs.podman import PodmanBackend, PodmanSettings, podman_run_args

from . import images
from .platform import processes_with

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("podman") is None,
                                reason="podman as root is needed (bash setup.sh --test installs it)")

#: capabilities a job must not have (bit numbers in CapEff)
FORBIDDEN_CAPS = {"SYS_ADMIN": 21, "DAC_READ_SEARCH": 2, "SYS_PTRACE": 19, "NET_ADMIN": 12, "MKNOD": 27,
                  "SYS_MODULE": 16, "NET_RAW": 13}


# ------------------------------------------------------------------------------ pure parts
def test_image_names_as_kamonohashi_names_them():
    assert image_reference("registry-1.docker.io", "python", "3.8") == "docker.io/library/python:3.8"
    assert image_reference(None, "python", "3.11") == "docker.io/library/python:3.11"
    assert image_reference("registry.example.com:5000", "ml/torch", "2.3") == "registry.example.com:5000/ml/torch:2.3"
    assert image_reference("docker.io", "team/img", None) == "docker.io/team/img:latest"
    assert image_reference("ghcr.io", "a/b", "sha256:" + "0" * 64) == "ghcr.io/a/b@sha256:" + "0" * 64
    assert normalize_image("localhost/kqi-test/base:1", "x") == "localhost/kqi-test/base:1"
    assert normalize_image(None, "python:3.12") == "docker.io/library/python:3.12"


def _request(**kw) -> LaunchRequest:
    base = dict(key="training-7", kind="training", job_id=7, tenant="t", user="u", image="python:3.11",
                spec={}, env={"A": "1"}, secret_env={"KQI_TOKEN": "kqi-job.7.very-secret"}, cpu=1.5,
                memory_gib=2, gpu=0, mounts=kqi_mounts(output_dir="/s/out", attach_dir="/s/att",
                                                      raw_data_dir="/s/Data", parent_dirs={3: "/s/p3"}))
    base.update(kw)
    return LaunchRequest(**base)


def test_podman_arguments_least_privilege_and_no_secret_values():
    settings = PodmanSettings(oci_runtime="runc", uid_base=200000)
    args = podman_run_args(_request(), settings, name="kqi-x-training-7", platform_tag="x", folder="/jobs/t7",
                           command=["sh", "start.sh"])
    line = " ".join(args)
    assert "very-secret" not in line  # the token is named, its value comes from podman's environment
    assert args[args.index("KQI_TOKEN") - 1] == "--env"
    assert ["--cap-drop", "all"] == args[args.index("--cap-drop"):args.index("--cap-drop") + 2]
    added = {args[i + 1] for i, a in enumerate(args) if a == "--cap-add"}
    assert added == set(CONTAINER_CAPABILITIES) and not added & set(FORBIDDEN_CAPS)
    assert "no-new-privileges" in args and "--privileged" not in args
    assert "--uidmap" in args and "0:200000:65536" in args
    assert args[args.index("--cpus") + 1] == "1.5" and args[args.index("--memory") + 1] == "2048m"
    assert args[args.index("--memory-swap") + 1] == "2048m"
    assert args[args.index("--pids-limit") + 1] == "4096"
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "--volume"]
    assert "/s/out:/kqi/output:rw" in volumes and "/s/att:/kqi/attach:rw" in volumes
    assert "/s/Data:/kqi/raw/Data:ro" in volumes and "/s/p3:/kqi/parent:ro" in volumes
    assert "/jobs/t7/tmp:/kqi/tmp:rw" in volumes and "/jobs/t7/runtime:/kqi/runtime:ro" in volumes
    assert all(v.split(":")[1].startswith("/kqi") for v in volumes)  # nothing else of the host
    assert args[-3:] == ["docker.io/library/python:3.11", "sh", "start.sh"]
    assert "NVIDIA_VISIBLE_DEVICES=none" in args


def test_podman_arguments_gpu_as_cdi_devices_and_lifetime():
    settings = PodmanSettings()
    args = podman_run_args(_request(gpu=2, timeout_seconds=3600), settings, name="n", platform_tag="x",
                           folder="/f", command=["true"], gpu_devices=["nvidia.com/gpu=0", "nvidia.com/gpu=1"])
    devices = [args[i + 1] for i, a in enumerate(args) if a == "--device"]
    assert devices == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert "NVIDIA_VISIBLE_DEVICES=none" not in args
    assert args[args.index("--timeout") + 1] == "3600"


# ------------------------------------------------------------------------------ real containers
@pytest.fixture(scope="module")
def test_images():
    return images.ensure_images()


@pytest.fixture
def backend(tmp_path, test_images):
    b = PodmanBackend(str(tmp_path / "jobs"), f"t{uuid.uuid4().hex[:8]}", default_image=test_images["python"])
    yield b
    for name in b.podman_cli.names(b.platform_tag):
        b.podman_cli.remove(name)


def run_job(backend, tmp_path, command: str, *, image=None, memory_gib=1.0, secret_env=None, extra_mounts=(),
            timeout=120, key=None):
    key = key or f"training-{uuid.uuid4().hex[:6]}"
    out, attach, raw = tmp_path / key / "out", tmp_path / key / "attach", tmp_path / key / "Data"
    for d in (out, attach, raw):
        d.mkdir(parents=True, exist_ok=True)
    (raw / "sample.txt").write_text("data of this tenant\n")
    mounts = kqi_mounts(output_dir=str(out), attach_dir=str(attach), raw_data_dir=str(raw)) + list(extra_mounts)
    req = LaunchRequest(key=key, kind="training", job_id=1, tenant="t", user="u", image=image,
                        spec={"kind": "training", "id": 1, "entryPoint": command, "zip": False,
                              "logName": "job.log", "env": {}, "tools": []},
                        env={"HOME": "/kqi/home"}, secret_env=dict(secret_env or {}), cpu=1, memory_gib=memory_gib,
                        mounts=mounts)
    backend.launch(req)
    deadline = time.monotonic() + timeout
    while backend.is_running(key) and time.monotonic() < deadline:
        time.sleep(0.1)
    result = backend.result(key)
    log = (attach / "job.log").read_text(errors="replace") if (attach / "job.log").exists() else ""
    return key, result, out, log


ESCAPES = textwrap.dedent(r'''
    import ctypes, ctypes.util, errno, json, os, subprocess, sys
    found = {}
    def attempt(name, func):
        try:
            found[name] = "succeeded: " + str(func())
        except Exception as e:
            found[name] = "failed: " + type(e).__name__ + ": " + str(e)
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    found["CapEff"] = status["CapEff"].strip()
    found["CapBnd"] = status["CapBnd"].strip()
    found["NoNewPrivs"] = status["NoNewPrivs"].strip()
    found["uid_map"] = open("/proc/self/uid_map").read().split()
    def sh(cmd):
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(r.returncode, (r.stderr or r.stdout).strip())
        return r.stdout.strip()
    for mount in ("/kqi/raw/Data", "/kqi/runtime", "/", "/kqi/output"):
        attempt("remount-rw " + mount, lambda m=mount: sh(f"mount -o remount,rw {m}"))
    attempt("write read-only raw data", lambda: open("/kqi/raw/Data/planted", "w").write("x"))
    attempt("mknod", lambda: sh("mknod /tmp/kmem c 1 2"))
    attempt("mount proc", lambda: sh("mkdir -p /tmp/p && mount -t proc proc /tmp/p"))
    attempt("mount bind", lambda: sh("mkdir -p /tmp/b && mount --bind / /tmp/b"))
    attempt("unshare user", lambda: sh("unshare -U -r true"))
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    class FileHandle(ctypes.Structure):
        _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_char * 128)]
    def by_handle():
        # a handle of the bind mount's folder, then open it by handle: needs CAP_DAC_READ_SEARCH of the
        # host's user namespace, the door to every inode of the host file system behind the mount
        handle = FileHandle(128, 0)
        mount_id = ctypes.c_int()
        if libc.name_to_handle_at(-100, b"/kqi/output", ctypes.byref(handle), ctypes.byref(mount_id), 0) != 0:
            raise OSError(ctypes.get_errno(), "name_to_handle_at: " + os.strerror(ctypes.get_errno()))
        fd = os.open("/kqi/output", os.O_RDONLY)
        got = libc.open_by_handle_at(fd, ctypes.byref(handle), os.O_RDONLY)
        if got < 0:
            raise OSError(ctypes.get_errno(), "open_by_handle_at: " + os.strerror(ctypes.get_errno()))
        return "opened an inode by its handle"
    attempt("open_by_handle_at", by_handle)
    for path in sys.argv[1:]:
        attempt("read " + path, lambda p=path: open(p, "rb").read(16))
        attempt("list " + os.path.dirname(path), lambda p=path: os.listdir(os.path.dirname(p)))
    attempt("see host processes", lambda: [p for p in os.listdir("/proc") if p.isdigit() and int(p) > 200] or 1/0)
    json.dump(found, open("/kqi/output/escapes.json", "w"), indent=1)
''')


def test_a_job_cannot_escape(backend, tmp_path):
    """Each attempt is made by the job; each must have failed."""
    secret = tmp_path / "service" / "secret_key"
    secret.parent.mkdir()
    secret.write_text("the service's secret key")
    hub_db = tmp_path / "service" / "jupyterhub.sqlite"
    hub_db.write_text("hub database")
    other_tenant = tmp_path / "store" / "tenant-b" / "Data" / "private.txt"
    other_tenant.parent.mkdir(parents=True)
    other_tenant.write_text("tenant B")
    other_key, other_result, other_out, _ = run_job(backend, tmp_path, "echo mine > /kqi/output/own.txt")
    assert other_result.exit_code == 0
    other_job_file = os.path.join(backend.job_dir(other_key), "tmp", "spec.json")
    script = tmp_path / "escape-src"
    script.mkdir()
    (script / "escape.py").write_text(ESCAPES)
    targets = [str(secret), str(hub_db), str(other_tenant), str(other_out / "own.txt"), other_job_file]
    key, result, out, log = run_job(
        backend, tmp_path, "python3 /kqi/escape/escape.py " + " ".join(targets),
        extra_mounts=[Mount("/kqi/escape", str(script))])
    assert result.exit_code == 0, log
    found = json.loads((out / "escapes.json").read_text())
    cap_eff = int(found["CapEff"], 16)
    for name, bit in FORBIDDEN_CAPS.items():
        assert not cap_eff & (1 << bit), f"the job has CAP_{name}: {found['CapEff']}"
    assert int(found["CapBnd"], 16) == cap_eff  # nothing to regain
    assert found["NoNewPrivs"] == "1"
    assert found["uid_map"][:2] == ["0", str(backend.uid_base)]  # root in the container is not host root
    attempts = {k: v for k, v in found.items() if k not in ("CapEff", "CapBnd", "NoNewPrivs", "uid_map")}
    assert len(attempts) >= 10 + 2 * len(targets)
    succeeded = {name: outcome for name, outcome in attempts.items() if not outcome.startswith("failed")}
    assert not succeeded, json.dumps(found, indent=1)
    assert "planted" not in os.listdir(tmp_path / key / "Data")


def test_host_ps_shows_no_secret(backend, tmp_path):
    token = f"kqi-job.9.{uuid.uuid4().hex}"
    key = f"training-{uuid.uuid4().hex[:6]}"
    out = tmp_path / key / "out"
    out.mkdir(parents=True)
    req = LaunchRequest(key=key, kind="training", job_id=9, tenant="t", user="u", image=None,
                        spec={"kind": "training", "id": 9, "entryPoint": 'echo "$KQI_TOKEN" > /kqi/output/t; sleep 30',
                              "zip": False, "logName": "job.log", "env": {}, "tools": []},
                        env={}, secret_env={"KQI_TOKEN": token}, mounts=kqi_mounts(output_dir=str(out),
                                                                                   attach_dir=str(out / "a")))
    backend.launch(req)
    try:
        deadline = time.monotonic() + 60
        while not (out / "t").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "t").read_text().strip() == token  # the job has its token ...
        seen = processes_with(token)
        assert not seen, f"the token is on the command line of processes {seen}"  # ... no command line shows it
        assert token not in subprocess.run(["ps", "auxww"], capture_output=True, text=True).stdout
    finally:
        backend.halt(key)
        backend.cleanup(key)
    assert subprocess.run(["podman", "container", "exists", backend.container_name(key)]).returncode == 1


def test_sys_version_is_the_images(backend, tmp_path, test_images):
    _, result, out, log = run_job(backend, tmp_path, "python3 -c 'import sys, PIL; print(sys.version)' > /kqi/output/v")
    assert result.exit_code == 0, log
    image_version = subprocess.run(["podman", "run", "--rm", *images.podman_base_args(), test_images["python"],
                                    "python3", "-c", "import sys; print(sys.version)"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert (out / "v").read_text().strip() == image_version
    import sys

    assert image_version != sys.version


def test_out_of_memory_ends_the_job_with_that_reason(backend, tmp_path):
    _, result, _, log = run_job(backend, tmp_path, "python3 -c 'b = bytearray(400 * 1024 * 1024); print(len(b))'",
                                memory_gib=0.125)
    assert result.exit_code not in (0, None) or result.oom_killed, log
    assert result.oom_killed, (result, log)


def test_the_runtime_installs_missing_tools(backend, tmp_path, test_images):
    """An image with python3 only: the runtime installs git, zip, pip and the kqi CLI (apt-get, pip)."""
    key = f"training-{uuid.uuid4().hex[:6]}"
    out = tmp_path / key / "out"
    out.mkdir(parents=True)
    req = LaunchRequest(key=key, kind="training", job_id=1, tenant="t", user="u", image=test_images["bare"],
                        spec={"kind": "training", "id": 1, "zip": False, "logName": "job.log", "env": {},
                              "entryPoint": "for t in git zip kqi; do command -v $t; done > /kqi/output/tools; kqi --help > /dev/null",
                              "tools": ["git", "zip", "pip", "kqi"]},
                        env={"HOME": "/kqi/home", **images.job_environment(), "KQI_SERVER": "http://127.0.0.1:9"},
                        secret_env={"KQI_TOKEN": "kqi-job.1.x"},
                        mounts=kqi_mounts(output_dir=str(out), attach_dir=str(out / "a")))
    backend.ca_bundle = images.host_ca_bundle() or ""
    backend.launch(req)
    deadline = time.monotonic() + 600
    while backend.is_running(key) and time.monotonic() < deadline:
        time.sleep(0.2)
    log = (out / "a" / "job.log").read_text()
    assert backend.result(key).exit_code == 0, log
    tools = (out / "tools").read_text().split()
    assert [os.path.basename(t) for t in tools] == ["git", "zip", "kqi"], log
    assert "installing git, zip, pip with apt-get" in log and "installing kamonohashi-cli==4.0.2" in log


def test_a_missing_image_that_cannot_be_pulled_fails_the_job(backend, tmp_path):
    key, result, _, log = run_job(backend, tmp_path, "true", image="localhost:1/nothing/here:1", timeout=120)
    assert result.exit_code is None and "pulling the image localhost:1/nothing/here:1 failed" in result.message
    assert "pulling the image" in log


def test_nothing_is_left_after_a_job(backend, tmp_path):
    key, result, _, _ = run_job(backend, tmp_path, "sleep 0.2")
    assert result.exit_code == 0
    backend.cleanup(key)
    assert subprocess.run(["podman", "container", "exists", backend.container_name(key)]).returncode == 1


def test_orphans_are_removed_after_a_restart(backend, tmp_path):
    key = f"training-{uuid.uuid4().hex[:6]}"
    out = tmp_path / key / "out"
    out.mkdir(parents=True)
    backend.launch(LaunchRequest(key=key, kind="training", job_id=1, tenant="t", user="u", image=None,
                                 spec={"kind": "training", "id": 1, "entryPoint": "sleep 60", "zip": False,
                                       "logName": "job.log", "env": {}, "tools": []},
                                 env={}, mounts=kqi_mounts(output_dir=str(out), attach_dir=str(out / "a"))))
    again = PodmanBackend(backend.jobs_dir, backend.platform_tag)  # a restarted service knows it from disk
    assert again.is_running(key)
    again.remove_orphans(set())  # the database says no job runs: the container goes
    assert subprocess.run(["podman", "container", "exists", backend.container_name(key)]).returncode == 1
    deadline = time.monotonic() + 10
    while again.is_running(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not again.is_running(key)


def test_the_runtime_appends_to_a_log_the_platform_began(backend, tmp_path):
    """A pull writes the first lines of a job's log (as host root): the job's root, another uid on the
    host, must still append to it."""
    key = f"training-{uuid.uuid4().hex[:6]}"
    out, attach = tmp_path / key / "out", tmp_path / key / "attach"
    out.mkdir(parents=True)
    attach.mkdir()
    req = LaunchRequest(key=key, kind="training", job_id=1, tenant="t", user="u", image=None,
                        spec={"kind": "training", "id": 1, "entryPoint": "echo from-the-job", "zip": False,
                              "logName": "job.log", "env": {}, "tools": []},
                        env={}, mounts=kqi_mounts(output_dir=str(out), attach_dir=str(attach)))
    backend._log(req, "pulled the image (as a pull would say)")
    backend.launch(req)
    deadline = time.monotonic() + 60
    while backend.is_running(key) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = (attach / "job.log").read_text()
    assert backend.result(key).exit_code == 0, log
    assert log.index("pulled the image") < log.index("from-the-job")
