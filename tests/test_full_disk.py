"""A full disk breaks no one: a platform whose data directory is a small file system (a tmpfs of
96 MiB the test mounts) takes an upload larger than its free space.

- The part that meets the full disk is answered 507 in the API's error shape, and its upload is
  gone at once (no part files, the space free again); a part whose length would cut into the
  reserve, an announced file size that would, and any upload while the free space is under the
  reserve are refused up front with that reason (507; 413 for a file larger than the disk).
- Other tenants still sign in and create data afterwards; with the disk full to the last byte a
  data creation is a 507 in the error shape, not a 500.
- The hub stops on SIGTERM within a bound with the disk full, and stops its kqi service.
- The kqi service ends when the hub that started it is killed with SIGKILL.

Mounting needs root: the tests skip, saying so, without it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

from .platform import local_store_dir, new_platform, processes_with, remove_tree, service_pids, tenant_user

MiB = 1024 * 1024
DISK_MIB = 96
RESERVE = 8 * MiB
CONFIG = f"""
c.KqiService.local_store_reserve_bytes = {RESERVE}
c.KqiService.local_store_reserve_percent = 0
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting the small tmpfs data directory needs root")


def mounted(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


@pytest.fixture(scope="module")
def small(db_backend, request, tmp_path_factory):
    """A platform whose data directory is a tmpfs of 96 MiB (keeping 8 MiB free for itself)."""
    base = str(tmp_path_factory.mktemp(f"full-disk-{db_backend}"))
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write(CONFIG)
    env = {"KQI_SERVICE_CONFIG": config}
    if db_backend == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        env["KQI_HUB_DB_URL"] = pg.create_database(f"hub_{suffix}")
        env["KQI_DB_URL"] = pg.create_database(f"kqi_{suffix}")
    data_dir = os.path.join(base, "data")
    os.makedirs(data_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m,mode=0700", "tmpfs", data_dir], check=True)
    plat = new_platform(base, env)
    assert plat.data_dir == data_dir
    plat.db_backend = db_backend
    try:
        plat.start(timeout=120)
        yield plat
    finally:
        hub_pid = plat.process.pid if plat.process else None
        plat.stop()
        for pid in service_pids(plat):  # only this platform's service, if anything went wrong
            os.kill(pid, signal.SIGKILL)
        if hub_pid:
            for pid in proxy_pids(plat):
                os.kill(pid, signal.SIGKILL)
        for _ in range(10):  # processes of the platform may still be closing their files
            if subprocess.run(["umount", data_dir], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        if mounted(data_dir):  # Platform.start keeps its log (in the data directory) open in this process
            subprocess.run(["umount", "-l", data_dir], check=False)
        remove_tree(base)


def proxy_pids(plat) -> list[int]:
    """The platform's configurable-http-proxy (its command line names the platform's port)."""
    return [pid for pid in processes_with("configurable-http-proxy")
            if f"--port {plat.port}" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(plat) -> None:
    if plat.process is None or plat.process.poll() is not None:
        plat.start(timeout=120)


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Filler:
    """A file that takes the data directory's free space down to `leave` bytes (removed on exit)."""

    def __init__(self, plat, leave: int):
        self.path = os.path.join(plat.data_dir, f"filler-{uuid.uuid4().hex[:6]}")
        self.leave = leave

    def __enter__(self):
        size = max(0, free_bytes(os.path.dirname(self.path)) - self.leave)
        with open(self.path, "wb", buffering=0) as f:
            try:
                block = b"\0" * MiB
                while size > 0:
                    size -= f.write(block[:min(MiB, size)])
                if self.leave == 0:  # to the last byte
                    while True:
                        f.write(b"\0" * 512)
            except OSError:
                pass
        return self

    def __exit__(self, *exc):
        os.remove(self.path)


def assert_error_shape(r: requests.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "errors"}, body
    assert body["status"] == status
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


def uploads_on_disk(plat) -> dict[str, list[str]]:
    base = os.path.join(local_store_dir(plat), ".uploads")
    if not os.path.isdir(base):
        return {}
    return {u: sorted(os.listdir(os.path.join(base, u))) for u in os.listdir(base)}


def parameter(user, name: str, parts: int, **extra) -> requests.Response:
    return user.api("GET", "/upload/parameter", params={"fileName": name, "partSum": parts, "type": "Data", **extra})


def chunks(total: int, size: int = MiB):
    """A body without a Content-Length (requests sends a generator chunked)."""
    while total > 0:
        n = min(size, total)
        total -= n
        yield b"x" * n


# ----------------------------------------------------------------------------------------------------
def test_a_part_that_meets_the_full_disk_is_507_and_its_upload_is_gone(small):
    running(small)
    user = tenant_user(small)
    before = uploads_on_disk(small)
    # 4 MiB above the reserve: the upload may start; its part (no length told) fills the disk
    with Filler(small, RESERVE + 4 * MiB):
        free = free_bytes(small.data_dir)
        r = parameter(user, "big.bin", 2)
        assert r.status_code == 200, r.text
        upload = r.json()
        first = requests.put(upload["uris"][0], data=chunks(free + 16 * MiB), timeout=120)
        body = assert_error_shape(first, 507, "full", "dropped")
        assert "Errno" not in body["detail"] and "Traceback" not in first.text
        # nothing left behind: the upload's folder is gone, the space is back
        assert uploads_on_disk(small) == before
        assert free_bytes(small.data_dir) >= free - 2 * MiB, (free, free_bytes(small.data_dir))
        # the upload cannot be finished any more: its other parts are refused as unknown
        second = requests.put(upload["uris"][1], data=b"y" * 10, timeout=30)
        assert second.status_code == 403, second.text
    # the store is as it was: no object of the upload
    tenant_dir = os.path.join(local_store_dir(small), *user.tenant["storagePath"].split("/"))
    assert not os.path.exists(os.path.join(tenant_dir, upload["storedPath"]))


def test_a_part_or_file_that_would_cut_into_the_reserve_is_refused_up_front(small):
    running(small)
    user = tenant_user(small)
    before = uploads_on_disk(small)
    with Filler(small, RESERVE + 4 * MiB):
        free = free_bytes(small.data_dir)
        # an announced size that would not leave the reserve: 507 with the numbers
        assert_error_shape(parameter(user, "a.bin", 1, fileSize=6 * MiB), 507, "does not fit", "kept free")
        # larger than the disk could ever take: 413
        assert_error_shape(parameter(user, "b.bin", 1, fileSize=200 * MiB), 413, "larger than this storage")
        assert_error_shape(parameter(user, "c.bin", 1, fileSize=-1), 400)
        # a part whose Content-Length would cut into the reserve: refused before a byte is written
        r = parameter(user, "d.bin", 2)
        assert r.status_code == 200, r.text
        upload = r.json()
        small_part = requests.put(upload["uris"][0], data=b"z" * MiB, timeout=30)
        assert small_part.status_code == 200, small_part.text
        big_part = requests.put(upload["uris"][1], data=b"z" * (6 * MiB), timeout=30)
        assert_error_shape(big_part, 507, "The part 2 (6.0 MiB) does not fit", "kept free", "dropped")
        assert uploads_on_disk(small) == before  # the first part went with its upload
        assert free_bytes(small.data_dir) >= free - MiB
    # under the reserve: no upload starts at all, and the reason is given
    with Filler(small, RESERVE // 2):
        assert_error_shape(parameter(user, "e.bin", 1), 507, "nearly full", "kept free")
        assert uploads_on_disk(small) == before
    # with room again, uploads work
    r = parameter(user, "f.bin", 1, fileSize=MiB)
    assert r.status_code == 200, r.text
    assert requests.put(r.json()["uris"][0], data=b"f" * MiB, timeout=30).status_code == 200


def test_the_cli_is_told_why_when_a_file_does_not_fit(small, tmp_path):
    running(small)
    user = tenant_user(small, home=str(tmp_path / "home"))
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(40 * MiB))  # three 16 MiB parts as the SDK sends them
    before = uploads_on_disk(small)
    with Filler(small, RESERVE + 24 * MiB):
        free = free_bytes(small.data_dir)
        r = user.cli("data", "create", "-n", "too-big", "-f", str(big), check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert "507" in out and "kept free" in out, out
        assert uploads_on_disk(small) == before  # the first part went with its upload
        assert free_bytes(small.data_dir) >= free - MiB
    # with room again the same file goes up
    user.cli("data", "create", "-n", "fits-now", "-f", str(big))
    tenant_dir = os.path.join(local_store_dir(small), *user.tenant["storagePath"].split("/"))
    stored = [os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(tenant_dir) for n in names
              if n == "big.bin"]
    assert stored == [40 * MiB], stored


def test_other_tenants_sign_in_and_create_data_after_a_refused_upload(small):
    running(small)
    uploader = tenant_user(small)
    r = parameter(uploader, "huge.bin", 1)
    assert r.status_code == 200, r.text
    put = requests.put(r.json()["uris"][0], data=chunks(2 * DISK_MIB * MiB), timeout=120)
    assert_error_shape(put, 507)
    # another tenant: a new user signs in (the hub writes its token), creates data, uploads a file
    other = tenant_user(small)
    token = small.login(other.name, other.password, other.tenant["id"])
    r = small.api("POST", "/data", token, json={"name": "after-the-full-disk"})
    assert r.status_code == 201, r.text
    data_id = r.json()["id"]
    p = parameter(other, "small.txt", 1)
    assert p.status_code == 200, p.text
    part = requests.put(p.json()["uris"][0], data=b"hello", timeout=30)
    assert part.status_code == 200, part.text
    done = other.api("POST", "/upload/complete", json={"key": p.json()["key"], "uploadId": p.json()["uploadId"],
                                                      "partETags": [f"1+{part.headers['ETag']}"]})
    assert done.status_code == 200, done.text
    r = other.api("POST", f"/data/{data_id}/files",
                  json={"files": [{"fileName": "small.txt", "storedPath": p.json()["storedPath"]}]})
    assert r.status_code == 201, r.text


def test_data_creation_on_a_disk_full_to_the_last_byte_is_507_not_500(small):
    running(small)
    user = tenant_user(small)  # its token not used yet: the hub's first check records its activity
    with Filler(small, 0):
        assert free_bytes(small.data_dir) < 64 * 1024
        # the token still signs the user in (the activity the hub cannot write is let go)
        r = user.api("GET", "/data")
        assert r.status_code == 200, r.text
        statuses = []
        for i in range(3):
            r = user.api("POST", "/data", json={"name": f"while-full-{i}", "memo": "x" * 4000})
            statuses.append(r.status_code)
            assert r.status_code < 500 or r.status_code == 507, (r.status_code, r.text[:300])
            if r.status_code == 507:
                assert_error_shape(r, 507, "disk is full")
        if small.db_backend == "sqlite":
            assert 507 in statuses, statuses  # its database is on the full disk
    r = user.api("POST", "/data", json={"name": "with-room-again"})
    assert r.status_code == 201, r.text


def test_the_kqi_service_stops_on_sigterm_with_the_disk_full(small):
    running(small)
    services = service_pids(small)
    assert len(services) == 1
    with Filler(small, 0):
        started = time.monotonic()
        os.kill(services[0], signal.SIGTERM)
        while time.monotonic() - started < 20 and os.path.exists(f"/proc/{services[0]}") \
                and _state(services[0]) != "Z":
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{services[0]}") or _state(services[0]) == "Z", \
            "the kqi service did not stop within 20 s of SIGTERM with its disk full"
    print(f"kqi service stopped {time.monotonic() - started:.1f} s after SIGTERM with the disk full")
    small.stop()  # the hub does not start its service again by itself


def test_the_hub_stops_on_sigterm_with_the_disk_full(small):
    running(small)
    hub = small.process
    services = service_pids(small)
    assert services
    with Filler(small, 0):
        started = time.monotonic()
        hub.send_signal(signal.SIGTERM)  # the hub alone: it must stop its service and proxy itself
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the hub did not stop within 30 s of SIGTERM with its disk full")
        took = time.monotonic() - started
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in services):
            time.sleep(0.1)
        assert not [p for p in services if os.path.exists(f"/proc/{p}")], "the kqi service outlived the hub"
        assert not proxy_pids(small), "the proxy outlived the hub"
    print(f"hub stopped {took:.1f} s after SIGTERM with the disk full")
    small.start(timeout=120)  # and comes back once there is room
    assert small.api("GET", "/version").status_code == 200


def test_the_kqi_service_ends_when_its_hub_is_killed(small):
    running(small)
    services = service_pids(small)
    assert len(services) == 1
    small.process.send_signal(signal.SIGKILL)
    small.process.wait(timeout=10)
    started = time.monotonic()
    while time.monotonic() - started < 15 and os.path.exists(f"/proc/{services[0]}"):
        time.sleep(0.1)
    alive = os.path.exists(f"/proc/{services[0]}") and "Z" not in _state(services[0])
    assert not alive, "the kqi service is still running 15 s after its hub was killed"
    print(f"kqi service ended {time.monotonic() - started:.1f} s after its hub was killed")
    for pid in proxy_pids(small):  # JupyterHub leaves its proxy (a new hub takes it over); not ours to judge
        os.kill(pid, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
