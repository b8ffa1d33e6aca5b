"""Bad input to data management is refused with a clear 4xx and leaves nothing behind,
on both object stores (the local store and a real S3 server): file names, ids of other
tenants, uploads that are never completed or whose parts do not match, expired and
tampered URLs, double registration, dataset entries.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from .platform import create_data, new_platform, remove_tree, store_user, upload_parts
from .s3server import s3_server  # noqa: F401  (the session fixture)

MiB = 1024 * 1024
BAD_NAMES = ["../evil.txt", "..", "a/b.txt", "/etc/passwd", "a\\b.txt", "nul\x00.txt", "", "   ", "x" * 256,
             "tab\tname.txt"]


@pytest.fixture(scope="module", params=["local", "s3"])
def store(request, platform, short_platform_boot):
    s3 = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return store_user(platform, request.param, s3=s3)


@pytest.fixture(scope="module")
def other(request, platform, store):
    """A user of another tenant on the same kind of store."""
    user, view = store
    s3 = request.getfixturevalue("s3_server") if view.kind == "s3" else None
    return store_user(platform, view.kind, s3=s3)[0]


def assert_error(r: requests.Response, status: int, field: str | None = None, words: str | None = None) -> dict:
    """A 4xx in the API's error shape, with a message for the user."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and body["detail"], body
    if field is not None:
        assert field in body["errors"] and body["errors"][field], body
    if words is not None:
        assert words.lower() in r.text.lower(), body
    return body


def tamper(url: str, **changes) -> str:
    """The URL with query parameters replaced ({name: value}) or, with path=, another path."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = changes.pop("path", parts.path)
    query.update(changes)
    return urlunsplit(parts._replace(path=path, query=urlencode(query)))


def flip(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def signature_field(view) -> str:
    return "signature" if view.kind == "local" else "X-Amz-Signature"


# ------------------------------------------------------------------------------ names
def test_bad_file_names_are_refused_at_upload(store):
    user, view = store
    keys, pending = view.keys(), view.pending_uploads()
    for name in BAD_NAMES:
        r = user.api("GET", "/upload/parameter", params={"fileName": name, "partSum": 1, "type": "Data"})
        assert_error(r, 400, "fileName")
    r = user.api("GET", "/upload/parameter", params={"partSum": 1, "type": "Data"})
    assert_error(r, 400, "fileName")
    for parts in ("-1", "10001", "many", "1.5"):
        r = user.api("GET", "/upload/parameter", params={"fileName": "ok.txt", "partSum": parts, "type": "Data"})
        assert_error(r, 400, "partSum")
    r = user.api("GET", "/upload/parameter", params={"fileName": "ok.txt", "partSum": 1, "type": "../Data"})
    assert_error(r, 400, "type")
    # nothing was started in the store
    assert view.keys() == keys and view.pending_uploads() == pending


def test_bad_file_names_are_refused_at_registration(store):
    user, view = store
    data = create_data(user, f"names-{uuid.uuid4().hex[:6]}")
    upload = upload_parts(user, "good.txt", [b"content"])
    for name in BAD_NAMES:
        r = user.api("POST", f"/data/{data['id']}/files",
                     json={"files": [{"fileName": name, "storedPath": upload["storedPath"]}]})
        assert_error(r, 400, "files[0].fileName")
    for body in ({}, {"files": []}, {"files": "x"}, {"files": [{"fileName": "a.txt"}]},
                 {"files": [{"fileName": "a.txt", "storedPath": "Data/none/a.txt"}]}):
        assert user.api("POST", f"/data/{data['id']}/files", json=body).status_code == 400, body
    assert user.api("GET", f"/data/{data['id']}/files").json() == []
    # the upload was not used up by the refusals: a good name registers it
    r = user.api("POST", f"/data/{data['id']}/files",
                 json={"files": [{"fileName": "good.txt", "storedPath": upload["storedPath"]}]})
    assert r.status_code == 201, r.text
    # registering the same stored file again, here or on other data, is a conflict
    second = create_data(user, f"names2-{uuid.uuid4().hex[:6]}")
    for target in (data, second):
        r = user.api("POST", f"/data/{target['id']}/files",
                     json={"files": [{"fileName": "again.txt", "storedPath": upload["storedPath"]}]})
        assert_error(r, 409, words="registered already")
    # a second file of the same name in one data is a conflict, and a half-valid list adds nothing
    other_upload = upload_parts(user, "good.txt", [b"other"])
    r = user.api("POST", f"/data/{data['id']}/files",
                 json={"files": [{"fileName": "good.txt", "storedPath": other_upload["storedPath"]}]})
    assert_error(r, 409, words="good.txt")
    r = user.api("POST", f"/data/{second['id']}/files",
                 json={"files": [{"fileName": "fine.txt", "storedPath": other_upload["storedPath"]},
                                 {"fileName": "../bad", "storedPath": other_upload["storedPath"]}]})
    assert_error(r, 400, "files[1].fileName")
    assert user.api("GET", f"/data/{second['id']}/files").json() == []
    # an upload that is not complete cannot be registered
    started = upload_parts(user, "half.txt", [b"part"], complete=False)
    r = user.api("POST", f"/data/{second['id']}/files",
                 json={"files": [{"fileName": "half.txt", "storedPath": started["storedPath"]}]})
    assert_error(r, 400, "files[0].storedPath", "not complete")
    # a stored path of another kind of upload is not data
    attached = upload_parts(user, "attach.txt", [b"a"], resource_type="TrainingHistoryAttachedFiles")
    r = user.api("POST", f"/data/{second['id']}/files",
                 json={"files": [{"fileName": "attach.txt", "storedPath": attached["storedPath"]}]})
    assert_error(r, 400, "files[0].storedPath")
    files = user.api("GET", f"/data/{data['id']}/files").json()
    assert [(f["fileName"], f["fileSize"]) for f in files] == [("good.txt", 7)]
    # a data's name may be changed, not blanked out
    assert_error(user.api("PUT", f"/data/{data['id']}", json={"name": "  "}), 400, "name")
    assert user.api("GET", f"/data/{data['id']}").json()["name"] == data["name"]


# --------------------------------------------------------------------- ids, tenants
def test_unknown_and_other_tenant_ids_are_404(store, other):
    user, view = store
    data = create_data(user, "mine", {"secret.txt": b"tenant A only"})
    file_id = user.api("GET", f"/data/{data['id']}/files").json()[0]["fileId"]
    dataset = user.api("POST", "/datasets", json={"name": "mine", "entries": {"training": [{"id": data["id"]}]}})
    assert dataset.status_code == 201, dataset.text
    set_id = dataset.json()["id"]
    keys = view.keys()

    for caller, data_id, dataset_id in ((other, data["id"], set_id), (user, 987654321, 987654321)):
        for method, path, body in [
            ("GET", f"/data/{data_id}", None),
            ("PUT", f"/data/{data_id}", {"name": "stolen"}),
            ("DELETE", f"/data/{data_id}", None),
            ("GET", f"/data/{data_id}/files?withUrl=true", None),
            ("POST", f"/data/{data_id}/files", {"files": [{"fileName": "x", "storedPath": "Data/x/x"}]}),
            ("DELETE", f"/data/{data_id}/files/{file_id}", None),
            ("PUT", f"/data/{data_id}/tags/stolen", None),
            ("GET", f"/datasets/{dataset_id}", None),
            ("PUT", f"/datasets/{dataset_id}", {"name": "x", "entries": {"training": [{"id": data_id}]}}),
            ("PATCH", f"/datasets/{dataset_id}", {"name": "stolen"}),
            ("DELETE", f"/datasets/{dataset_id}", None),
            ("POST", f"/datasets/{dataset_id}/copy", {}),
            ("GET", f"/datasets/{dataset_id}/files?withUrl=true", None),
            ("GET", f"/datasets/{dataset_id}/pathpairs", None),
        ]:
            assert_error(caller.api(method, path, json=body), 404)
    # a file id of other data, or none at all
    mine_too = create_data(user, "mine too")
    assert_error(user.api("DELETE", f"/data/{mine_too['id']}/files/{file_id}"), 404)
    assert_error(user.api("DELETE", f"/data/{data['id']}/files/987654321"), 404)
    assert_error(user.api("GET", "/data/not-a-number"), 400)
    # another tenant's data in a dataset: 404, nothing made
    before = other.api("GET", "/datasets").json()
    r = other.api("POST", "/datasets", json={"name": "x", "entries": {"training": [{"id": data["id"]}]}})
    assert_error(r, 404, words=str(data["id"]))
    assert other.api("GET", "/datasets").json() == before
    # another tenant's upload can be neither completed nor registered
    started = upload_parts(user, "a.txt", [b"a"], complete=False)
    r = other.api("POST", "/upload/complete", json={"key": started["key"], "uploadId": started["uploadId"],
                                                    "partETags": started["etags"]})
    assert_error(r, 404)
    done = upload_parts(user, "b.txt", [b"b"])
    own = create_data(other, "theirs")
    r = other.api("POST", f"/data/{own['id']}/files",
                  json={"files": [{"fileName": "b.txt", "storedPath": done["storedPath"]}]})
    assert_error(r, 400, "files[0].storedPath")
    assert other.api("GET", f"/data/{own['id']}/files").json() == []
    # tenant A's things are untouched
    assert user.api("GET", f"/data/{data['id']}").json()["name"] == "mine"
    assert user.api("GET", f"/datasets/{set_id}").json()["name"] == "mine"
    assert [f["fileName"] for f in user.api("GET", f"/data/{data['id']}/files").json()] == ["secret.txt"]
    assert view.keys().items() >= keys.items()
    r = user.api("POST", "/upload/complete", json={"key": started["key"], "uploadId": started["uploadId"],
                                                   "partETags": started["etags"]})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------- upload parts
def test_parts_that_do_not_match_drop_the_upload(store):
    user, view = store
    first, last = os.urandom(5 * MiB), b"the end"

    def dropped(upload):
        assert upload["uploadId"] not in view.pending_uploads()
        if view.kind == "local":
            assert view.upload_files(upload["uploadId"]) == []
        r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                       "partETags": upload["etags"]})
        assert_error(r, 404)

    keys = view.keys()
    # a wrong ETag
    upload = upload_parts(user, "wrong-etag.bin", [first, last], complete=False)
    assert upload["uploadId"] in view.pending_uploads()
    if view.kind == "local":
        # the SDK's parts, one size but the last, are written in place into one file
        assert set(view.upload_files(upload["uploadId"])) == {"1.etag", "2.etag", "data", "meta", "slot"}
    bad = [upload["etags"][0].split("+")[0] + '+"' + "0" * 32 + '"', upload["etags"][1]]
    r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                   "partETags": bad})
    assert_error(r, 400, "partETags", "does not match")
    dropped(upload)

    # a part that never came
    r = user.api("GET", "/upload/parameter", params={"fileName": "missing.bin", "partSum": 2, "type": "Data"})
    upload = r.json()
    put = requests.put(upload["uris"][0], data=first, timeout=60)
    upload["etags"] = [f"1+{put.headers['ETag']}", f"2+{put.headers['ETag']}"]
    r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                   "partETags": upload["etags"]})
    assert_error(r, 400, "partETags", "never uploaded")
    dropped(upload)

    # fewer ETags than parts
    upload = upload_parts(user, "count.bin", [first, last], complete=False)
    r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                   "partETags": upload["etags"][:1]})
    assert_error(r, 400, "partETags", "2 parts")
    dropped(upload)

    # malformed lists are refused without dropping the upload; then it completes
    upload = upload_parts(user, "late.bin", [first, last], complete=False)
    for etags in ([], "x", [upload["etags"][1], upload["etags"][0]], ["1-abc", "2-def"], ["1+", "2+"], [1, 2]):
        r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                       "partETags": etags})
        assert_error(r, 400, "partETags")
    r = user.api("POST", "/upload/complete", json={"key": upload["key"] + "x", "uploadId": upload["uploadId"],
                                                   "partETags": upload["etags"]})
    assert_error(r, 404)
    r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                   "partETags": upload["etags"]})
    assert r.status_code == 200, r.text
    r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                   "partETags": upload["etags"]})
    assert_error(r, 409)
    assert view.keys()[upload["key"]] == len(first) + len(last)
    # nothing of the dropped uploads is in the store
    assert set(view.keys()) - set(keys) == {upload["key"]}
    assert upload["uploadId"] not in view.pending_uploads()


def test_tampered_urls_are_refused(store):
    user, view = store
    sig = signature_field(view)
    r = user.api("GET", "/upload/parameter", params={"fileName": "t.bin", "partSum": 2, "type": "Data"})
    upload = r.json()
    url = upload["uris"][0]
    number = "part" if view.kind == "local" else "partNumber"
    attempts = [tamper(url, **{sig: flip(dict(parse_qsl(urlsplit(url).query))[sig])}),
                tamper(url, **{number: "2"}),
                tamper(url, **{"upload" if view.kind == "local" else "uploadId": "0" * 32})]
    if view.kind == "local":
        attempts += [tamper(url, expires=str(int(time.time()) + 10 ** 6)), tamper(url, store="2"),
                     tamper(url, signature="")]
    else:
        attempts += [tamper(url, path=urlsplit(url).path + "x"),
                     tamper(url, **{"X-Amz-Expires": "604800"})]
    for i, bad in enumerate(attempts):
        # the first with a whole 16 MiB part: the refusal still arrives as a 403
        body = os.urandom(16 * MiB) if i == 0 else b"data"
        r = requests.put(bad, data=body, timeout=60)
        assert r.status_code == 403, (i, r.status_code, r.text[:300])
        if view.kind == "local":
            assert r.json()["detail"], r.text
        else:
            assert "<Code>" in r.text
    # none of it was stored as a part
    if view.kind == "local":
        assert view.upload_files(upload["uploadId"]) == ["meta"]
    else:
        parts = view.s3.list_parts(Bucket=view.bucket, Key=upload["key"], UploadId=upload["uploadId"])
        assert parts.get("Parts", []) == []

    # downloads
    data = create_data(user, "download", {"one.txt": b"one", "two.txt": b"two"})
    files = user.api("GET", f"/data/{data['id']}/files", params={"withUrl": "true"}).json()
    one, two = files
    assert requests.get(one["url"], timeout=30).content == b"one"
    assert requests.get(two["url"], timeout=30).content == b"two"
    one_query = dict(parse_qsl(urlsplit(one["url"]).query))
    two_query = dict(parse_qsl(urlsplit(two["url"]).query))
    if view.kind == "local":
        attempts = [tamper(one["url"], signature=flip(one_query["signature"])),
                    tamper(one["url"], key=two_query["key"]),  # another object with this signature
                    tamper(one["url"], name="other.txt"),
                    tamper(one["url"], key=one_query["key"].replace("/Data/", "/../Data/"))]
    else:
        attempts = [tamper(one["url"], **{sig: flip(one_query[sig])}),
                    tamper(one["url"], path=urlsplit(two["url"]).path),  # another object with this signature
                    tamper(one["url"], **{"response-content-disposition": "attachment; filename=x"})]
    for bad in attempts:
        r = requests.get(bad, timeout=30)
        assert r.status_code == 403, (bad, r.status_code, r.text[:300])
        assert b"one" != r.content and b"two" != r.content


# -------------------------------------------------------------------------- datasets
def test_data_in_a_dataset_cannot_be_deleted(store):
    user, view = store
    data = create_data(user, "kept", {"k.txt": b"keep me"})
    name = f"uses-it-{uuid.uuid4().hex[:6]}"
    r = user.api("POST", "/datasets", json={"name": name, "isFlat": True, "flatEntries": [{"id": data["id"]}]})
    assert r.status_code == 201, r.text
    keys = view.keys()
    body = assert_error(user.api("DELETE", f"/data/{data['id']}"), 409)
    assert name in body["detail"] and str(r.json()["id"]) in body["detail"]
    assert user.api("GET", f"/data/{data['id']}").status_code == 200
    assert view.keys() == keys


def test_bad_dataset_entries(store, other):
    user, view = store
    d1 = create_data(user, "e1")["id"]
    d2 = create_data(user, "e2")["id"]
    foreign = create_data(other, "foreign")["id"]
    before = user.api("GET", "/datasets").json()
    cases = [
        ({"name": "x", "entries": {"training": [{"id": 987654321}]}}, 404, None),
        ({"name": "x", "entries": {"training": [{"id": foreign}]}}, 404, None),
        ({"name": "x", "entries": {"training": [{"id": d1}], "testing": [{"id": d1}]}}, 400, "entries"),
        ({"name": "x", "entries": {"training": [{"id": d1}, {"id": d1}]}}, 400, "entries"),
        ({"name": "x", "entries": {"train": [{"id": d1}]}}, 400, "entries"),
        ({"name": "x", "entries": {"training": [{"id": "1"}]}}, 400, "entries"),
        ({"name": "x", "entries": {"training": [{"id": True}]}}, 400, "entries"),
        ({"name": "x", "entries": {"training": [d1]}}, 400, "entries"),
        ({"name": "x", "entries": {"training": {"id": d1}}}, 400, "entries"),
        ({"name": "x", "entries": [{"id": d1}]}, 400, "entries"),
        ({"name": "x", "entries": {}}, 400, "entries"),
        ({"name": "x", "isFlat": True, "flatEntries": [{"id": d1}, {"id": d1}]}, 400, "entries"),
        ({"name": "x", "isFlat": True, "flatEntries": "all"}, 400, "flatEntries"),
        ({"name": "", "entries": {"training": [{"id": d1}]}}, 400, "name"),
        ({"entries": {"training": [{"id": d1}]}}, 400, "name"),
        ({"name": "x", "isFlat": "yes", "entries": {"training": [{"id": d1}]}}, 400, "isFlat"),
    ]
    for body, status, field in cases:
        assert_error(user.api("POST", "/datasets", json=body), status, field)
    assert user.api("GET", "/datasets").json() == before

    # the same through an edit: the dataset stays as it was
    r = user.api("POST", "/datasets", json={"name": "edit-me", "entries": {"training": [{"id": d1}],
                                                                          "testing": [{"id": d2}]}})
    set_id = r.json()["id"]
    pairs_before = user.api("GET", f"/datasets/{set_id}").json()
    for body, status, field in cases:
        if "name" not in body or not body["name"]:
            continue
        assert_error(user.api("PUT", f"/datasets/{set_id}", json=body), status, field)
    assert user.api("GET", f"/datasets/{set_id}").json() == pairs_before
    assert_error(user.api("PATCH", f"/datasets/{set_id}", json={"name": ""}), 400, "name")
    assert_error(user.api("PATCH", f"/datasets/{set_id}", json={"memo": 5}), 400, "memo")
    assert user.api("GET", f"/datasets/{set_id}").json() == pairs_before


# ------------------------------------------- expiry: a platform with short lifetimes
SHORT_CONFIG = """
c.KqiService.upload_url_expiry_seconds = 3
c.KqiService.download_url_expiry_seconds = 3
c.KqiService.upload_expiry_seconds = 4
c.KqiService.upload_cleanup_interval_seconds = 0.5
"""


class BackgroundPlatform:
    """A platform that boots in a thread while the other tests of the module run."""

    def __init__(self, base: str, env: dict):
        self.base = base
        self.platform = new_platform(base, env)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, daemon=True)
        self.thread.start()

    def _start(self):
        try:
            self.platform.start(timeout=120)
        except BaseException as e:  # reported to the test that needs the platform
            self.error = e

    def ready(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.platform

    def stop(self):
        self.thread.join()
        self.platform.stop()
        remove_tree(self.base)


@pytest.fixture(scope="module")
def short_platform_boot(tmp_path_factory):
    """A platform whose URLs expire after 3 s and whose unregistered uploads go after 4 s
    (booting from the module's first test on)."""
    base = str(tmp_path_factory.mktemp("short-platform"))
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write(SHORT_CONFIG)
    boot = BackgroundPlatform(base, {"KQI_SERVICE_CONFIG": config})
    yield boot
    boot.stop()


@pytest.fixture(scope="module")
def short_platform(short_platform_boot):
    return short_platform_boot.ready()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_expired_urls_and_abandoned_uploads(short_platform, kind, request):
    s3 = request.getfixturevalue("s3_server") if kind == "s3" else None
    user, view = store_user(short_platform, kind, s3=s3)
    # a registered file, and a download URL for it
    data = create_data(user, "kept", {"kept.txt": b"kept"})
    download = user.api("GET", f"/data/{data['id']}/files", params={"withUrl": "true"}).json()[0]["url"]
    # an upload with one of its two parts sent, never completed
    r = user.api("GET", "/upload/parameter", params={"fileName": "abandoned.bin", "partSum": 2, "type": "Data"})
    abandoned = r.json()
    put = requests.put(abandoned["uris"][0], data=os.urandom(5 * MiB), timeout=60)
    assert put.status_code == 200, put.text
    # an upload completed but never registered
    unregistered = upload_parts(user, "unregistered.bin", [b"x" * 1000])
    # a part URL that will be used too late
    late = user.api("GET", "/upload/parameter", params={"fileName": "late.bin", "partSum": 1, "type": "Data"}).json()
    started = time.monotonic()
    pending = view.pending_uploads()
    assert abandoned["uploadId"] in pending and late["uploadId"] in pending
    assert unregistered["key"] in view.keys()
    if kind == "local":
        assert {"1.etag", "data", "meta"} <= set(view.upload_files(abandoned["uploadId"]))

    time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
    r = requests.put(late["uris"][0], data=b"too late", timeout=30)
    assert r.status_code == 403, r.text
    assert "expired" in r.text.lower()
    r = requests.get(download, timeout=30)
    assert r.status_code == 403 and "expired" in r.text.lower(), r.text

    # the cleaner removes both uploads with their parts and objects, and nothing else
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pending = view.pending_uploads()
        if not ({abandoned["uploadId"], late["uploadId"]} & set(pending)) and unregistered["key"] not in view.keys():
            break
        time.sleep(0.25)
    assert abandoned["uploadId"] not in pending and late["uploadId"] not in pending
    assert unregistered["key"] not in view.keys()
    if kind == "local":
        assert view.upload_files(abandoned["uploadId"]) == []
    r = user.api("POST", "/upload/complete", json={"key": abandoned["key"], "uploadId": abandoned["uploadId"],
                                                   "partETags": [f"1+{put.headers['ETag']}", "2+x"]})
    assert_error(r, 404)
    r = user.api("POST", f"/data/{data['id']}/files",
                 json={"files": [{"fileName": "u.bin", "storedPath": unregistered["storedPath"]}]})
    assert_error(r, 400, "files[0].storedPath")
    # the registered file stays, and a fresh URL serves it
    files = user.api("GET", f"/data/{data['id']}/files", params={"withUrl": "true"}).json()
    assert [f["fileName"] for f in files] == ["kept.txt"]
    assert requests.get(files[0]["url"], timeout=30).content == b"kept"
    assert list(view.keys().values()) == [4]
