"""The official kamonohashi-cli (`kqi`), unmodified, for every data and dataset command,
against a real KQI Hub on both object stores: the seeded local store and a real S3 server
(SeaweedFS), each with a file larger than one 16 MiB part.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .platform import create_data, store_user, upload_parts
from .s3server import s3_server  # noqa: F401  (the session fixture)

BIG_SIZE = 40 * 1024 * 1024 + 12345  # three 16 MiB parts, the last one partial


@pytest.fixture(scope="session")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = BIG_SIZE
        while left:
            chunk = os.urandom(min(left, 4 * 1024 * 1024))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return str(path), digest.hexdigest()


@pytest.fixture(scope="module", params=["local", "s3"])
def store(request, platform, tmp_path_factory):
    """(user logged in with the CLI, view of the tenant's files in the store) for one store kind."""
    s3 = request.getfixturevalue("s3_server") if request.param == "s3" else None
    home = str(tmp_path_factory.mktemp(f"home-{request.param}"))
    return store_user(platform, request.param, s3=s3, home=home)


# ---------------------------------------------------------------------------- parsing
def created_id(result) -> int:
    return int(re.search(r"created (\d+)", result.stdout).group(1))


def table(output: str) -> list[list[str]]:
    """Rows of a `kqi ... list` table (header dropped), split on runs of spaces."""
    return [line.split() for line in output.splitlines()[1:] if line.strip()]


def listed_ids(output: str) -> list[int]:
    return [int(row[0]) for row in table(output) if row and row[0].isdigit()]


def cli_side_by_side(user, *commands) -> list[str]:
    """Run independent CLI commands at the same time; their outputs in order."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return [r.stdout for r in pool.map(lambda args: user.cli(*args), commands)]


def files_of(user, data_id: int) -> list[dict]:
    r = user.api("GET", f"/data/{data_id}/files")
    assert r.status_code == 200, r.text
    return r.json()


def wait_for_hashes(user, data_id: int, timeout: float = 60) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        files = files_of(user, data_id)
        if all(f["sha256"] for f in files) or time.monotonic() > deadline:
            return {f["fileName"]: f for f in files}
        time.sleep(0.2)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write(path, content: bytes) -> str:
    with open(path, "wb") as f:
        f.write(content)
    return str(path)


# ------------------------------------------------------------------------------ data
def test_data_commands_with_a_multipart_file(store, big_file, tmp_path):
    user, view = store
    big_path, big_sha = big_file
    small = write(tmp_path / "notes 1.txt", b"first file\n")
    empty = write(tmp_path / "empty.txt", b"")
    before = view.keys()

    data_id = created_id(user.cli("data", "create", "-n", "cli-data", "-f", small, "-f", big_path, "-f", empty,
                                  "-m", "memo one", "-t", "camera", "-t", "2026-11"))

    # the reading commands do not depend on each other: side by side
    out_dir = tmp_path / "download"
    out_dir.mkdir()
    out, listed, _ = cli_side_by_side(user, ("data", "get", str(data_id)), ("data", "list-files", str(data_id)),
                                      ("data", "download-files", str(data_id), "-d", str(out_dir)))
    assert "name: cli-data" in out and "memo: memo one" in out
    assert re.search(r"tags:\n\s+- 2026-11\n\s+- camera", out), out
    assert re.search(r"file_names:\n\s+- notes 1.txt\n\s+- big.bin\n\s+- empty.txt", out), out
    assert f"created_by: {user.name}" in out

    rows = table(listed)
    assert [r[1:] for r in rows] == [["notes", "1.txt"], ["big.bin"], ["empty.txt"]]
    file_ids = {" ".join(r[1:]): int(r[0]) for r in rows}

    # size at once, sha256 soon after (computed in the background from the stored object)
    files = wait_for_hashes(user, data_id)
    assert files["big.bin"]["fileSize"] == BIG_SIZE and files["big.bin"]["sha256"] == big_sha
    assert files["notes 1.txt"]["fileSize"] == 11
    assert files["notes 1.txt"]["sha256"] == hashlib.sha256(b"first file\n").hexdigest()
    assert files["empty.txt"]["fileSize"] == 0 and files["empty.txt"]["sha256"] == hashlib.sha256(b"").hexdigest()

    # the objects live below the tenant's prefix; no upload is left over
    added = {k: v for k, v in view.keys().items() if k not in before}
    assert sorted(added.values()) == [0, 11, BIG_SIZE]
    assert all(k.startswith(f"{user.tenant['storagePath']}/Data/") for k in added)
    assert view.pending_uploads() == {}

    # download: the same bytes
    assert sorted(os.listdir(out_dir)) == ["big.bin", "empty.txt", "notes 1.txt"]
    assert (out_dir / "empty.txt").read_bytes() == b""
    assert os.path.getsize(out_dir / "big.bin") == BIG_SIZE
    assert sha256_of(str(out_dir / "big.bin")) == big_sha
    assert (out_dir / "notes 1.txt").read_bytes() == b"first file\n"

    # add a file, delete one
    extra = write(tmp_path / "table.csv", b"a,b\n1,2\n")
    user.cli("data", "upload-files", str(data_id), "-f", extra)
    assert [f["fileName"] for f in files_of(user, data_id)] == ["notes 1.txt", "big.bin", "empty.txt", "table.csv"]
    assert wait_for_hashes(user, data_id)["table.csv"]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()

    out = user.cli("data", "delete-file", str(data_id), "-f", str(file_ids["notes 1.txt"])).stdout
    assert f"deleted {file_ids['notes 1.txt']}" in out
    assert [f["fileName"] for f in files_of(user, data_id)] == ["big.bin", "empty.txt", "table.csv"]
    assert sorted(v for k, v in view.keys().items() if k not in before) == [0, 8, BIG_SIZE]

    # update name, memo and tags (tags are replaced)
    assert f"updated {data_id}" in user.cli("data", "update", str(data_id), "-n", "cli-data-2", "-m", "memo two",
                                            "-t", "lidar").stdout
    got = user.api("GET", f"/data/{data_id}").json()
    assert (got["name"], got["memo"], got["tags"]) == ("cli-data-2", "memo two", ["lidar"])

    # delete: the entry and its objects are gone
    assert f"deleted {data_id}" in user.cli("data", "delete", str(data_id)).stdout
    assert user.api("GET", f"/data/{data_id}").status_code == 404
    assert view.keys() == before


def test_data_list_filters_and_paging(store, platform, tmp_path):
    user, view = store
    f = write(tmp_path / "x.txt", b"x")
    alpha = created_id(user.cli("data", "create", "-n", "flt-alpha", "-f", f, "-t", "flt-red", "-m", "sunny day"))
    beta = create_data(user, "flt-beta", tags=["flt-red", "flt-blue"])["id"]
    # a second member of the tenant makes one through the API
    other_name, other_password = platform.create_user(tenants=[user.tenant["name"]])
    other_token = platform.login(other_name, other_password, user.tenant["id"])
    r = platform.api("POST", "/data", other_token, json={"name": "flt-gamma", "tags": ["flt-blue"]})
    assert r.status_code == 201, r.text
    gamma = r.json()["id"]

    # independent commands: run side by side
    by_count, red, red_blue, by_other, by_memo = cli_side_by_side(
        user, ("data", "list", "--name", "flt-", "--count", "2"), ("data", "list", "--tag", "flt-red"),
        ("data", "list", "--tag", "flt-red", "--tag", "flt-blue"), ("data", "list", "--created-by", other_name),
        ("data", "list", "--name", "flt-", "--memo", "sunny"))
    assert listed_ids(by_count) == [gamma, beta]  # newest first
    assert listed_ids(red) == [beta, alpha]
    assert listed_ids(red_blue) == [beta]  # every tag given
    assert listed_ids(by_other) == [gamma]
    # the list shows name, creator and tags
    rows = {r[0]: r for r in table(by_memo)}
    assert list(rows) == [str(alpha)]
    assert rows[str(alpha)][1] == "flt-alpha" and user.name in rows[str(alpha)] and "flt-red" in rows[str(alpha)]

    # the other filters of the SDK, with the query names it sends
    def api_ids(**params):
        r = user.api("GET", "/data", params=params)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()]

    assert api_ids(name="flt-") == [gamma, beta, alpha]
    assert api_ids(name="FLT-AL") == [alpha]  # part of the name, any case
    assert api_ids(id=str(beta)) == [beta]
    assert api_ids(name="flt-", id=f">={beta}") == [gamma, beta]
    assert api_ids(name="no-such-data") == []
    today = user.api("GET", f"/data/{alpha}").json()["createdAt"][:10]
    assert api_ids(name="flt-", createdAt=today) == [gamma, beta, alpha]
    assert api_ids(name="flt-", createdAt="<2000-01-01") == []
    assert api_ids(tag="flt-blue", createdBy=user.name) == [beta]

    # paging as the SDK asks for it: perPage, page, withTotal → X-Total-Count
    r = user.api("GET", "/data", params={"name": "flt-", "perPage": 2, "page": 2, "withTotal": "true"})
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "3"
    assert [d["id"] for d in r.json()] == [alpha]
    # every tag of the tenant
    assert {"flt-red", "flt-blue"} <= set(user.api("GET", "/data/datatags").json())

    for data_id in (alpha, beta, gamma):
        assert user.api("DELETE", f"/data/{data_id}").status_code == 204
    assert api_ids(name="flt-") == []


# --------------------------------------------------------------------------- datasets
def test_dataset_commands(store, tmp_path):
    user, view = store
    before = view.keys()
    d1 = create_data(user, "ds-one", {"a.txt": b"alpha", "b.txt": b"beta"})["id"]
    d2 = create_data(user, "ds-two", {"c.txt": b"gamma"})["id"]
    # a file of two parts (5 MiB, the least S3 allows for all but the last, and a bit)
    big = os.urandom(5 * 1024 * 1024) + b"tail"
    d3 = create_data(user, "ds-three")["id"]
    upload = upload_parts(user, "big.bin", [big[:5 * 1024 * 1024], big[5 * 1024 * 1024:]])
    r = user.api("POST", f"/data/{d3}/files", json={"files": [{"fileName": "big.bin",
                                                               "storedPath": upload["storedPath"]}]})
    assert r.status_code == 201, r.text

    spec = tmp_path / "dataset.json"
    spec.write_text(json.dumps({"name": "cli-set", "memo": "three areas", "entries": {
        "training": [{"id": d1}], "validation": [{"id": d2}], "testing": [{"id": d3}]}}))
    set_id = created_id(user.cli("dataset", "create", "-f", str(spec)))

    # the reading commands side by side
    out_dir, only = tmp_path / "all", tmp_path / "only"
    out_dir.mkdir()
    only.mkdir()
    types, out, listed, pair_lines, _, _ = cli_side_by_side(
        user, ("dataset", "list-data-types"), ("dataset", "get", str(set_id)),
        ("dataset", "list", "--name", "cli-", "--memo", "three areas"), ("dataset", "list-path-pairs", str(set_id)),
        ("dataset", "download-files", str(set_id), "-d", str(out_dir)),
        ("dataset", "download-files", str(set_id), "-d", str(only), "-t", "validation"))
    assert types.split() == ["training", "testing", "validation"]
    assert "name: cli-set" in out and "memo: three areas" in out and "is_flat: false" in out
    assert "training:" in out and f"id: {d1}" in out and f"id: {d2}" in out
    assert listed_ids(listed) == [set_id]

    lines = pair_lines.splitlines()
    pairs = dict(zip(lines[0::2], lines[1::2]))
    assert set(pairs) == {f"training/{d1}/a.txt", f"training/{d1}/b.txt", f"validation/{d2}/c.txt",
                          f"testing/{d3}/big.bin"}
    assert all(re.fullmatch(r"Data/[0-9a-f]{32}/[a-z.]+", p) for p in pairs.values()), pairs
    assert pairs[f"training/{d1}/a.txt"].endswith("/a.txt")

    assert (out_dir / "training" / str(d1) / "a.txt").read_bytes() == b"alpha"
    assert (out_dir / "training" / str(d1) / "b.txt").read_bytes() == b"beta"
    assert (out_dir / "validation" / str(d2) / "c.txt").read_bytes() == b"gamma"
    assert (out_dir / "testing" / str(d3) / "big.bin").read_bytes() == big

    assert sorted(os.listdir(only)) == ["validation"]

    # data in a dataset cannot be deleted: a clear 409 that names the dataset
    refused = user.cli("data", "delete", str(d2), check=False)
    assert refused.returncode != 0 and "409" in refused.stdout
    assert "cli-set" in refused.stdout

    # edit the entries: flat, two data
    spec.write_text(json.dumps({"name": "cli-set", "memo": "flat now", "isFlat": True,
                                "flatEntries": [{"id": d1}, {"id": d2}]}))
    assert f"updated {set_id}" in user.cli("dataset", "update", str(set_id), "-f", str(spec)).stdout
    got = user.api("GET", f"/datasets/{set_id}").json()
    assert got["isFlat"] and got["memo"] == "flat now"
    assert sorted(e["id"] for e in got["flatEntries"]) == [d1, d2]
    flat_paths = sorted(p["dataPath"] for p in user.api("GET", f"/datasets/{set_id}/pathpairs").json())
    assert flat_paths == [f"{d1}/a.txt", f"{d1}/b.txt", f"{d2}/c.txt"]
    flat_dir = tmp_path / "flat"
    flat_dir.mkdir()
    user.cli("dataset", "download-files", str(set_id), "-d", str(flat_dir))
    assert sorted(os.listdir(flat_dir)) == sorted([str(d1), str(d2)])
    assert (flat_dir / str(d2) / "c.txt").read_bytes() == b"gamma"

    # name and memo only
    out = user.cli("dataset", "update-meta-info", str(set_id), "-n", "cli-set-2", "-m", "renamed").stdout
    assert f"meta-info updated {set_id}" in out
    got = user.api("GET", f"/datasets/{set_id}").json()
    assert (got["name"], got["memo"], got["isFlat"]) == ("cli-set-2", "renamed", True)

    # d3 left the dataset: it can go now
    assert user.api("DELETE", f"/data/{d3}").status_code == 204

    # a copy (KQI's /copy route; the CLI has no command) has the same data
    r = user.api("POST", f"/datasets/{set_id}/copy", json={"name": "cli-set-copy"})
    assert r.status_code == 201, r.text
    copy_id = r.json()["id"]
    copy_pairs = user.api("GET", f"/datasets/{copy_id}/pathpairs").json()
    assert sorted(p["dataPath"] for p in copy_pairs) == flat_paths

    assert f"deleted {set_id}" in user.cli("dataset", "delete", str(set_id)).stdout
    assert user.api("GET", f"/datasets/{set_id}").status_code == 404
    refused = user.api("DELETE", f"/data/{d1}")
    assert refused.status_code == 409 and "cli-set-copy" in refused.json()["detail"]
    assert user.api("DELETE", f"/datasets/{copy_id}").status_code == 204
    assert [d["id"] for d in user.api("GET", "/datasets", params={"name": "cli-set"}).json()] == []
    # no dataset uses the data any more: they can be deleted, with their files
    for data_id in (d1, d2):
        assert user.api("DELETE", f"/data/{data_id}").status_code == 204
    assert view.keys() == before
