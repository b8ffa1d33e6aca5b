"""The local sandbox: bubblewrap's command line (pure), the sandbox as a job sees it (real
bwrap through the local backend), and the resource limits on this host (cgroups v1/v2,
rlimits otherwise)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import pytest

from kqi_services.jobs.local import LaunchRequest, LocalBackend
from kqi_services.jobs.sandbox import (HIDDEN_TOP, CgroupLimiter, Limits, Mount, SandboxSpec, bwrap_args, bwrap_path,
                                       launcher_command)

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")


def pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


# ---------------------------------------------------------------------------- bwrap_args
def test_bwrap_args_mounts_hide_and_environment(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    spec = SandboxSpec(
        mounts=[Mount("/h/raw-data", "/kqi/raw/Data"), Mount("/h/out", "/kqi/output", writable=True),
                Mount("/h/parent", "/kqi/parent"), Mount("/h/git", "/kqi/git", writable=True)],
        command=["python3", "/kqi/runtime/kqi_runtime.py", "/kqi/tmp/spec.json"],
        env={"TRAINING_ID": "7", "PATH": "/usr/bin:/bin"}, cwd="/kqi", hide=[str(data_dir), str(tmp_path / "absent")])
    args = bwrap_args(spec)
    assert args[0] == "bwrap" and {"--unshare-pid", "--unshare-ipc", "--clearenv"} <= set(args)
    # the host read-only, except what a sandbox gets of its own
    ro = dict((target, source) for source, target in pairs(args, "--ro-bind"))
    for name in os.listdir("/"):
        path = "/" + name
        if name in HIDDEN_TOP or os.path.islink(path) or not os.path.isdir(path):
            continue
        assert ro.get(path) == path, name
    for own in ("/proc", "/dev", "/tmp", "/kqi"):
        assert own not in ro
    assert ("--proc", "/proc") in zip(args, args[1:]) and ("--tmpfs", "/tmp") in zip(args, args[1:])
    # the platform's data directory is an empty tmpfs (a missing path is not mentioned)
    tmpfs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert str(data_dir) in tmpfs and str(tmp_path / "absent") not in tmpfs
    assert args.index(str(data_dir)) < args.index("/kqi/output")  # hidden before the job's binds
    # /kqi: writable output and git, read-only parent and raw data, shallow targets first
    assert ("/h/out", "/kqi/output") in pairs(args, "--bind") and ("/h/git", "/kqi/git") in pairs(args, "--bind")
    assert ro["/kqi/parent"] == "/h/parent" and ro["/kqi/raw/Data"] == "/h/raw-data"
    assert ("/h/parent", "/kqi/parent") not in pairs(args, "--bind")
    assert args.index("/kqi/output") < args.index("/kqi/raw/Data")
    # the environment is exactly the spec's
    assert pairs(args, "--setenv") == [("PATH", "/usr/bin:/bin"), ("TRAINING_ID", "7")]
    assert args[args.index("--chdir") + 1] == "/kqi"
    assert args[args.index("--") + 1:] == spec.command


def test_launcher_command_joins_cgroups_or_sets_rlimits():
    inner = ["bwrap", "--", "sh", "-c", "echo 'a b'"]
    line = launcher_command(["/sys/fs/cgroup/kqi/x/cgroup.procs"], Limits(cpu=1, memory_bytes=2**30), inner)
    assert line[:2] == ["/bin/sh", "-c"]
    assert line[2].startswith("echo $$ > /sys/fs/cgroup/kqi/x/cgroup.procs && exec bwrap")
    assert "ulimit" not in line[2]
    line = launcher_command([], Limits(memory_bytes=2**30, pids=100), inner)
    assert "ulimit -v 2097152" in line[2] and "ulimit -u 100" in line[2]
    assert line[2].endswith("exec bwrap -- sh -c 'echo '\"'\"'a b'\"'\"''")
    assert subprocess.run(launcher_command([], Limits(pids=None), ["echo", "it runs"]), capture_output=True,
                          text=True).stdout == "it runs\n"


# ------------------------------------------------------------------- a real sandboxed job
def run_job(backend: LocalBackend, tmp_path, entry: str, cpu=1.0, memory_gib=1.0, parent_dirs=None,
            raw_data_dir=None, timeout=60):
    key = f"training-{uuid.uuid4().hex[:8]}"
    out, attach = tmp_path / f"{key}-out", tmp_path / f"{key}-attach"
    req = LaunchRequest(key=key, spec={"kind": "training", "id": 1, "entryPoint": entry, "zip": False,
                                       "logName": "log.txt", "datasetId": None, "env": {}},
                        env={"TRAINING_ID": "1"}, cpu=cpu, memory_gib=memory_gib, output_dir=str(out),
                        attach_dir=str(attach), raw_data_dir=raw_data_dir, parent_dirs=parent_dirs or {},
                        inference_dirs={})
    backend.launch(req)
    deadline = time.monotonic() + timeout
    while (result := backend.result(key)) is None:
        assert time.monotonic() < deadline, f"{entry!r} still runs after {timeout}s"
        time.sleep(0.05)
    log = (attach / "log.txt").read_text() if (attach / "log.txt").exists() else ""
    backend.cleanup(key)
    return result, log, out


@pytest.fixture
def backend(tmp_path):
    return LocalBackend(str(tmp_path / "jobs"), hidden_dirs=[str(tmp_path / "secret")])


def test_the_sandbox_as_a_job_sees_it(backend, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "db.sqlite").write_text("secrets")
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "model.txt").write_text("weights")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "f.bin").write_text("raw data")
    entry = " && ".join([
        f"test ! -e {secret}/db.sqlite",
        "test \"$(cat /kqi/parent/model.txt)\" = weights",
        "! touch /kqi/parent/new 2>/dev/null",
        "test \"$(cat /kqi/raw/Data/f.bin)\" = 'raw data'",
        "! touch /kqi/raw/Data/new 2>/dev/null",
        "test \"$(pwd)\" = /kqi/git",
        "test \"$TRAINING_ID\" = 1",
        "test -z \"$KQI_SECRET_KEY$JUPYTERHUB_API_TOKEN\"",
        "test \"$(hostname)\" = kqi-job",
        "test \"$(ls /kqi | tr '\\n' ' ')\" = 'attach git home input output parent raw runtime tmp '",
        "echo written > /kqi/output/o.txt",
        "echo 'ps:' $(ls /proc | grep -c '^[0-9]')",
    ])
    result, log, out = run_job(backend, tmp_path, entry, parent_dirs={5: str(parent)}, raw_data_dir=str(raw))
    assert result.exit_code == 0, log
    assert (out / "o.txt").read_text() == "written\n"
    assert not (parent / "new").exists() and sorted(os.listdir(raw)) == ["f.bin"]
    # its own pid namespace: a handful of processes, not the host's
    count = int(re.search(r"^ps: (\d+)$", log, re.M).group(1))
    assert count < 10, log


def test_two_parents_are_mounted_by_id(backend, tmp_path):
    dirs = {}
    for i in (3, 4):
        d = tmp_path / f"p{i}"
        d.mkdir()
        (d / "x").write_text(str(i))
        dirs[i] = str(d)
    result, log, _ = run_job(backend, tmp_path, "cat /kqi/parent/3/x /kqi/parent/4/x; ! touch /kqi/parent/3/y",
                             parent_dirs=dirs)
    assert result.exit_code == 0 and "34" in log.replace("\n", ""), log


# ----------------------------------------------------------------------------- limits
@pytest.fixture
def cgroups():
    limiter = CgroupLimiter()
    if limiter.version is None:
        pytest.skip("cgroups are not writable on this host (neither v2 with memory+pids nor v1 "
                    "memory/cpu/pids): the local backend falls back to rlimits")
    return limiter


def test_cgroup_groups_are_made_and_removed(cgroups):
    name = f"test-{uuid.uuid4().hex[:8]}"
    procs = cgroups.create(name, Limits(cpu=0.5, memory_bytes=256 * 2**20, pids=64))
    try:
        assert procs and all(os.path.exists(p) for p in procs)
        dirs = cgroups.group_dirs(name)
        if cgroups.version == 2:
            d = dirs["unified"]
            assert open(os.path.join(d, "memory.max")).read().strip() == str(256 * 2**20)
            assert open(os.path.join(d, "pids.max")).read().strip() == "64"
        else:
            assert int(open(os.path.join(dirs["memory"], "memory.limit_in_bytes")).read()) == 256 * 2**20
            assert open(os.path.join(dirs["cpu"], "cpu.cfs_quota_us")).read().strip() == "50000"
            assert open(os.path.join(dirs["pids"], "pids.max")).read().strip() == "64"
    finally:
        cgroups.remove(name)
    assert not any(os.path.exists(d) for d in cgroups.group_dirs(name).values())


def test_a_job_over_its_memory_limit_is_oom_killed(backend, cgroups, tmp_path):
    assert backend.cgroups.version == cgroups.version
    entry = "python3 -c 'import time; x = bytearray(400 * 2**20); time.sleep(5)'"
    result, log, _ = run_job(backend, tmp_path, entry, memory_gib=0.125)
    assert result.exit_code not in (0, None), log
    assert result.oom_killed is True, log
    # the same job with room enough completes
    result, log, _ = run_job(backend, tmp_path, "python3 -c 'x = bytearray(40 * 2**20)'", memory_gib=0.125)
    assert result.exit_code == 0 and not result.oom_killed, log


BUSY = ("python3 -c 'import os, time\n"
        "w0, c0 = time.monotonic(), os.times()\n"
        "while time.monotonic() - w0 < 1.5: pass\n"
        "c1 = os.times(); print(\"ratio\", (c1.user + c1.system - c0.user - c0.system) / (time.monotonic() - w0))'")


def test_a_cpu_limit_of_half_a_core(backend, cgroups, tmp_path):
    if cgroups.version == 2 and not os.path.exists(os.path.join(cgroups.base, "cgroup.subtree_control")):
        pytest.skip("the cpu controller is not delegated here")
    free = subprocess.run(["sh", "-c", BUSY], capture_output=True, text=True).stdout
    baseline = float(free.split("ratio")[1])
    result, log, _ = run_job(backend, tmp_path, BUSY, cpu=0.5)
    assert result.exit_code == 0, log
    limited = float(re.search(r"^ratio ([0-9.]+)$", log, re.M).group(1))
    assert limited < 0.62, (limited, baseline)
    if baseline > 0.8:  # the host is not too busy to tell: the job got about its half core
        assert limited > 0.35, (limited, baseline)


def test_rlimit_fallback_without_cgroups(tmp_path):
    backend = LocalBackend(str(tmp_path / "jobs"), hidden_dirs=[], use_cgroups=False)
    # without cgroups the address space is limited to twice the memory
    result, log, _ = run_job(backend, tmp_path, "python3 -c 'x = bytearray(900 * 2**20)'", memory_gib=0.25)
    assert result.exit_code not in (0, None) and "MemoryError" in log, log
    result, log, _ = run_job(backend, tmp_path, "python3 -c 'x = bytearray(20 * 2**20)'", memory_gib=0.25)
    assert result.exit_code == 0, log


def test_halt_kills_the_tree(backend, tmp_path):
    key = f"training-{uuid.uuid4().hex[:8]}"
    marker = str(uuid.uuid4().int % 900000 + 100000)
    req = LaunchRequest(key=key, spec={"kind": "training", "id": 1, "entryPoint": f"sleep {marker} & sleep {marker}",
                                       "zip": False, "logName": "log.txt", "datasetId": None, "env": {}},
                        env={}, cpu=1, memory_gib=0.5, output_dir=str(tmp_path / "o"), attach_dir=str(tmp_path / "a"),
                        raw_data_dir=None, parent_dirs={}, inference_dirs={})
    backend.launch(req)

    def sleeps():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if open(f"/proc/{pid}/cmdline", "rb").read() == f"sleep\0{marker}\0".encode():
                    found.append(pid)
            except OSError:
                pass
        return found

    deadline = time.monotonic() + 20
    while len(sleeps()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sleeps()) == 2 and backend.is_running(key)
    backend.halt(key)
    assert not backend.is_running(key)
    deadline = time.monotonic() + 5
    while sleeps() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleeps() == []
    backend.cleanup(key)


def test_a_restarted_backend_finds_a_running_job_by_its_state_file(tmp_path):
    first = LocalBackend(str(tmp_path / "jobs"), hidden_dirs=[])
    key = "training-77"
    req = LaunchRequest(key=key, spec={"kind": "training", "id": 77, "entryPoint": "sleep 1.5", "zip": False,
                                       "logName": "log.txt", "datasetId": None, "env": {}},
                        env={}, cpu=1, memory_gib=0.5, output_dir=str(tmp_path / "o"), attach_dir=str(tmp_path / "a"),
                        raw_data_dir=None, parent_dirs={}, inference_dirs={})
    first.launch(req)
    second = LocalBackend(str(tmp_path / "jobs"), hidden_dirs=[])  # knows the job from state.json only
    assert second.is_running(key) and second.result(key) is None
    deadline = time.monotonic() + 20
    while second.result(key) is None:
        first.result(key)  # (the first one reaps its child, as the service's Popen would)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert second.result(key).exit_code == 0


LAUNCH_AND_EXIT = """
import sys
from kqi_services.jobs.local import LaunchRequest, LocalBackend
jobs, out, attach = sys.argv[1:4]
LocalBackend(jobs, hidden_dirs=[]).launch(LaunchRequest(
    key="training-5", spec={"kind": "training", "id": 5, "zip": False, "logName": "log.txt", "datasetId": None,
                            "env": {}, "entryPoint": "sleep 1; echo outlived > /kqi/output/x.txt"},
    env={}, cpu=1, memory_gib=0.5, output_dir=out, attach_dir=attach, raw_data_dir=None, parent_dirs={},
    inference_dirs={}))
"""


def test_a_job_outlives_the_process_that_launched_it(tmp_path):
    """A crash or kill -9 of the service must not end its jobs: the restarted service reconciles them."""
    jobs, out, attach = str(tmp_path / "jobs"), tmp_path / "out", str(tmp_path / "attach")
    launched = subprocess.run([sys.executable, "-c", LAUNCH_AND_EXIT, jobs, str(out), attach], capture_output=True,
                              text=True, timeout=60)
    assert launched.returncode == 0, launched.stderr  # the launching process has exited
    backend = LocalBackend(jobs, hidden_dirs=[])
    assert backend.is_running("training-5")
    deadline = time.monotonic() + 30
    while (result := backend.result("training-5")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert result.exit_code == 0 and (out / "x.txt").read_text() == "outlived\n"
    backend.cleanup("training-5")


def test_two_platforms_never_share_a_cgroup(cgroups, tmp_path):
    """Cgroups are machine-wide: the same job key on two platforms (two jobs folders) gets two
    groups, and halting one job leaves the other running."""
    first = LocalBackend(str(tmp_path / "a" / "jobs"), hidden_dirs=[])
    second = LocalBackend(str(tmp_path / "b" / "jobs"), hidden_dirs=[])
    assert first.cgroup_name("training-1") != second.cgroup_name("training-1")
    for backend, side in ((first, "a"), (second, "b")):
        backend.launch(LaunchRequest(
            key="training-1", spec={"kind": "training", "id": 1, "entryPoint": "sleep 60", "zip": False,
                                    "logName": "log.txt", "datasetId": None, "env": {}},
            env={}, cpu=1, memory_gib=0.5, output_dir=str(tmp_path / side / "o"), attach_dir=str(tmp_path / side / "a"),
            raw_data_dir=None, parent_dirs={}, inference_dirs={}))
    try:
        deadline = time.monotonic() + 20
        while not (cgroups.pids(first.cgroup_name("training-1")) and cgroups.pids(second.cgroup_name("training-1"))):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.halt("training-1")
        assert not first.is_running("training-1")
        time.sleep(0.3)
        assert second.is_running("training-1") and second.result("training-1") is None
    finally:
        second.halt("training-1")
        first.cleanup("training-1")
        second.cleanup("training-1")
    assert not any(os.path.exists(d) for d in cgroups.group_dirs(second.cgroup_name("training-1")).values())
