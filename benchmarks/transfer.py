#!/usr/bin/env python3
"""Data transfer benchmark: the official CLI against a plain copy, in the same run.

For each object store it starts (a real KQI Hub of its own, and for S3 a SeaweedFS server)
it moves one file of --size-mib MiB (1 GiB by default) both ways:

  local store   upload   `kqi data create -n ... -f FILE`     vs  `cp FILE <store folder>`
                download `kqi data download-files ID -d DIR`   vs  `cp <stored object> DIR`
  S3 store      upload   `kqi data create -n ... -f FILE`     vs  boto3 `upload_file`
                download `kqi data download-files ID -d DIR`   vs  boto3 `download_file`

and prints the throughput of each, the ratios CLI/baseline, the CPU time each side used
(the CLI, the hub's proxy and the kqi service, against cp or boto3: on a busy machine the
throughput follows the CPU share, the CPU time does not), and the kqi service's memory:
its resident set size (VmRSS of the process whose command line has kqi_services.app and
whose environment has this platform's data directory) sampled every 50 ms from before the
upload until the stored file's sha256 is recorded, and again during the download; the
peak growth over the idle value before each transfer is printed in MiB. The downloaded
bytes are compared with the uploaded ones.

Targets (issue 3): CLI throughput at least 0.8 of the baseline; service memory growth
under 100 MiB during a transfer.

Usage:  .venv/bin/python benchmarks/transfer.py [--size-mib 1024] [--store local|s3|both]
                                                [--work-dir DIR]
Needs about 6 x the file size of free disk in the work directory (a temporary folder).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import requests  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

from tests.platform import KQI_CLI, new_platform, store_user  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402

MiB = 1024 * 1024
RESULTS: list[tuple[str, str, str, float, bool]] = []


# ------------------------------------------------------------------------ measuring
def service_pid(data_dir: str) -> int:
    """The kqi service of the platform whose data directory is `data_dir`."""
    marker = data_dir.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            if b"kqi_services.app" not in cmdline:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read():
                    return int(entry)
        except OSError:
            continue
    raise RuntimeError(f"no kqi service process of {data_dir}")


def proxy_pid(data_dir: str) -> int | None:
    """The hub's configurable-http-proxy of this platform (it inherits the data directory)."""
    marker = data_dir.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"configurable-http-proxy" not in f.read():
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read():
                    return int(entry)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used during a `with` block by: child processes (the CLI, cp), this
    process (boto3), the kqi service and the hub's proxy."""

    def __init__(self, service: int, proxy: int | None):
        self.pids = {"service": service, "proxy": proxy}

    def __enter__(self):
        self._start = self._now()
        return self

    def __exit__(self, *exc):
        end = self._now()
        self.used = {k: end[k] - self._start[k] for k in end}

    def _now(self) -> dict:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        out = {k: cpu_seconds(pid) for k, pid in self.pids.items()}
        out["children"] = children.ru_utime + children.ru_stime
        out["self"] = me.ru_utime + me.ru_stime
        return out

    def total(self) -> float:
        return sum(self.used.values())

    def describe(self) -> str:
        parts = [f"{k} {v:.1f}" for k, v in self.used.items() if v >= 0.05]
        return f"{self.total():.1f} CPU s ({', '.join(parts) or 'none'})"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread: idle value, then peak."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.idle = rss_mib(pid)
        self.peak = self.idle
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.idle


def timed(func, *args, **kwargs) -> float:
    started = time.perf_counter()
    func(*args, **kwargs)
    return time.perf_counter() - started


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_file(path: str, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 * MiB))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def run_cli(user, *args: str) -> str:
    env = {**user.platform.env, "HOME": user.home}
    result = subprocess.run([KQI_CLI, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"kqi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wait_for_sha256(user, data_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = user.api("GET", f"/data/{data_id}/files").json()
        if files and files[0]["sha256"]:
            return files[0]
        time.sleep(0.05)
    raise RuntimeError("the service did not record the sha256 in time")


def report(store: str, what: str, size: int, cli_seconds: float, base_seconds: float, base_name: str,
           cli_cpu: CpuMeter, base_cpu: CpuMeter):
    cli_rate, base_rate = size / MiB / cli_seconds, size / MiB / base_seconds
    ratio = cli_rate / base_rate
    RESULTS.append((store, what, f"{cli_rate:.0f} MiB/s", ratio, ratio >= 0.8))
    print(f"  {what:8s} CLI {cli_seconds:6.2f} s {cli_rate:7.0f} MiB/s | {base_name} {base_seconds:6.2f} s "
          f"{base_rate:7.0f} MiB/s | ratio {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'})",
          flush=True)
    print(f"           CPU: CLI path {cli_cpu.describe()} | {base_name} {base_cpu.describe()}", flush=True)


def report_memory(store: str, what: str, sampler: RssSampler):
    met = sampler.growth < 100
    RESULTS.append((store, f"memory {what}", f"{sampler.growth:.1f} MiB", sampler.growth, met))
    print(f"  service RSS during {what}: idle {sampler.idle:.1f} MiB, peak {sampler.peak:.1f} MiB, growth "
          f"{sampler.growth:.1f} MiB over {sampler.samples} samples (target < 100 MiB: {'met' if met else 'MISSED'})",
          flush=True)


# ---------------------------------------------------------------------------- runs
def bench_store(kind: str, platform, source: str, source_sha: str, size: int, work: str, s3=None) -> None:
    print(f"\n[{kind} store] {size / MiB:.0f} MiB", flush=True)
    home = os.path.join(work, f"home-{kind}")
    user, view = store_user(platform, kind, s3=s3, home=home)
    pid = service_pid(platform.data_dir)
    proxy = proxy_pid(platform.data_dir)
    out_cli = os.path.join(work, f"cli-{kind}")
    out_base = os.path.join(work, f"base-{kind}")
    os.makedirs(out_cli)
    os.makedirs(out_base)

    # baseline upload
    with CpuMeter(pid, proxy) as base_up_cpu:
        if kind == "local":
            store_copy = os.path.join(view.root, "bench-baseline.bin")
            base_up = timed(subprocess.run, ["cp", source, store_copy], check=True)
        else:
            client = s3.client()
            config = TransferConfig()  # boto3's defaults, as a user of plain boto3 gets them
            base_up = timed(client.upload_file, source, view.bucket, "bench/baseline.bin", Config=config)

    # CLI upload; memory until the service has hashed the stored file
    time.sleep(1)
    with RssSampler(pid) as up_memory:
        started = time.perf_counter()
        with CpuMeter(pid, proxy) as cli_up_cpu:
            out = run_cli(user, "data", "create", "-n", f"bench-{kind}", "-f", source)
        cli_up = time.perf_counter() - started
        data_id = int(out.split("created")[-1].split()[0])
        recorded = wait_for_sha256(user, data_id)
        hashed_after = time.perf_counter() - started
    assert recorded["fileSize"] == size and recorded["sha256"] == source_sha, recorded
    report(kind, "upload", size, cli_up, base_up, "cp" if kind == "local" else "boto3 upload_file",
           cli_up_cpu, base_up_cpu)
    print(f"  (sha256 recorded {hashed_after - cli_up:.1f} s after the CLI finished)")
    report_memory(kind, "upload+hash", up_memory)

    # baseline download
    with CpuMeter(pid, proxy) as base_down_cpu:
        if kind == "local":
            stored = [k for k in view.keys() if k.endswith("/" + os.path.basename(source))][0]
            base_down = timed(subprocess.run, ["cp", os.path.join(view.root, *stored.split("/")),
                                               os.path.join(out_base, "file.bin")], check=True)
        else:
            base_down = timed(client.download_file, view.bucket, "bench/baseline.bin",
                              os.path.join(out_base, "file.bin"), Config=config)
    if kind == "local":
        os.remove(store_copy)

    # CLI download
    time.sleep(1)
    with RssSampler(pid) as down_memory, CpuMeter(pid, proxy) as cli_down_cpu:
        cli_down = timed(run_cli, user, "data", "download-files", str(data_id), "-d", out_cli)
    downloaded = os.path.join(out_cli, os.path.basename(source))
    assert sha256_of(downloaded) == source_sha, "the downloaded bytes differ from the uploaded ones"
    report(kind, "download", size, cli_down, base_down, "cp" if kind == "local" else "boto3 download_file",
           cli_down_cpu, base_down_cpu)
    report_memory(kind, "download", down_memory)
    shutil.rmtree(out_cli)
    shutil.rmtree(out_base)
    requests.delete(f"{platform.api_url}/data/{data_id}", headers={"Authorization": f"Bearer {user.token}"},
                    timeout=600)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file to move (MiB)")
    parser.add_argument("--store", choices=("local", "s3", "both"), default="both")
    parser.add_argument("--work-dir", default=None, help="where the platform and the files go (a temp dir)")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    kinds = ("local", "s3") if args.store == "both" else (args.store,)

    work = tempfile.mkdtemp(prefix="kqi-bench-", dir=args.work_dir)
    s3 = platform = None
    try:
        print(f"work directory {work}; {os.cpu_count()} CPUs", flush=True)
        if "s3" in kinds:
            s3 = SeaweedS3(os.path.join(work, "s3")).start()
        platform = new_platform(os.path.join(work, "platform"))
        platform.start(timeout=180)
        source = os.path.join(work, "payload.bin")
        source_sha = make_file(source, size)
        for kind in kinds:
            bench_store(kind, platform, source, source_sha, size, work, s3=s3)
    finally:
        if platform is not None:
            platform.stop()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\nsummary")
    for store, what, value, _, met in RESULTS:
        label = f"{store} {what}"
        print(f"  {label:28s} {value:>12s}  {'met' if met else 'MISSED'}"
              + (f"  (ratio {_:.2f})" if not what.startswith("memory") else ""))
    return 0 if all(r[4] for r in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
