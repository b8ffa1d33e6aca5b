#!/usr/bin/env python3
"""Notebook spawn-to-ready time against a plain SimpleLocalProcessSpawner, in the same run.

Two KQI Hubs run side by side with the same hub configuration (local profile: proxy, hub,
poll intervals, `jupyterhub-singleuser --allow-root`, /lab): the first spawns notebooks with
KqiLocalSpawner, the second with JupyterHub's plain SimpleLocalProcessSpawner (the profile's
KQI_NOTEBOOK_SPAWNER=simple). Runs alternate between the two so both see the same load.

  KQI:       from just before POST /notebook/run (a 1,000-file dataset, a git repository, a
             lifetime) until GET /user/<u>/kqi-<id>/api/status answers 200 through the proxy;
             it includes the service's checks and plan, the container, the clone, laying out
             the dataset, the JupyterLab check and the server's start.
  baseline:  from just before POST /hub/api/users/<u>/servers/<name> (no options) until the
             same URL of that server answers 200 through the proxy.

Target: median KQI / median baseline <= 1.5. Also printed, without a target: the time until the
server logged that it listens (before the hub notices it), for both.

Usage: .venv/bin/python benchmarks/notebooks.py [--runs 5] [--files 1000]
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.platform import (ModelRepo, containers, hub_servers, new_platform, processes_with, remove_tree,  # noqa: E402
                            tenant_user, user_hub_token)

TARGET = 1.5
POLL = 0.05


def upload_many(user, data_id: int, files: dict[str, bytes]) -> None:
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


def wait_ready(url: str, token: str, timeout: float = 300) -> float:
    """Poll <server>/api/status through the proxy until it answers 200; the time it did."""
    headers = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = requests.get(url + "/api/status", headers=headers, timeout=5, allow_redirects=False)
            if r.status_code == 200:
                return time.monotonic()
        except requests.RequestException:
            pass
        time.sleep(POLL)
    raise AssertionError(f"{url} was not ready after {timeout}s")


RUNNING_AT = re.compile(r"\[I (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) ServerApp\] Jupyter Server \S+ is running at:")


def listening_after(log_path: str, prefix: str, t0: float) -> float | None:
    """Seconds from `t0` (wall clock) until the server at `prefix` logged "Jupyter Server ... is
    running at:" (the line after it names the server's URL): when it listens, before the hub notices."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line, following in zip(lines, lines[1:]):
        match = RUNNING_AT.search(line)  # (a container's log has podman's time stamp before it)
        if match and prefix in following:
            return datetime.datetime.fromisoformat(match.group(1)).timestamp() - t0
    return None


def wait_gone(user: str, server: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while processes_with(f"/user/{user}/{server}/") and time.monotonic() < deadline:
        time.sleep(0.1)


class Kqi:
    listening: float | None = None
    label = "KqiLocalSpawner (service + podman container + 1,000-file dataset + git)"

    def __init__(self, plat, n_files: int):
        self.plat = plat
        self.user = tenant_user(plat)
        self.token = user_hub_token(plat, self.user.name, self.user.password, expires_in=7200)
        repo = ModelRepo(plat, os.path.join(plat.data_dir, "..", "work"), "bench", "notebook-model",
                         tenant=self.user.tenant)
        repo.commit({f"src/module_{i}.py": f"VALUE = {i}\n" for i in range(20)} | {"README.md": "a model\n"},
                    "a model")
        self.repo = repo
        rng = random.Random(7)
        r = self.user.api("POST", "/data", json={"name": "bench-files"})
        assert r.status_code == 201, r.text
        self.data_id = r.json()["id"]
        t0 = time.monotonic()
        upload_many(self.user, self.data_id, {f"file-{i:04d}.bin": rng.randbytes(4096) for i in range(n_files)})
        print(f"   (uploaded {n_files:,} files in {time.monotonic() - t0:.0f} s)", flush=True)
        r = self.user.api("POST", "/datasets", json={"name": "bench-set",
                                                     "entries": {"training": [{"id": self.data_id}]}})
        assert r.status_code == 201, r.text
        self.dataset_id = r.json()["id"]
        self.n_files = n_files
        self.checked = False

    def spawn(self, run: int) -> float:
        body = {"name": f"bench-{run}", "cpu": 1, "memory": 2, "gpu": 0, "expiresIn": 3600,
                "dataSetId": self.dataset_id, "gitModel": {"owner": self.repo.owner, "repository": self.repo.name}}
        wall, t0 = time.time(), time.monotonic()
        r = self.user.api("POST", "/notebook/run", json=body)
        assert r.status_code == 201, r.text
        nb = r.json()
        base = f"{self.plat.url}/user/{self.user.name}/{nb['serverName']}"
        spent = wait_ready(base, self.token) - t0
        self.listening = listening_after(os.path.join(self.plat.data_dir, "notebooks", self.user.name,
                                                      nb["serverName"], "container.log"),
                                         f"/user/{self.user.name}/{nb['serverName']}/", wall)
        if not self.checked:  # once: the notebook has what was measured
            headers = {"Authorization": f"token {self.token}"}
            listing = requests.get(f"{base}/api/contents/input/training/{self.data_id}", headers=headers,
                                   timeout=60).json()
            assert len(listing["content"]) == self.n_files, len(listing.get("content", []))
            git = requests.get(f"{base}/api/contents/git/src", headers=headers, timeout=30).json()
            assert len(git["content"]) == 20, git
            self.checked = True
        r = self.user.api("POST", f"/notebook/{nb['id']}/halt")
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while containers(self.plat, nb["serverName"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        return spent


class Plain:
    listening: float | None = None
    label = "SimpleLocalProcessSpawner (plain, no options)"

    def __init__(self, plat):
        self.plat = plat
        name, password = plat.create_user()
        self.name = name
        self.token = user_hub_token(plat, name, password, expires_in=7200)

    def spawn(self, run: int) -> float:
        server = f"plain-{run}"
        headers = {"Authorization": f"token {self.token}"}
        wall, t0 = time.time(), time.monotonic()
        r = requests.post(f"{self.plat.hub_api_url}/users/{self.name}/servers/{server}", headers=headers, json={},
                          timeout=300)
        assert r.status_code in (201, 202), r.text
        spent = wait_ready(f"{self.plat.url}/user/{self.name}/{server}", self.token) - t0
        # the plain spawner's server writes to the hub's output
        self.listening = listening_after(self.plat.log_path, f"/user/{self.name}/{server}/", wall)
        r = requests.delete(f"{self.plat.hub_api_url}/users/{self.name}/servers/{server}", headers=headers,
                            json={"remove": True}, timeout=60)
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 30
        while server in hub_servers(self.plat, self.name) and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_gone(self.name, server)
        return spent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"notebook spawn-to-ready on {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}", flush=True)
    base = tempfile.mkdtemp(prefix="kqi-bench-notebooks-")
    kqi_plat = new_platform(os.path.join(base, "kqi"))
    plain_plat = new_platform(os.path.join(base, "plain"), {"KQI_NOTEBOOK_SPAWNER": "simple"})
    try:
        print(f"   starting two KQI Hubs in {base} ...", flush=True)
        errors = []

        def start(plat):
            try:
                plat.start(timeout=180)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=start, args=(p,)) for p in (kqi_plat, plain_plat)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        kqi, plain = Kqi(kqi_plat, args.files), Plain(plain_plat)
        # one untimed spawn each: the first start of a Python program reads its files from disk
        kqi.spawn(0)
        plain.spawn(0)
        times = {kqi.label: [], plain.label: []}
        listening = {kqi.label: [], plain.label: []}
        for run in range(1, args.runs + 1):
            order = (kqi, plain) if run % 2 else (plain, kqi)
            for side in order:
                spent = side.spawn(run)
                times[side.label].append(spent)
                if side.listening is not None:
                    listening[side.label].append(side.listening)
                up = f"{side.listening:6.2f} s" if side.listening is not None else "     ?"
                print(f"   run {run}: {side.label.split(' ')[0]:<26} ready {spent:6.2f} s, listening {up}"
                      f"   (load {os.getloadavg()[0]:.1f})", flush=True)
        medians = {label: statistics.median(values) for label, values in times.items()}
        ratio = medians[kqi.label] / medians[plain.label]
        means = {label: statistics.mean(values) for label, values in times.items()}
        print("\nsummary")
        for label, values in times.items():
            print(f"  {label}: median {medians[label]:.2f} s, mean {means[label]:.2f} s, "
                  f"min {min(values):.2f} s, max {max(values):.2f} s over {len(values)} runs")
        if all(listening.values()):
            up = {label: statistics.median(values) for label, values in listening.items()}
            print(f"  server listening (its log line; before the hub notices): KQI median {up[kqi.label]:.2f} s, "
                  f"plain median {up[plain.label]:.2f} s, ratio {up[kqi.label] / up[plain.label]:.2f} (no target)")
        met = ratio <= TARGET
        print(f"  {'ok    ' if met else 'MISSED'} ratio of medians {ratio:.2f} (mean ratio "
              f"{means[kqi.label] / means[plain.label]:.2f}); target <= {TARGET}")
        return 0 if met else 1
    finally:
        for plat in (kqi_plat, plain_plat):
            plat.stop()
        remove_tree(base)


if __name__ == "__main__":
    sys.exit(main())
