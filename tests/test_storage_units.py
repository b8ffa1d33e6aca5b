"""Unit tests of the object stores (the local one on a folder, the S3 one against a real
SeaweedFS server), the upload protocol's input checks and the dataset layout function."""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from kqi_services.domain.layout import COPY, SYMLINK, LayoutError, lay_out
from kqi_services.domain.uploads import check_file_name, parse_part_etags
from kqi_services.domain.validation import ValidationError
from kqi_services.storage.base import StoreError
from kqi_services.storage.local import LocalObjectStore, UrlSigner, safe_key
from kqi_services.storage.s3 import S3ObjectStore

from .s3server import s3_server  # noqa: F401  (the session fixture)

MiB = 1024 * 1024
UNSAFE_KEYS = ["", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", "nul\x00/x", ".uploads/x", ".uploads"]


def md5_etag(data: bytes) -> str:
    """S3's ETag of a part."""
    return f'"{hashlib.md5(data).hexdigest()}"'


def local_etag(data: bytes) -> str:
    """The local store's ETag of a part: S3's shape, sha256's speed."""
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


# ------------------------------------------------------------------------ local store
@pytest.fixture
def local(tmp_path):
    return LocalObjectStore(str(tmp_path / "store"), UrlSigner(b"k" * 32), "/services/kqi/storage", store_id=7)


def put_local_part(store: LocalObjectStore, upload_id: str, number: int, data: bytes, chunk: int = 1000,
                   length: int | None = -1) -> str:
    """Part `number` as the service's handler writes it (length: the request's Content-Length)."""
    writer = store.part_writer(upload_id, number, len(data) if length == -1 else length)
    for i in range(0, len(data), chunk):
        writer.write(data[i:i + chunk])
    return writer.finish()


def upload_files(store: LocalObjectStore, upload_id: str) -> list[str]:
    folder = os.path.join(store.root, ".uploads", upload_id)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_signer_accepts_its_own_signatures_only():
    signer = UrlSigner(b"a" * 32)
    fields = {"store": "1", "key": "t/Data/x/a.txt", "name": "a.txt"}
    expires = int(time.time()) + 60
    signature = signer.sign("get", fields, expires)
    signer.check("get", fields, str(expires), signature)
    refusals = [
        ("get", {**fields, "key": "t/Data/x/b.txt"}, str(expires), signature),
        ("get", {**fields, "name": "b.txt"}, str(expires), signature),
        ("get", {**fields, "store": "2"}, str(expires), signature),
        ("put-part", fields, str(expires), signature),
        ("get", fields, str(expires + 1), signature),
        ("get", fields, str(expires), signature[:-1] + ("0" if signature[-1] != "0" else "1")),
        ("get", fields, str(expires), ""),
        ("get", fields, "soon", signature),
        ("get", fields, str(expires), UrlSigner(b"b" * 32).sign("get", fields, expires)),
    ]
    for action, f, e, s in refusals:
        with pytest.raises(StoreError) as info:
            signer.check(action, f, e, s)
        assert info.value.client_error
    with pytest.raises(StoreError, match="expired"):
        signer.check("get", fields, str(expires), signature, now=expires + 1)
    signer.check("get", fields, str(expires), signature, now=expires)


def test_local_keys_must_be_safe(local):
    for key in UNSAFE_KEYS:
        with pytest.raises(StoreError):
            safe_key(key)
        with pytest.raises(StoreError):
            local.path(key)
        with pytest.raises(StoreError):
            local.start_upload(key)
        with pytest.raises(StoreError):
            local.write(key, iter([b"x"]))
        with pytest.raises(StoreError):
            local.download_url(key, "x", "http://h", 60)
    assert local.path("t/Data/u/a b.txt") == os.path.join(local.root, "t", "Data", "u", "a b.txt")
    for upload_id in ("", "../../etc", "A" * 32, "0" * 31, "g" * 32):
        with pytest.raises(StoreError):
            local.part_writer(upload_id, 1)


def test_local_multipart_upload_in_place(local):
    """Parts of one size (the last shorter), as the SDK sends them: written in place, and
    completing renames the assembled file (same inode), copying nothing."""
    key = "tenants/t/Data/u1/big.bin"
    parts = [os.urandom(3 * MiB), os.urandom(3 * MiB), b"tail"]
    upload_id = local.start_upload(key)
    assert len(upload_id) == 32 and local.upload_key(upload_id) == key

    urls = local.part_urls(key, upload_id, 3, "http://127.0.0.1:9", 60)
    assert len(urls) == 3
    for number, url in enumerate(urls, start=1):
        parsed = urlsplit(url)
        assert url.startswith("http://127.0.0.1:9/services/kqi/storage/part?")
        query = dict(parse_qsl(parsed.query))
        assert query["store"] == "7" and query["upload"] == upload_id and query["part"] == str(number)
        local.signer.check("put-part", {"store": "7", "upload": upload_id, "part": str(number)},
                           query["expires"], query["signature"])

    # out of order, and part 2 twice (the second copy wins)
    etags = {}
    etags[1] = put_local_part(local, upload_id, 1, parts[0])
    etags[3] = put_local_part(local, upload_id, 3, parts[2])
    put_local_part(local, upload_id, 2, os.urandom(3 * MiB))
    etags[2] = put_local_part(local, upload_id, 2, parts[1])
    # a broken resend of part 2 leaves it not uploaded: its slot was half overwritten
    writer = local.part_writer(upload_id, 2, 3 * MiB)
    writer.write(b"half")
    writer.discard()
    with pytest.raises(StoreError, match="Part 2 was never uploaded"):
        local.complete_upload(key, upload_id, [etags[1], etags[2], etags[3]])
    etags[2] = put_local_part(local, upload_id, 2, parts[1])
    etags = [etags[1], etags[2], etags[3]]
    assert etags == [local_etag(p) for p in parts]
    assert upload_files(local, upload_id) == ["1.etag", "2.etag", "3.etag", "data", "meta", "slot"]

    inode = os.stat(os.path.join(local.root, ".uploads", upload_id, "data")).st_ino
    size = local.complete_upload(key, upload_id, [e.strip('"') for e in etags])
    assert size == sum(map(len, parts))
    assert os.stat(local.path(key)).st_ino == inode  # renamed, not copied
    local.write("tenants/t/Data/u1/plain.txt", iter([b"p"]))  # the mode any other object gets
    assert os.stat(local.path(key)).st_mode == os.stat(local.path("tenants/t/Data/u1/plain.txt")).st_mode
    with open(local.path(key), "rb") as f:
        assert f.read() == b"".join(parts)
    assert upload_files(local, upload_id) == []
    with pytest.raises(StoreError):
        local.part_writer(upload_id, 1)
    with pytest.raises(StoreError):
        local.complete_upload(key, upload_id, etags)


def test_local_multipart_upload_of_uneven_parts(local):
    """Parts that do not fit their slots are kept apart and joined at completion."""
    key = "tenants/t/Data/u3/uneven.bin"
    parts = [os.urandom(MiB), os.urandom(2 * MiB), b"short", os.urandom(MiB + 1), b"", b"end"]
    upload_id = local.start_upload(key)
    etags = [put_local_part(local, upload_id, 1, parts[0]),  # fixes the slot at 1 MiB
             put_local_part(local, upload_id, 2, parts[1]),  # too long for it: apart
             put_local_part(local, upload_id, 3, parts[2]),  # shorter than its slot: in place
             put_local_part(local, upload_id, 4, parts[3], length=None),  # no Content-Length: apart
             put_local_part(local, upload_id, 5, parts[4]),  # empty: apart
             put_local_part(local, upload_id, 6, parts[5])]
    assert {"2", "4", "5"} <= set(upload_files(local, upload_id))
    assert local.complete_upload(key, upload_id, etags) == sum(map(len, parts))
    with open(local.path(key), "rb") as f:
        assert f.read() == b"".join(parts)
    assert upload_files(local, upload_id) == []

    # the same part on two connections at once: the second copy is kept apart, the last one wins
    key = "tenants/t/Data/u4/twice.bin"
    upload_id = local.start_upload(key)
    first = local.part_writer(upload_id, 1, 4)
    second = local.part_writer(upload_id, 1, 4)
    first.write(b"aaaa")
    second.write(b"bbbb")
    first.finish()
    etag = second.finish()
    assert local.complete_upload(key, upload_id, [etag]) == 4
    with open(local.path(key), "rb") as f:
        assert f.read() == b"bbbb"

    # an empty file has no parts
    key = "tenants/t/Data/u5/empty.txt"
    upload_id = local.start_upload(key)
    assert local.complete_upload(key, upload_id, []) == 0
    assert local.stat(key).size == 0

    # a part that says more than it sends, or sends more than it says
    upload_id = local.start_upload("tenants/t/Data/u6/x.bin")
    writer = local.part_writer(upload_id, 1, 10)
    writer.write(b"12345")
    with pytest.raises(StoreError, match="shorter"):
        writer.finish()
    writer = local.part_writer(upload_id, 1, 10)
    with pytest.raises(StoreError, match="longer"):
        writer.write(b"x" * 11)
    writer.discard()
    with pytest.raises(StoreError, match="never uploaded"):
        local.complete_upload("tenants/t/Data/u6/x.bin", upload_id, [local_etag(b"12345")])


def test_local_multipart_refusals(local):
    key = "tenants/t/Data/u2/x.bin"

    def started(*parts):
        upload_id = local.start_upload(key)
        return upload_id, [put_local_part(local, upload_id, n, p) for n, p in enumerate(parts, start=1)]

    upload_id, etags = started(b"one", b"two")
    with pytest.raises(StoreError, match="does not match") as info:
        local.complete_upload(key, upload_id, [etags[0], local_etag(b"other")])
    assert info.value.client_error
    with pytest.raises(StoreError, match="never uploaded"):
        local.complete_upload(key, upload_id, etags + [local_etag(b"three")])
    with pytest.raises(StoreError, match="not listed"):
        local.complete_upload(key, upload_id, etags[:1])
    with pytest.raises(StoreError, match="another key"):
        local.complete_upload("tenants/t/Data/u2/y.bin", upload_id, etags)
    assert local.stat(key) is None
    for number in (0, 10001):
        with pytest.raises(StoreError):
            local.part_writer(upload_id, number)
    # while a part is being sent again, the upload cannot complete
    writer = local.part_writer(upload_id, 2, 3)
    with pytest.raises(StoreError, match="being uploaded"):
        local.complete_upload(key, upload_id, etags)
    writer.discard()
    # the store's folder list of stale uploads, and aborting one
    assert upload_id in local.stale_uploads(older_than=-1)
    assert upload_id not in local.stale_uploads(older_than=3600)
    local.abort_upload(key, upload_id)
    assert upload_files(local, upload_id) == []
    with pytest.raises(StoreError):
        local.upload_key(upload_id)
    # a part that arrives after its upload went away is refused, not half stored
    for length in (4, None):
        upload_id, _ = started(b"x")
        writer = local.part_writer(upload_id, 2, length)
        writer.write(b"late")
        local.abort_upload(key, upload_id)
        with pytest.raises(StoreError, match="gone"):
            writer.finish()
        assert local.stat(key) is None


def test_local_objects(local):
    size = local.write("tenants/a/Data/u/x.txt", iter([b"hello ", b"world"]))
    assert size == 11
    local.write("tenants/a/Data/v/y.txt", iter([b"y"]))
    local.write("tenants/ab/Data/w/z.txt", iter([b"z"]))
    local.start_upload("tenants/a/Data/pending/p.bin")  # an upload is not an object
    info = local.stat("tenants/a/Data/u/x.txt")
    assert info.size == 11 and info.last_modified
    assert local.stat("tenants/a/Data/u/none.txt") is None
    assert b"".join(local.read("tenants/a/Data/u/x.txt", chunk_size=4)) == b"hello world"
    assert list(local.read("tenants/a/Data/u/x.txt", chunk_size=4))[0] == b"hell"
    assert local.sha256("tenants/a/Data/u/x.txt") == hashlib.sha256(b"hello world").hexdigest()
    with pytest.raises(StoreError):
        list(local.read("tenants/a/Data/u/none.txt"))
    assert sorted(i.key for i in local.list("tenants/a/")) == ["tenants/a/Data/u/x.txt", "tenants/a/Data/v/y.txt"]
    assert [i.key for i in local.list("tenants/ab/")] == ["tenants/ab/Data/w/z.txt"]

    url = local.download_url("tenants/a/Data/u/x.txt", "日本 語.txt", "http://h:1", 60)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["key"] == "tenants/a/Data/u/x.txt" and query["name"] == "日本 語.txt"
    local.signer.check("get", {"store": "7", "key": query["key"], "name": query["name"]}, query["expires"],
                       query["signature"])

    local.delete("tenants/a/Data/u/x.txt")
    local.delete("tenants/a/Data/u/x.txt")  # gone already: no error
    assert not os.path.exists(os.path.join(local.root, "tenants", "a", "Data", "u"))  # empty folders go
    assert local.delete_prefix("tenants/a/") == 1
    assert list(local.list("tenants/a/")) == []
    assert [i.key for i in local.list("tenants/ab/")] == ["tenants/ab/Data/w/z.txt"]
    assert os.path.isdir(os.path.join(local.root, ".uploads"))


# -------------------------------------------------------------------------- S3 store
@pytest.fixture(scope="module")
def s3(s3_server):
    bucket = f"units-{uuid.uuid4().hex[:10]}"
    store = S3ObjectStore(s3_server.endpoint, bucket, s3_server.access_key, s3_server.secret_key)
    # the store made its bucket
    assert bucket in [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    return store


def put_presigned(store: S3ObjectStore, key: str, upload_id: str, parts: list[bytes]) -> list[str]:
    urls = store.part_urls(key, upload_id, len(parts), "http://ignored", 60)
    etags = []
    for url, data in zip(urls, parts):
        # the official CLI sends this content type with each part
        r = requests.put(url, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
        assert r.status_code == 200, r.text
        etags.append(r.headers["ETag"])
    return etags


def test_s3_refuses_wrong_credentials(s3_server):
    with pytest.raises(StoreError) as info:
        S3ObjectStore(s3_server.endpoint, "kqi-any", s3_server.access_key, "wrong-secret")
    assert not info.value.client_error


def test_s3_multipart_upload_with_presigned_urls(s3):
    key = f"tenants/t/Data/{uuid.uuid4().hex}/big.bin"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    upload_id = s3.start_upload(key)
    etags = put_presigned(s3, key, upload_id, parts)
    assert etags == [md5_etag(p) for p in parts]
    assert (key, upload_id) in [(k, u) for k, u, _ in s3.pending_uploads()]
    assert s3.complete_upload(key, upload_id, [e.strip('"') for e in etags]) == sum(map(len, parts))
    assert upload_id not in [u for _, u, _ in s3.pending_uploads()]
    assert s3.stat(key).size == sum(map(len, parts))
    assert s3.sha256(key) == hashlib.sha256(b"".join(parts)).hexdigest()
    assert b"".join(s3.read(key, chunk_size=MiB)) == b"".join(parts)

    url = s3.download_url(key, "日本 語.bin", "http://ignored", 60)
    r = requests.get(url, timeout=60)
    assert r.status_code == 200 and r.content == b"".join(parts)
    assert "filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%E8%AA%9E.bin" in r.headers["Content-Disposition"]
    query = dict(parse_qsl(urlsplit(url).query))
    query["X-Amz-Signature"] = query["X-Amz-Signature"][:-1] + (
        "0" if query["X-Amz-Signature"][-1] != "0" else "1")
    tampered = urlunsplit(urlsplit(url)._replace(query=urlencode(query)))
    assert requests.get(tampered, timeout=60).status_code == 403
    expired = s3.download_url(key, "x", "http://ignored", 1)
    time.sleep(2.1)
    r = requests.get(expired, timeout=60)
    assert r.status_code == 403 and "expired" in r.text.lower()


def test_s3_multipart_refusals(s3):
    key = f"tenants/t/Data/{uuid.uuid4().hex}/x.bin"
    first, last = os.urandom(5 * MiB), b"end"
    upload_id = s3.start_upload(key)
    etags = put_presigned(s3, key, upload_id, [first, last])
    for wrong, match in (([etags[0], md5_etag(b"other")], "does not match"),
                         (etags + [md5_etag(b"more")], "never uploaded"),
                         (etags[:1], "not listed")):
        with pytest.raises(StoreError, match=match) as info:
            s3.complete_upload(key, upload_id, wrong)
        assert info.value.client_error
    assert s3.stat(key) is None
    s3.abort_upload(key, upload_id)
    assert upload_id not in [u for _, u, _ in s3.pending_uploads()]
    with pytest.raises(StoreError) as info:
        s3.complete_upload(key, upload_id, etags)
    assert info.value.client_error
    s3.abort_upload(key, upload_id)  # twice: no error


def test_s3_objects(s3):
    prefix = f"tenants/{uuid.uuid4().hex[:8]}/"
    big = os.urandom(9 * MiB + 17)
    # write() splits into parts by itself (8 MiB), from chunks of any size
    assert s3.write(prefix + "Data/u/big.bin", (big[i:i + 3 * MiB] for i in range(0, len(big), 3 * MiB))) == len(big)
    assert s3.write(prefix + "Data/u/empty.txt", iter([])) == 0
    assert s3.write(prefix + "Data/v/y.txt", iter([b"y"])) == 1
    assert b"".join(s3.read(prefix + "Data/u/big.bin")) == big
    assert s3.stat(prefix + "Data/u/empty.txt").size == 0
    assert s3.stat(prefix + "Data/u/none") is None
    with pytest.raises(StoreError):
        list(s3.read(prefix + "Data/u/none"))
    assert sorted(i.key for i in s3.list(prefix)) == [prefix + "Data/u/big.bin", prefix + "Data/u/empty.txt",
                                                      prefix + "Data/v/y.txt"]
    s3.delete(prefix + "Data/v/y.txt")
    s3.delete(prefix + "Data/v/y.txt")
    assert s3.delete_prefix(prefix) == 2
    assert list(s3.list(prefix)) == []


# ------------------------------------------------------------------- upload protocol
def test_parse_part_etags():
    assert parse_part_etags(["1+abc", '2+"def"']) == ["abc", '"def"']
    assert parse_part_etags(['1+"a+b"']) == ['"a+b"']
    for bad in (None, [], "1+abc", ["2+abc"], ["1+a", "3+b"], ["1+a", "1+b"], ["1+"], ["+a"], ["1a+b"],
                ["x"], [1], [None], ["0+a"], ["-1+a"]):
        with pytest.raises(ValidationError) as info:
            parse_part_etags(bad)
        assert "partETags" in info.value.errors


def test_check_file_name():
    for good in ("a.txt", "日本語.csv", "a b (1).png", ".hidden", "a-b_c.tar.gz", "あ" * 85):
        assert check_file_name(good) == good
    for bad in ("", "   ", None, 5, "..", ".", "../a", "a/b", "/a", "a\\b", "a\x00b", "a\nb", "a\tb",
                "x" * 256, "あ" * 86, "a..b"):
        with pytest.raises(ValidationError) as info:
            check_file_name(bad, "files[0].fileName")
        assert "files[0].fileName" in info.value.errors


# --------------------------------------------------------------------------- layout
@pytest.fixture
def raw(tmp_path):
    """A data mount: stored paths below a folder, as the local store keeps a tenant's files."""
    base = tmp_path / "raw"
    files = {"Data/u1/a.txt": b"alpha", "Data/u2/b.csv": b"beta", "Data/u3/c.bin": os.urandom(3 * MiB)}
    for path, content in files.items():
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_bytes(content)
    return str(base), files


TYPED = [{"dataPath": "training/1/a.txt", "storedPath": "Data/u1/a.txt"},
         {"dataPath": "training/1/b.csv", "storedPath": "Data/u2/b.csv"},
         {"dataPath": "testing/2/c.bin", "storedPath": "Data/u3/c.bin"}]
FLAT = [{"dataPath": "1/a.txt", "storedPath": "Data/u1/a.txt"},
        {"dataPath": "2/c.bin", "storedPath": "Data/u3/c.bin"}]


def tree(folder) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, folder)] = os.readlink(full) if os.path.islink(full) else "file"
    return out


def test_layout_symlinks(tmp_path, raw):
    raw_dir, files = raw
    input_dir = str(tmp_path / "kqi" / "input")
    assert lay_out(TYPED, input_dir, SYMLINK, raw_dir=raw_dir, link_target_dir="/kqi/raw") == 3
    assert tree(input_dir) == {"training/1/a.txt": "/kqi/raw/Data/u1/a.txt",
                               "training/1/b.csv": "/kqi/raw/Data/u2/b.csv",
                               "testing/2/c.bin": "/kqi/raw/Data/u3/c.bin"}
    # links into the mount as this machine sees it, and readable here
    flat_dir = str(tmp_path / "flat")
    assert lay_out(FLAT, flat_dir, SYMLINK, raw_dir=raw_dir) == 2
    assert tree(flat_dir) == {"1/a.txt": os.path.join(raw_dir, "Data/u1/a.txt"),
                              "2/c.bin": os.path.join(raw_dir, "Data/u3/c.bin")}
    with open(os.path.join(flat_dir, "2", "c.bin"), "rb") as f:
        assert f.read() == files["Data/u3/c.bin"]
    with pytest.raises(LayoutError, match="data mount"):
        lay_out(FLAT, str(tmp_path / "none"), SYMLINK)


def test_layout_copies(tmp_path, raw):
    raw_dir, files = raw
    input_dir = str(tmp_path / "input")
    # first as links, then again as copies: the copies replace the links
    lay_out(TYPED, input_dir, SYMLINK, raw_dir=raw_dir)
    assert lay_out(TYPED, input_dir, COPY, raw_dir=raw_dir) == 3
    assert set(tree(input_dir).values()) == {"file"}
    for pair in TYPED:
        with open(os.path.join(input_dir, pair["dataPath"]), "rb") as f:
            assert f.read() == files[pair["storedPath"]]
    # without a mount, streamed from the object store
    store = LocalObjectStore(raw_dir, UrlSigner(b"k" * 32), "/x")
    asked = []

    def open_stored(path):
        asked.append(path)
        return store.read(path, chunk_size=MiB)

    flat_dir = str(tmp_path / "flat")
    assert lay_out(FLAT, flat_dir, COPY, open_stored=open_stored) == 2
    assert asked == ["Data/u1/a.txt", "Data/u3/c.bin"]
    assert tree(flat_dir) == {"1/a.txt": "file", "2/c.bin": "file"}
    with open(os.path.join(flat_dir, "2", "c.bin"), "rb") as f:
        assert f.read() == files["Data/u3/c.bin"]
    with pytest.raises(LayoutError, match="copying needs"):
        lay_out(FLAT, str(tmp_path / "nothing"), COPY)
    with pytest.raises(LayoutError, match="creation method"):
        lay_out(FLAT, str(tmp_path / "nothing"), "hardlink", raw_dir=raw_dir)


def test_layout_refuses_unsafe_paths(tmp_path, raw):
    raw_dir, _ = raw
    outside = tmp_path / "outside"
    for bad in ("../outside/x.txt", "/etc/x", "training/../../outside/x", "training//x", "", "a/./b",
                "nul\x00/x"):
        for pair in ({"dataPath": bad, "storedPath": "Data/u1/a.txt"},
                     {"dataPath": "training/1/a.txt", "storedPath": bad}):
            input_dir = tmp_path / f"in-{uuid.uuid4().hex[:6]}"
            for method in (SYMLINK, COPY):
                with pytest.raises(LayoutError, match="unsafe"):
                    # the good pair first: nothing at all is made when one pair is bad
                    lay_out([FLAT[0], pair], str(input_dir), method, raw_dir=raw_dir)
                assert not input_dir.exists()
    assert not outside.exists()
    # a link planted in the input folder does not lead the layout out of it
    input_dir = tmp_path / "planted"
    input_dir.mkdir()
    outside.mkdir()
    os.symlink(str(outside), str(input_dir / "training"))
    with pytest.raises(LayoutError, match="out of the input folder"):
        lay_out(TYPED, str(input_dir), COPY, raw_dir=raw_dir)
    assert list(outside.iterdir()) == []


def test_local_store_never_serves_through_a_link(tmp_path):
    """A job can leave symbolic links in its output folder (which is inside the store): the
    store must neither list, stat, read nor sign-serve what they point at."""
    import hashlib as _hashlib

    from kqi_services.storage.base import StoreError as _StoreError
    from kqi_services.storage.local import LocalObjectStore as _Store, UrlSigner as _Signer

    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    store = _Store(str(tmp_path / "store"), _Signer(_hashlib.sha256(b"k").digest()), "/services/kqi/storage", 1)
    out = tmp_path / "store" / "tenants" / "t" / "TrainingContainerOutputFiles" / "1"
    out.mkdir(parents=True)
    (out / "real.txt").write_text("ok")
    (out / "leak.txt").symlink_to(secret)
    (out / "dir").symlink_to(tmp_path)
    keys = {i.key for i in store.list("tenants/t/")}
    assert keys == {"tenants/t/TrainingContainerOutputFiles/1/real.txt"}
    assert store.stat("tenants/t/TrainingContainerOutputFiles/1/leak.txt") is None
    for key in ("tenants/t/TrainingContainerOutputFiles/1/leak.txt",
                "tenants/t/TrainingContainerOutputFiles/1/dir/secret.txt"):
        with pytest.raises(_StoreError):
            b"".join(store.read(key))
    assert b"".join(store.read("tenants/t/TrainingContainerOutputFiles/1/real.txt")) == b"ok"


# ------------------------------------------------------------------ room on the disk
def test_reserve_rule():
    from kqi_services.storage.base import InsufficientStorage, SpaceReserve

    GiB = 1024 * MiB
    default = SpaceReserve()
    assert default.bytes_for(10 * GiB) == GiB  # 1 GiB is more than 5 % of 10 GiB
    assert default.bytes_for(100 * GiB) == 5 * GiB  # 5 % of 100 GiB is more than 1 GiB
    reserve = SpaceReserve(min_bytes=8 * MiB, percent=0)
    total = 96 * MiB
    assert reserve.refusal(free=20 * MiB, total=total) is None  # no size told: room enough
    assert reserve.refusal(free=20 * MiB, total=total, needed=12 * MiB) is None  # leaves exactly 8 MiB
    cut = reserve.refusal(free=20 * MiB, total=total, needed=12 * MiB + 1)
    assert isinstance(cut, InsufficientStorage) and cut.status == 507
    assert "does not fit" in str(cut) and "8.0 MiB" in str(cut) and "kept free" in str(cut)
    under = reserve.refusal(free=8 * MiB - 1, total=total)
    assert under.status == 507 and "nearly full" in str(under)
    assert reserve.refusal(free=8 * MiB - 1, total=total, needed=0).status == 507  # even an empty file
    never = reserve.refusal(free=90 * MiB, total=total, needed=88 * MiB + 1)
    assert never.status == 413 and "larger than this storage can ever take" in str(never)
    assert reserve.refusal(free=90 * MiB, total=total, needed=82 * MiB) is None
    assert SpaceReserve(min_bytes=0, percent=10).bytes_for(total) == int(total * 0.1)


def test_local_store_space_refusal_reads_the_real_free_space(local):
    from kqi_services.storage.base import SpaceReserve

    st = os.statvfs(local.root)
    free, total = local.space()
    assert total == st.f_blocks * st.f_frsize and 0 < free <= total
    assert local.space_refusal(SpaceReserve(min_bytes=0, percent=0), 1) is None
    assert local.space_refusal(SpaceReserve(min_bytes=total, percent=0)).status == 507
    assert local.space_refusal(SpaceReserve(min_bytes=0, percent=0), total + 1).status == 413


def test_disk_full_errors_are_recognised(tmp_path):
    import errno
    import sqlite3

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from kqi_services.storage.base import is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("x"))
    # a real SQLITE_FULL: a database that may not grow past a few pages
    engine = create_engine(f"sqlite:///{tmp_path}/full.sqlite")
    with pytest.raises(OperationalError) as caught:
        with engine.begin() as c:
            c.execute(text("PRAGMA max_page_count = 3"))
            c.execute(text("CREATE TABLE t (x TEXT)"))
            for _ in range(100):
                c.execute(text("INSERT INTO t VALUES (:x)"), {"x": "y" * 1000})
    assert "database or disk is full" in str(caught.value)
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    assert is_disk_full(caught.value)
    # as the API answers it: 507 in the error shape's terms, no internals
    from kqi_services.api.base import as_api_error

    mapped = as_api_error(caught.value)
    assert mapped.status_code == 507 and "disk is full" in mapped.detail and "sqlite" not in mapped.detail.lower()
    assert as_api_error(RuntimeError("other")) is None


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs of 4 MiB (root only): writes there meet ENOSPC for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    import subprocess

    path = tmp_path / "tiny"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], check=True)
    yield str(path)
    subprocess.run(["umount", "-l", str(path)], check=False)


def used_bytes(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.mark.parametrize("told", [True, False], ids=["in-place", "kept-apart"])
def test_a_part_that_meets_enospc_leaves_no_bytes(tiny_disk, told):
    from kqi_services.storage.base import InsufficientStorage

    store = LocalObjectStore(os.path.join(tiny_disk, "store"), UrlSigner(b"k" * 32), "/s", store_id=1)
    upload_id = store.start_upload("t/a.bin")
    used = used_bytes(tiny_disk)
    data = os.urandom(6 * MiB)  # more than the disk holds
    writer = store.part_writer(upload_id, 1, len(data) if told else None)
    with pytest.raises(InsufficientStorage) as caught:
        for i in range(0, len(data), 64 * 1024):
            writer.write(data[i:i + 64 * 1024])
    assert caught.value.status == 507 and "full" in str(caught.value)
    left = upload_files(store, upload_id)
    assert not [n for n in left if n.endswith((".partial", ".lock", ".etag")) or n == "1"], left
    if told:  # the in-place part wrote into the upload's data file: dropping the upload frees it
        store.abort_upload("t/a.bin", upload_id)
    assert used_bytes(tiny_disk) <= used + 64 * 1024, (used, used_bytes(tiny_disk))
    # a part that fits still goes through afterwards
    upload_id = store.start_upload("t/b.bin")
    etag = put_local_part(store, upload_id, 1, b"small")
    assert store.complete_upload("t/b.bin", upload_id, [etag]) == 5


def test_an_object_that_meets_enospc_leaves_no_file(tiny_disk):
    from kqi_services.storage.base import InsufficientStorage

    store = LocalObjectStore(os.path.join(tiny_disk, "store"), UrlSigner(b"k" * 32), "/s", store_id=1)
    used = used_bytes(tiny_disk)
    with pytest.raises(InsufficientStorage):
        store.write("t/out/big.bin", iter([b"x" * MiB] * 6))
    assert list(store.list("t/")) == []
    assert [n for n in os.listdir(os.path.join(store.root, "t", "out"))] == []
    assert used_bytes(tiny_disk) <= used + 64 * 1024


def test_abandoned_uploads_go_after_the_configured_age(tmp_path, local):
    from datetime import timedelta

    from kqi_services.app import KqiService
    from kqi_services.db.models import Storage, Tenant, utcnow
    from kqi_services.db.models_data import Upload
    from kqi_services.db.session import make_engine, make_session_factory, upgrade
    from kqi_services.domain.uploads import Uploads, clean_expired_uploads

    assert KqiService.class_traits()["upload_expiry_seconds"].default_value == 3600
    url = f"sqlite:///{tmp_path}/kqi.sqlite"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))

    class Log:
        def warning(self, *args):
            raise AssertionError(args)

    with sessions() as db:
        tenant = Tenant(name=f"t{uuid.uuid4().hex[:6]}", display_name="T",
                        storage=Storage(name=f"s{uuid.uuid4().hex[:6]}", kind="local",
                                        server_url=f"file://{local.root}"))
        db.add(tenant)
        db.commit()
        uploads = Uploads(db, local, tenant)
        started = {age: uploads.start("u", f"{age}.bin", 1, "Data", "http://x", 60) for age in (3599, 3601, 7200)}
        for age, info in started.items():
            row = db.query(Upload).filter_by(store_upload_id=info["uploadId"]).one()
            row.created_at = utcnow() - timedelta(seconds=age)
        db.commit()
        assert clean_expired_uploads(db, lambda t: local, 3600, Log()) == 2
        left = {r.store_upload_id for r in db.query(Upload).all()}
        assert left == {started[3599]["uploadId"]}
        assert upload_files(local, started[3599]["uploadId"]) == ["meta"]
        assert upload_files(local, started[3601]["uploadId"]) == []
        assert upload_files(local, started[7200]["uploadId"]) == []
        # a shorter age set by the operator takes the young one too
        assert clean_expired_uploads(db, lambda t: local, 60, Log()) == 1
        assert db.query(Upload).count() == 0


def test_part_folders_without_an_upload_row_go_after_the_age(tmp_path, local):
    from kqi_services.db.session import make_engine, make_session_factory, upgrade
    from kqi_services.domain.uploads import clean_orphan_upload_folders

    url = f"sqlite:///{tmp_path}/kqi.sqlite"
    upgrade(url)
    orphan = local.start_upload("t/orphan.bin")  # its row was never written
    folder = os.path.join(local.root, ".uploads", orphan)
    with make_session_factory(make_engine(url))() as db:
        assert clean_orphan_upload_folders(db, [local], 3600) == 0  # young: left alone
        os.utime(folder, (time.time() - 3601, time.time() - 3601))
        assert clean_orphan_upload_folders(db, [local], 3600) == 1
    assert not os.path.exists(folder)
