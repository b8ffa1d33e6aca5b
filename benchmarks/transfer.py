#!/usr/bin/env python3
"""Data transfer benchmark: the official CLI on the local store against what a user would pick
instead, in the same run.

It starts a real KQI Hub of its own (as `kqi-hub` on one machine does: the local store's signed
URLs on the service's direct listener unless --through-proxy) and a SeaweedFS S3 server
(`weed mini`), makes one file of --size-mib MiB (1 GiB by default) and, in each of --rounds
rounds, moves it both ways with:

  local CLI   `kqi data create -n ... -f FILE` / `kqi data download-files ID -d DIR` on a tenant
              of the local store (the figure under test)
  S3 CLI      the same official CLI (kamonohashi-cli 4.0.2) on a tenant whose storage endpoint is
              the SeaweedFS server: the baseline, what a user would pick instead (target: local
              CLI >= 0.8 x S3 CLI in both directions)
  curl        the same signed URLs of the local store with curl (GET /upload/parameter, one curl
              for every 16 MiB part, POST /upload/complete; GET .../files?withUrl=true then curl
              -o): the platform's own share, without the Python client's cost; with the direct
              listener also the same URLs on the hub's address (through configurable-http-proxy)
  cp          `cp` into and out of the store's folder: the physical limit (printed, no target)
  boto3       plain boto3 upload_file/download_file against SeaweedFS (printed, the S3 store's
              own target of issue 3: S3 CLI >= 0.8 x boto3)

The rates are the medians of the rounds (the measurements alternate within a round, so a load
peak of the shared machine hits them alike). Also printed: the CPU time each side used (the
client, the hub's proxy and the kqi service), and the kqi service's memory: its resident set
size (VmRSS of the process whose command line has kqi_services.app and whose environment has
this platform's data directory) sampled every 50 ms from before the local CLI upload until the
stored file's sha256 is recorded, and during the local CLI download; the largest growth over
the idle value before a transfer is printed in MiB (target < 100 MiB). The downloaded bytes
are compared with the uploaded ones.

Usage:  .venv/bin/python benchmarks/transfer.py [--size-mib 1024] [--rounds 3] [--through-proxy]
                                                [--work-dir DIR]
Needs about 8 x the file size of free disk in the work directory (a temporary folder).
Exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import requests  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from boto3.s3.transfer import TransferConfig  # noqa: E402

from tests.platform import KQI_CLI, new_platform, store_user  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402

MiB = 1024 * 1024


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
    """CPU seconds used during a `with` block by: child processes (the CLI, curl, cp), this
    process (boto3), the kqi service, the hub's proxy and `others` (the S3 server)."""

    def __init__(self, service: int | None, proxy: int | None, others: dict | None = None):
        self.pids = {"service": service, "proxy": proxy, **(others or {})}

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


def median(values: list[float]) -> float:
    return statistics.median(values)


class Results:
    """Seconds and CPU meters of each (what, direction) over the rounds."""

    def __init__(self):
        self.seconds: dict[tuple[str, str], list[float]] = {}
        self.cpu: dict[tuple[str, str], list[CpuMeter]] = {}
        self.memory: dict[str, list[RssSampler]] = {}

    def add(self, what: str, direction: str, seconds: float, cpu: CpuMeter | None = None) -> None:
        self.seconds.setdefault((what, direction), []).append(seconds)
        if cpu is not None:
            self.cpu.setdefault((what, direction), []).append(cpu)

    def rate(self, size: int, what: str, direction: str) -> float:
        return size / MiB / median(self.seconds[(what, direction)])

    def cpu_text(self, what: str, direction: str) -> str:
        meters = self.cpu.get((what, direction))
        if not meters:
            return ""
        meter = sorted(meters, key=CpuMeter.total)[len(meters) // 2]
        return meter.describe()


# ---------------------------------------------------------------------------- runs
def cli_round(user, kind: str, source: str, source_sha: str, size: int, work: str, pid: int, proxy: int | None,
              results: Results, round_no: int, others: dict | None = None) -> None:
    """The official CLI: upload (until the service recorded the sha256, for the memory), download."""
    out = os.path.join(work, f"cli-{kind}-{round_no}")
    os.makedirs(out)
    what = f"{kind} CLI"
    time.sleep(1)
    with RssSampler(pid) as up_memory:
        started = time.perf_counter()
        with CpuMeter(pid, proxy, others) as up_cpu:
            created = run_cli(user, "data", "create", "-n", f"bench-{kind}-{round_no}", "-f", source)
        up_seconds = time.perf_counter() - started
        data_id = int(created.split("created")[-1].split()[0])
        recorded = wait_for_sha256(user, data_id)
    assert recorded["fileSize"] == size and recorded["sha256"] == source_sha, recorded
    results.add(what, "upload", up_seconds, up_cpu)
    time.sleep(1)
    with RssSampler(pid) as down_memory, CpuMeter(pid, proxy, others) as down_cpu:
        down_seconds = timed(run_cli, user, "data", "download-files", str(data_id), "-d", out)
    downloaded = os.path.join(out, os.path.basename(source))
    assert sha256_of(downloaded) == source_sha, f"{what}: the downloaded bytes differ from the uploaded ones"
    results.add(what, "download", down_seconds, down_cpu)
    if kind == "local":
        results.memory.setdefault("upload+hash", []).append(up_memory)
        results.memory.setdefault("download", []).append(down_memory)
    print(f"  round {round_no} {what:9s} upload {size / MiB / up_seconds:6.0f} MiB/s, download "
          f"{size / MiB / down_seconds:6.0f} MiB/s" + (f" (service RSS growth {up_memory.growth:.1f} / "
                                                       f"{down_memory.growth:.1f} MiB)" if kind == "local" else ""),
          flush=True)
    shutil.rmtree(out)
    requests.delete(f"{user.platform.api_url}/data/{data_id}", headers={"Authorization": f"Bearer {user.token}"},
                    timeout=600)


def through_proxy(url: str, hub_url: str) -> str:
    """The same signed URL on the hub's address (the proxy serves the same path)."""
    parts = urlsplit(url)
    return hub_url + parts.path + "?" + parts.query


def curl_round(user, parts: list[str], size: int, source_sha: str, work: str, pid: int, proxy: int | None,
               results: Results, round_no: int, via_proxy: bool = False) -> None:
    """curl on the local store's signed URLs: the parts as the CLI sends them, then the file back;
    `via_proxy`: the same URLs on the hub's address, through configurable-http-proxy."""
    what = "curl (proxy)" if via_proxy else "curl"

    def where(url: str) -> str:
        return through_proxy(url, user.platform.url) if via_proxy else url

    time.sleep(1)
    with CpuMeter(pid, proxy) as up_cpu:
        started = time.perf_counter()
        r = user.api("GET", "/upload/parameter", params={"fileName": "curl.bin", "partSum": len(parts),
                                                          "type": "Data"})
        assert r.status_code == 200, r.text
        upload = r.json()
        command = ["curl", "-sS", "--fail", "-H", "Expect:", "-w", "%header{etag}\\n"]
        for part, url in zip(parts, upload["uris"]):
            command += ["-T", part, where(url)]
        etags = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
        assert len(etags) == len(parts), etags
        r = user.api("POST", "/upload/complete", json={
            "key": upload["key"], "uploadId": upload["uploadId"],
            "partETags": [f"{n}+{etag}" for n, etag in enumerate(etags, start=1)]})
        assert r.status_code == 200, r.text
        # as the CLI: the data, then its file
        r = user.api("POST", "/data", json={"name": f"curl-{'proxy-' if via_proxy else ''}{round_no}"})
        assert r.status_code == 201, r.text
        data_id = r.json()["id"]
        r = user.api("POST", f"/data/{data_id}/files",
                     json={"files": [{"fileName": "curl.bin", "storedPath": upload["storedPath"]}]})
        up_seconds = time.perf_counter() - started
    assert r.status_code == 201, r.text
    results.add(what, "upload", up_seconds, up_cpu)
    out = os.path.join(work, f"curl-{round_no}.bin")
    time.sleep(1)
    with CpuMeter(pid, proxy) as down_cpu:
        started = time.perf_counter()
        r = user.api("GET", f"/data/{data_id}/files", params={"withUrl": "true"})
        assert r.status_code == 200, r.text
        subprocess.run(["curl", "-sS", "--fail", "-o", out, where(r.json()[0]["url"])], check=True)
        down_seconds = time.perf_counter() - started
    assert os.path.getsize(out) == size and sha256_of(out) == source_sha, "curl: the downloaded bytes differ"
    results.add(what, "download", down_seconds, down_cpu)
    os.remove(out)
    print(f"  round {round_no} {what:9s} upload {size / MiB / up_seconds:6.0f} MiB/s, download "
          f"{size / MiB / down_seconds:6.0f} MiB/s", flush=True)
    wait_for_sha256(user, data_id)  # the background hash is over before the next measurement
    user.api("DELETE", f"/data/{data_id}")


def cp_round(source: str, store_root: str, work: str, results: Results, round_no: int) -> None:
    stored = os.path.join(store_root, f"bench-cp-{round_no}.bin")
    out = os.path.join(work, f"cp-{round_no}.bin")
    with CpuMeter(None, None) as up_cpu:
        up_seconds = timed(subprocess.run, ["cp", source, stored], check=True)
    with CpuMeter(None, None) as down_cpu:
        down_seconds = timed(subprocess.run, ["cp", stored, out], check=True)
    results.add("cp", "upload", up_seconds, up_cpu)
    results.add("cp", "download", down_seconds, down_cpu)
    os.remove(stored)
    os.remove(out)


def boto3_round(s3, bucket: str, source: str, work: str, results: Results, round_no: int) -> None:
    client = s3.client()
    config = TransferConfig()  # boto3's defaults, as a user of plain boto3 gets them
    out = os.path.join(work, f"boto3-{round_no}.bin")
    key = f"bench/boto3-{round_no}.bin"
    with CpuMeter(None, None, {"weed": s3.process.pid}) as up_cpu:
        up_seconds = timed(client.upload_file, source, bucket, key, Config=config)
    with CpuMeter(None, None, {"weed": s3.process.pid}) as down_cpu:
        down_seconds = timed(client.download_file, bucket, key, out, Config=config)
    results.add("boto3", "upload", up_seconds, up_cpu)
    results.add("boto3", "download", down_seconds, down_cpu)
    client.delete_object(Bucket=bucket, Key=key)
    os.remove(out)


def split_parts(source: str, work: str, part_size: int = 16 * MiB) -> list[str]:
    """The file in parts of the CLI's size (16 MiB) for curl, which cannot send a byte range of a file."""
    parts = []
    with open(source, "rb") as f:
        while True:
            chunk = f.read(part_size)
            if not chunk:
                return parts
            parts.append(os.path.join(work, f"part-{len(parts) + 1:05d}"))
            with open(parts[-1], "wb") as out:
                out.write(chunk)


def report(size: int, results: Results, direct: bool) -> bool:
    """Print the medians, the ratios and the memory; True when every target is met."""
    ok = True
    print(f"\nmedians of {len(results.seconds[('local CLI', 'upload')])} round(s); {size / MiB:.0f} MiB; "
          f"local store URLs {'on the direct listener' if direct else 'through the hub proxy'}")
    for direction in ("upload", "download"):
        local = results.rate(size, "local CLI", direction)
        s3_cli = results.rate(size, "S3 CLI", direction)
        curl = results.rate(size, "curl", direction)
        cp = results.rate(size, "cp", direction)
        boto = results.rate(size, "boto3", direction)
        ratio = local / s3_cli
        met = ratio >= 0.8
        ok &= met
        print(f"  {direction}")
        print(f"    local CLI {local:7.0f} MiB/s   {results.cpu_text('local CLI', direction)}")
        print(f"    S3 CLI    {s3_cli:7.0f} MiB/s   {results.cpu_text('S3 CLI', direction)}")
        print(f"    curl      {curl:7.0f} MiB/s   {results.cpu_text('curl', direction)} (the same URLs)")
        if ("curl (proxy)", direction) in results.seconds:
            print(f"    curl/proxy{results.rate(size, 'curl (proxy)', direction):7.0f} MiB/s   "
                  f"{results.cpu_text('curl (proxy)', direction)} (the same URLs on the hub's address)")
        print(f"    cp        {cp:7.0f} MiB/s   {results.cpu_text('cp', direction)} (the physical limit)")
        print(f"    boto3     {boto:7.0f} MiB/s   {results.cpu_text('boto3', direction)} (S3 store: S3 CLI / boto3"
              f" {s3_cli / boto:.2f})")
        print(f"    local CLI / S3 CLI {ratio:.2f} (target >= 0.8: {'met' if met else 'MISSED'});"
              f" local CLI / curl {local / curl:.2f}; curl / cp {curl / cp:.2f}")
    for what, samplers in results.memory.items():
        worst = max(samplers, key=lambda m: m.growth)
        met = worst.growth < 100
        ok &= met
        print(f"  service RSS during the local CLI {what}: idle {worst.idle:.1f} MiB, peak {worst.peak:.1f} MiB,"
              f" largest growth {worst.growth:.1f} MiB of {len(samplers)} (target < 100 MiB: "
              f"{'met' if met else 'MISSED'})")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file to move (MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement (medians printed)")
    parser.add_argument("--through-proxy", action="store_true",
                        help="the local store's URLs through the hub's proxy (KQI_DIRECT_TRANSFER=off), as before")
    parser.add_argument("--work-dir", default=None, help="where the platform and the files go (a temp dir)")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB

    work = tempfile.mkdtemp(prefix="kqi-bench-", dir=args.work_dir)
    s3 = platform = None
    results = Results()
    try:
        print(f"work directory {work}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}", flush=True)
        s3 = SeaweedS3(os.path.join(work, "s3")).start()
        platform = new_platform(os.path.join(work, "platform"),
                                {"KQI_DIRECT_TRANSFER": "off" if args.through_proxy else "on"})
        platform.start(timeout=180)
        source = os.path.join(work, "payload.bin")
        source_sha = make_file(source, size)
        parts = split_parts(source, work)
        local_user, local_view = store_user(platform, "local", home=os.path.join(work, "home-local"))
        s3_user, s3_view = store_user(platform, "s3", s3=s3, home=os.path.join(work, "home-s3"))
        pid, proxy = service_pid(platform.data_dir), proxy_pid(platform.data_dir)
        for round_no in range(1, args.rounds + 1):
            # alternate the order, so that neither side always runs first
            order = ("local", "s3") if round_no % 2 else ("s3", "local")
            for kind in order:
                cli_round(local_user if kind == "local" else s3_user, "local" if kind == "local" else "S3",
                          source, source_sha, size, work, pid, proxy, results, round_no,
                          None if kind == "local" else {"weed": s3.process.pid})
            curl_round(local_user, parts, size, source_sha, work, pid, proxy, results, round_no)
            if not args.through_proxy:
                curl_round(local_user, parts, size, source_sha, work, pid, proxy, results, round_no, via_proxy=True)
            cp_round(source, local_view.root, work, results, round_no)
            boto3_round(s3, s3_view.bucket, source, work, results, round_no)
        print(f"load at the end {os.getloadavg()[0]:.1f}")
        ok = report(size, results, not args.through_proxy)
    finally:
        if platform is not None:
            platform.stop()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
