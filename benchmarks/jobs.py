#!/usr/bin/env python3
"""Job engine benchmarks, each against a baseline measured in the same run.

  1. scheduler admission throughput: pure admit() over 10,000 queued jobs of 50 tenants
     (bulk: one call admits all; steady: capacity frees one job at a time, one call per
     admission), against a plain FIFO sort of the same records.        target >= 500 /s
  2. submit-to-running latency of a no-op training on the local backend (a real KQI Hub),
     from just before POST /training/run until the command runs in its container, p50/p99
     over 100 jobs, against a plain `podman run` of the same no-op in the same image.
                                                                           target p99 < 1 s
  3. the whole cost of a 30-second training with a 1,000-file dataset and a git clone
     (submit until Completed is visible in the API) against running the same script by
     hand in the same image (`podman run`: git clone + the script on a copy of the files).
                                                                           target <= 1.1x
  4. the engine's tick (the real JobEngine.tick(): its database reads and the admission of a full
     queue) with 100,000 finished jobs in the database against the same tick with none, on SQLite
     and on PostgreSQL: 1,000 Queued jobs wait (the backend is full), two databases side by side,
     ticks alternated; the ratio of the medians.             target <= 1.1x (the noise margin)

Usage: .venv/bin/python benchmarks/jobs.py [--jobs 100] [--queued 10000] [--tenants 50]
                                           [--seconds 30] [--files 1000] [--waiting 1000]
                                           [--finished 100000] [--ticks 200]
                                           [--only scheduler|tick|latency|whole]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from kqi_services.jobs.scheduler import Capacity, Quota, Request, admit  # noqa: E402

RESULTS: list[tuple[str, str, str, str, bool]] = []  # what, measured, baseline, target, met


def report(what: str, measured: str, baseline: str, target: str, met: bool) -> None:
    RESULTS.append((what, measured, baseline, target, met))
    print(f"  {what}: {measured}   (baseline {baseline}; target {target}: {'met' if met else 'MISSED'})", flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


# ------------------------------------------------------------------------- 1. scheduler
def fifo(queued: list[Request], running: list[Request], capacity: Capacity) -> list[int]:
    """The baseline: one FIFO queue for everybody, admit while the capacity allows."""
    free = capacity.cpu - sum(r.cpu for r in running)
    started = []
    for r in sorted(queued, key=lambda r: r.order):
        if r.cpu > free:
            break
        free -= r.cpu
        started.append(r.job_id)
    return started


def bench_scheduler(n_queued: int, n_tenants: int) -> None:
    print(f"\n1. scheduler admission throughput ({n_queued:,} queued jobs, {n_tenants} tenants)", flush=True)
    rng = random.Random(1)
    tenants = [f"tenant-{i}" for i in range(n_tenants)]
    queued = [Request(i, rng.choice(tenants), 1.0, 1.0, 0, (rng.random(), i)) for i in range(1, n_queued + 1)]
    quotas = {t: Quota(cpu=rng.choice([None, 50, 400])) for t in tenants}

    # bulk: room for every job; one call admits as many as the quotas allow
    roomy = Capacity(cpu=n_queued, memory=n_queued, gpu=0)
    t0 = time.perf_counter()
    decision = admit(queued, [], quotas, roomy)
    bulk = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_started = fifo(queued, [], roomy)
    base_bulk = time.perf_counter() - t0
    report("bulk, one admit() call", f"{len(decision.start) / bulk:,.0f} admissions/s "
           f"({len(decision.start):,} admitted, {len(decision.waiting):,} positions in {bulk * 1000:.0f} ms)",
           f"FIFO sort {len(base_started) / base_bulk:,.0f}/s", ">= 500/s", len(decision.start) / bulk >= 500)

    # steady: 200 run and the queue stays about 10,000 deep; each round one job ends and
    # admit() runs again (the worst case for the engine: one admission per tick). Only the
    # calls are timed, for admit() and for the FIFO baseline alike.
    capacity = Capacity(cpu=200, memory=100000, gpu=0)
    more = [Request(n_queued + i, rng.choice(tenants), 1.0, 1.0, 0, (1 + rng.random(), n_queued + i))
            for i in range(1, 201)]

    def steady(schedule, rounds=200):
        running, waiting, spent, admitted = list(queued[:200]), list(queued[200:]) + more, 0.0, 0
        for _ in range(rounds):
            running.pop(0)
            t0 = time.perf_counter()
            started = set(schedule(waiting, running))
            spent += time.perf_counter() - t0
            admitted += len(started)
            running += [r for r in waiting if r.job_id in started]
            waiting = [r for r in waiting if r.job_id not in started]
        return admitted, spent, len(waiting)

    admitted, spent, depth = steady(lambda w, r: admit(w, r, {}, capacity).start)
    base_admitted, base_spent, _ = steady(lambda w, r: fifo(w, r, capacity))
    report("steady, one job ends per admit() call (the cost of a tick)",
           f"{admitted / spent:,.0f} admissions/s ({spent / admitted * 1000:.1f} ms a call over {depth:,} queued)",
           f"FIFO sort {base_admitted / base_spent:,.0f}/s ({base_spent / base_admitted * 1000:.1f} ms a call)",
           "none (the engine admits once a tick, 1 s)", True)


# ------------------------------------------------------------------------------ 4. tick
class FullBackend:
    """The backend side of the measured ticks: 8 cpus, all held by the running jobs, so every
    queued job waits and nothing is launched; a running job has no result yet. Nothing runs, so
    what a tick costs is its database reads and the admission of the queue: the work that
    finished jobs in the table could make grow."""

    name = "local"
    capacity_cpu, capacity_memory_gib, capacity_gpu = 8.0, 64.0, 0
    on_exit = None

    def result(self, key):
        return None

    def status_note(self, key):
        return None


class TickDatabase:
    """An upgraded database with tenants, waiting and running jobs, and the engine that ticks on it."""

    def __init__(self, url: str, n_waiting: int, n_tenants: int = 5):
        import logging

        from kqi_services.db import session as dbs
        from kqi_services.db.models import Tenant
        from kqi_services.jobs.engine import JobEngine

        dbs.upgrade(url)
        self.engine = dbs.make_engine(url)
        factory = dbs.make_session_factory(self.engine)
        with factory() as db:
            tenants = [Tenant(name=f"tick-{i}", display_name=f"tick {i}") for i in range(n_tenants)]
            db.add_all(tenants)
            db.commit()
            self.tenant_ids = [t.id for t in tenants]
        self.next_display = 1
        # the backend is full: 4 jobs of 2 cpus run on it, 4 more on another backend
        self.insert(4, ["Running"], backend="local", cpu=2.0)
        self.insert(4, ["Running"], backend="kubernetes", cpu=2.0)
        self.insert(n_waiting, ["Queued"])
        self.analyze()
        self.jobs = JobEngine(SimpleNamespace(session_factory=factory, log=logging.getLogger("bench-tick")),
                              FullBackend())

    def insert(self, count: int, statuses: list[str], backend: str | None = None, cpu: float = 1.0) -> None:
        from kqi_services.db.models_jobs import Job

        for start in range(0, count, 10_000):
            rows = []
            for i in range(start, min(count, start + 10_000)):
                n = self.next_display + i
                rows.append({"tenant_id": self.tenant_ids[i % len(self.tenant_ids)], "kind": "training",
                             "display_id": n, "name": f"job-{n}", "status": statuses[i % len(statuses)],
                             "backend": backend, "cpu": cpu, "memory": 1.0, "gpu": 0})
            with self.engine.begin() as c:
                c.execute(Job.__table__.insert(), rows)  # executemany
        self.next_display += count

    def analyze(self) -> None:
        from kqi_services.db.session import refresh_statistics

        refresh_statistics(self.engine)

    def tick(self) -> float:
        t0 = time.perf_counter()
        self.jobs.tick()
        return time.perf_counter() - t0

    def statements_of_a_tick(self) -> int:
        from sqlalchemy import event

        seen = []

        def count(*_args):
            seen.append(1)

        event.listen(self.engine, "before_cursor_execute", count)
        try:
            self.jobs.tick()
        finally:
            event.remove(self.engine, "before_cursor_execute", count)
        return len(seen)


def alternated(a: TickDatabase, b: TickDatabase, rounds: int) -> tuple[list[float], list[float]]:
    """Ticks of a and b in turns (a b b a ...), so the machine's noise falls on both alike; the
    garbage collector runs between the pairs, not inside a timed tick of one side."""
    import gc

    for db in (a, b):  # warm: connections, statement caches, pages in memory
        for _ in range(5):
            db.tick()
    times_a, times_b = [], []
    try:
        for r in range(rounds):
            first, second = ((a, times_a), (b, times_b)) if r % 2 == 0 else ((b, times_b), (a, times_a))
            gc.collect()
            gc.disable()
            first[1].append(first[0].tick())
            second[1].append(second[0].tick())
            gc.enable()
    finally:
        gc.enable()
    return times_a, times_b


def bench_tick(n_waiting: int, n_finished: int, rounds: int) -> None:
    import statistics

    from tests.postgres import PostgresServer

    print(f"\n4. the engine's tick: {n_waiting:,} queued jobs waiting, {n_finished:,} finished jobs "
          f"against none ({rounds} ticks each, alternated)", flush=True)
    tmp = tempfile.mkdtemp(prefix="kqi-bench-tick-")
    pg = None
    try:
        for dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                urls = [f"sqlite:///{tmp}/none.sqlite", f"sqlite:///{tmp}/finished.sqlite"]
            else:
                pg = PostgresServer().start()
                urls = [pg.create_database("tick_none"), pg.create_database("tick_finished")]
            none, finished = (TickDatabase(url, n_waiting) for url in urls)
            # the two databases alike (both without finished jobs): how much twins differ here
            twin_a, twin_b = alternated(none, finished, rounds)
            twins = statistics.median(twin_b) / statistics.median(twin_a)
            t0 = time.perf_counter()
            finished.insert(n_finished, ["Completed", "Completed", "Failed", "Killed"])
            finished.analyze()
            none.analyze()
            print(f"   {dialect}: inserted {n_finished:,} finished jobs in {time.perf_counter() - t0:.1f} s; "
                  f"a tick runs {none.statements_of_a_tick()} statements without them, "
                  f"{finished.statements_of_a_tick()} with them; twins before the insert: {twins:.3f}x", flush=True)
            assert len(none.jobs.queue_info) == len(finished.jobs.queue_info) == n_waiting  # all wait
            base, measured = alternated(none, finished, rounds)
            b50, m50 = statistics.median(base), statistics.median(measured)
            ratio = m50 / b50
            report(f"{dialect}: tick with {n_finished:,} finished jobs, median / p95",
                   f"{m50 * 1000:.2f} / {pct(measured, 95) * 1000:.2f} ms = {ratio:.3f}x the median without",
                   f"no finished jobs {b50 * 1000:.2f} / {pct(base, 95) * 1000:.2f} ms",
                   "<= 1.1x (\"no more than\", with 10 % for the machine's noise)", ratio <= 1.1)
            for db in (none, finished):
                db.engine.dispose()
    finally:
        if pg is not None:
            pg.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------ the platform
def start_platform(base: str):
    from tests.platform import ModelRepo, new_platform, tenant_user

    plat = new_platform(base)
    print(f"   starting a KQI Hub in {base} ...", flush=True)
    plat.start(timeout=120)
    user = tenant_user(plat)
    repo = ModelRepo(plat, os.path.join(base, "work"), "bench", "model", tenant=user.tenant)
    return plat, user, repo


def upload_many(user, data_id: int, files: dict[str, bytes]) -> None:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {user.token}"
    api = user.platform.api_url

    def one(item):
        name, content = item
        r = session.get(f"{api}/upload/parameter", params={"fileName": name, "partSum": 1, "type": "Data"})
        r.raise_for_status()
        up = r.json()
        put = requests.put(up["uris"][0], data=content, timeout=60)
        put.raise_for_status()
        r = session.post(f"{api}/upload/complete", json={"key": up["key"], "uploadId": up["uploadId"],
                                                         "partETags": [f"1+{put.headers['ETag']}"]})
        r.raise_for_status()
        return {"fileName": name, "storedPath": up["storedPath"]}

    with ThreadPoolExecutor(8) as pool:
        entries = list(pool.map(one, files.items()))
    for i in range(0, len(entries), 200):
        r = session.post(f"{api}/data/{data_id}/files", json={"files": entries[i:i + 200]})
        assert r.status_code == 201, r.text


def make_dataset(user, files: dict[str, bytes], name: str) -> int:
    r = user.api("POST", "/data", json={"name": name})
    assert r.status_code == 201, r.text
    data_id = r.json()["id"]
    upload_many(user, data_id, files)
    r = user.api("POST", "/datasets", json={"name": name, "entries": {"training": [{"id": data_id}]}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def submit(user, repo, dataset_id: int, name: str, entry: str) -> int:
    body = {"name": name, "dataSetId": dataset_id, "entryPoint": entry, "cpu": 1, "memory": 1, "gpu": 0,
            "containerImage": {"image": "python", "tag": "3.11"},
            "gitModel": {"gitId": 1, "owner": repo.owner, "repository": repo.name}}
    r = user.api("POST", "/training/run", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_status(user, job_id: int, statuses=("Completed", "Failed", "Killed", "Error"), poll=0.05, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        job = user.api("GET", f"/training/{job_id}").json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise RuntimeError(f"training {job_id} is still {job['status']}")
        time.sleep(poll)


def wait_file(path: str, timeout=60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return text
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.002)


# -------------------------------------------------------------------------- 2. latency
def bench_latency(ctx, n_jobs: int) -> None:
    from tests.platform import job_output_dir

    plat, user, repo = ctx["plat"], ctx["user"], ctx["repo"]
    print(f"\n2. submit-to-running latency of a no-op training ({n_jobs} jobs, local backend)", flush=True)
    dataset_id = make_dataset(user, {"x.txt": b"x"}, "noop-data")
    entry = "date +%s.%N > /kqi/output/started"
    latencies, to_running = [], []
    for i in range(n_jobs):
        t0 = time.time()
        job_id = submit(user, repo, dataset_id, f"noop-{i}", entry)
        started = float(wait_file(os.path.join(job_output_dir(plat, user.tenant, job_id), "started")))
        latencies.append(started - t0)
        wait_status(user, job_id)
    with tempfile.TemporaryDirectory() as tmp:
        base = []
        for i in range(n_jobs):
            path = os.path.join(tmp, f"started-{i}")
            t0 = time.time()
            run_by_hand(["sh", "-c", f"date +%s.%N > /out/started-{i}"], {tmp: "/out"})
            base.append(float(wait_file(path)) - t0)
    p50, p99 = pct(latencies, 50), pct(latencies, 99)
    b50, b99 = pct(base, 50), pct(base, 99)
    report("submit to running, p50 / p99", f"{p50 * 1000:.0f} ms / {p99 * 1000:.0f} ms (max {max(latencies) * 1000:.0f})",
           f"`podman run` by hand {b50 * 1000:.0f} ms / {b99 * 1000:.0f} ms", "p99 < 1 s", p99 < 1.0)


def run_by_hand(command: list[str], volumes: dict[str, str]) -> None:
    """The same command in the same image with a plain `podman run` (what a user would type)."""
    from tests import images

    args = ["podman", "run", "--rm", "--network", "host", *images.podman_base_args()]
    for source, target in volumes.items():
        args += ["--volume", f"{source}:{target}"]
    subprocess.run(args + [images.PYTHON_ALIAS] + command, check=True, capture_output=True)


# ----------------------------------------------------------------------- 3. whole cost
TRAIN_PY = r'''
import hashlib, os, sys, time
root, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
digest, count = hashlib.sha256(), 0
for dirpath, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(files):
        with open(os.path.join(dirpath, name), "rb") as f:
            digest.update(f.read())
        count += 1
time.sleep(seconds)  # the training itself
os.makedirs(out, exist_ok=True)
for i in range(10):
    with open(os.path.join(out, f"checkpoint-{i}.bin"), "wb") as f:
        f.write(os.urandom(100000))
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write(f"{count} {digest.hexdigest()}\n")
print(count, digest.hexdigest())
'''


def bench_whole(ctx, seconds: float, n_files: int) -> None:
    from tests.platform import job_output_dir

    plat, user, repo = ctx["plat"], ctx["user"], ctx["repo"]
    print(f"\n3. whole cost of a {seconds:g}-second training with a {n_files:,}-file dataset and a git clone",
          flush=True)
    rng = random.Random(3)
    files = {f"file-{i:04d}.bin": rng.randbytes(4096) for i in range(n_files)}
    t0 = time.monotonic()
    dataset_id = make_dataset(user, files, "big-data")
    print(f"   (uploaded {n_files:,} files in {time.monotonic() - t0:.0f} s)", flush=True)
    commit = repo.commit({"train.py": TRAIN_PY, "weights/readme.txt": "model\n"}, "train")

    t0 = time.monotonic()
    job_id = submit(user, repo, dataset_id, "whole", f"python3 train.py /kqi/input /kqi/output {seconds}")
    job = wait_status(user, job_id, poll=0.1, timeout=seconds * 5 + 60)
    platform_seconds = time.monotonic() - t0
    assert job["status"] == "Completed", job
    with open(os.path.join(job_output_dir(plat, user.tenant, job_id), "result.txt")) as f:
        in_job = f.read()

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "input", "training", "1")
        os.makedirs(data)
        for name, content in files.items():
            with open(os.path.join(data, name), "wb") as f:
                f.write(content)
        t0 = time.monotonic()
        script = (f"git clone --quiet /repo /bench/git && git -C /bench/git checkout --quiet --detach {commit}"
                  f" && cd /bench/git && python3 train.py /bench/input /bench/output {seconds}")
        run_by_hand(["sh", "-c", "git config --global --add safe.directory '*' && " + script],
                {tmp: "/bench", repo.bare: "/repo"})
        hand_seconds = time.monotonic() - t0
        with open(os.path.join(tmp, "output", "result.txt")) as f:
            by_hand = f.read()
    assert in_job == by_hand, (in_job, by_hand)  # the same files, the same result
    ratio = platform_seconds / hand_seconds
    report("whole training, platform / by hand", f"{platform_seconds:.2f} s = {ratio:.3f}x "
           f"(overhead {platform_seconds - hand_seconds:.2f} s)", f"by hand {hand_seconds:.2f} s", "<= 1.1x",
           ratio <= 1.1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--queued", type=int, default=10000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--waiting", type=int, default=1000, help="queued jobs waiting in the tick benchmark")
    parser.add_argument("--finished", type=int, default=100000, help="finished jobs added in the tick benchmark")
    parser.add_argument("--ticks", type=int, default=200, help="ticks measured per database and phase")
    parser.add_argument("--only", choices=["scheduler", "tick", "latency", "whole"])
    args = parser.parse_args(argv)
    print(f"job engine benchmarks on {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}", flush=True)
    if args.only in (None, "scheduler"):
        bench_scheduler(args.queued, args.tenants)
    if args.only in (None, "tick"):
        bench_tick(args.waiting, args.finished, args.ticks)
    if args.only in (None, "latency", "whole"):
        from tests.platform import remove_tree

        base = tempfile.mkdtemp(prefix="kqi-bench-jobs-")
        plat = None
        try:
            plat, user, repo = start_platform(base)
            repo.commit({"README": "no-op\n"}, "first")
            ctx = {"plat": plat, "user": user, "repo": repo}
            if args.only in (None, "latency"):
                bench_latency(ctx, args.jobs)
            if args.only in (None, "whole"):
                bench_whole(ctx, args.seconds, args.files)
        finally:
            if plat is not None:
                plat.stop()
            remove_tree(base)
    print("\nsummary")
    for what, measured, baseline, target, met in RESULTS:
        print(f"  {'ok    ' if met else 'MISSED'} {what}: {measured} | baseline {baseline} | target {target}")
    return 0 if all(r[4] for r in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
