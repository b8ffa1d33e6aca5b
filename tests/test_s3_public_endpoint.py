"""A public address for an S3 endpoint: the presigned URLs the platform hands out (upload parts,
downloads) use it, signed for that host, and work there; the service keeps the internal
address for its own calls. Against a real S3 server (SeaweedFS): public http://localhost:<port>,
internal http://127.0.0.1:<port>."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import requests

from kqi_services.storage.s3 import S3ObjectStore

from .platform import add_file, tenant_user
from .s3server import s3_server  # noqa: F401  (the session fixture)


def _public(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    assert parts.hostname == "127.0.0.1", endpoint
    return f"{parts.scheme}://localhost:{parts.port}"


def test_presigned_urls_use_the_public_endpoint(platform, s3_server):
    internal, public = s3_server.endpoint, _public(s3_server.endpoint)
    admin = platform.admin_token()
    bucket = s3_server.new_bucket()
    body = {"name": f"s3-{uuid.uuid4().hex[:8]}", "kind": "s3", "serverUrl": internal, "publicUrl": public,
            "bucket": bucket, "region": s3_server.region, "pathStyle": True, "accessKey": s3_server.access_key,
            "secretKey": s3_server.secret_key}
    r = platform.api("POST", "/admin/storage/endpoints", admin, json=body)
    assert r.status_code == 201, r.text
    storage = r.json()
    assert storage["publicUrl"] == public and storage["serverUrl"] == internal
    user = tenant_user(platform, storage_id=storage["id"])

    # upload: the part URLs name the public host, and S3 takes the parts there
    r = user.api("POST", "/data", json={"name": "through-the-public-name"})
    assert r.status_code == 201, r.text
    data_id = r.json()["id"]
    content = b"public endpoint " * 1000
    r = user.api("GET", "/upload/parameter", params={"fileName": "a.bin", "partSum": 1, "type": "Data"})
    assert r.status_code == 200, r.text
    assert all(u.startswith(public + "/") for u in r.json()["uris"]), r.json()["uris"]
    add_file(user, data_id, "a.bin", content)  # PUT to the public URL, then completed by the service

    # download: the public host, and the file comes back through it
    r = user.api("GET", f"/data/{data_id}/files", params={"withUrl": "true"})
    assert r.status_code == 200, r.text
    url = r.json()[0]["url"]
    assert url.startswith(public + "/"), url
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == content

    # the signature is bound to the host: a URL signed for the internal address fails when it
    # arrives through the public name (what outside clients got before this setting)
    inside = S3ObjectStore(internal, bucket, s3_server.access_key, s3_server.secret_key, region=s3_server.region,
                           create_bucket=False)
    key = next(iter(s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]))["Key"]
    swapped = inside.download_url(key, "a.bin", "", 60).replace(internal, public, 1)
    assert requests.get(swapped, timeout=30).status_code == 403

    # the platform's own containers (jobs, notebooks) get URLs without a caller's address: internal
    both = S3ObjectStore(internal, bucket, s3_server.access_key, s3_server.secret_key, region=s3_server.region,
                         create_bucket=False, public_endpoint_url=public)
    for base_url, expected in (("", internal), ("http://127.0.0.1:8000", public)):
        url = both.download_url(key, "a.bin", base_url, 60)
        assert url.startswith(expected + "/"), (base_url, url)
        assert requests.get(url, timeout=30).content == content

    # cleared: back to the internal address
    r = platform.api("PUT", f"/admin/storage/endpoints/{storage['id']}", admin,
                     json={**body, "publicUrl": "", "secretKey": None})
    assert r.status_code == 200 and r.json()["publicUrl"] is None, r.text
    r = user.api("GET", f"/data/{data_id}/files", params={"withUrl": "true"})
    assert r.json()[0]["url"].startswith(internal + "/")


def test_public_endpoint_is_checked(platform):
    admin = platform.admin_token()
    base = {"name": f"s3-{uuid.uuid4().hex[:8]}", "kind": "s3", "serverUrl": "http://127.0.0.1:9", "bucket": "kqi"}
    for bad in ("ftp://files.example.com", "not a url", "http://host:99999"):
        r = platform.api("POST", "/admin/storage/endpoints", admin, json={**base, "publicUrl": bad})
        assert r.status_code == 400 and "publicUrl" in r.json()["errors"], (bad, r.text)
    r = platform.api("POST", "/admin/storage/endpoints", admin,
                     json={"name": f"local-{uuid.uuid4().hex[:6]}", "serverUrl": "file:///tmp/x",
                           "publicUrl": "https://s3.example.com"})
    assert r.status_code == 400 and "S3 endpoints only" in r.json()["errors"]["publicUrl"][0], r.text
