"""The web UI's Content-Security-Policy lets a page's uploads reach the store of the page's tenant:
for a tenant on S3 the S3 server's origin (its public URL when set) in connect-src, which the part
URLs of GET /upload/parameter name; for a tenant on the local store not that origin. Against a
real platform and a real S3 server (SeaweedFS): public http://localhost:<port>, internal
http://127.0.0.1:<port>."""
from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlsplit

import pytest

from kqi_services.storage.local import DirectAddress, LocalObjectStore, UrlSigner
from kqi_services.storage.s3 import S3ObjectStore

from .platform import tenant_user
from .s3server import s3_server  # noqa: F401  (the session fixture)
from .test_password_tokens import sign_in


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(d.strip().split(" ", 1) for d in header.split(";") if d.strip())


def page_xsrf(response) -> str:
    data = re.search(r'<script type="application/json" id="kqi-page">(.*?)</script>', response.text, re.S)
    return json.loads(data.group(1))["xsrf"]


@pytest.fixture(scope="module")
def s3_storage(platform, s3_server):
    """An S3 storage endpoint whose public URL (localhost) differs from the service's (127.0.0.1)."""
    internal = s3_server.endpoint
    public = f"{urlsplit(internal).scheme}://localhost:{urlsplit(internal).port}"
    body = {"name": f"s3-{uuid.uuid4().hex[:8]}", "kind": "s3", "serverUrl": internal, "publicUrl": public,
            "bucket": s3_server.new_bucket(), "region": s3_server.region, "pathStyle": True,
            "accessKey": s3_server.access_key, "secretKey": s3_server.secret_key}
    r = platform.api("POST", "/admin/storage/endpoints", platform.admin_token(), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_the_origin_each_store_signs_uploads_for(tmp_path):
    """The storage layer's rule, without a server (presigning makes no request)."""
    def s3(endpoint, public=None, **kw):
        return S3ObjectStore(endpoint, "my-bucket", "key", "secret", public_endpoint_url=public,
                             create_bucket=False, **kw)

    both = s3("http://10.0.0.5:8333", "https://s3.example.org")
    assert both.upload_origin("https://hub.example.org") == "https://s3.example.org"
    assert both.upload_origin("") == "http://10.0.0.5:8333"  # the platform's own containers
    assert s3("http://127.0.0.1:8333").upload_origin("http://hub") == "http://127.0.0.1:8333"
    # no endpoint: the one boto3 picks (AWS), with the bucket in the host name when virtual-hosted
    assert s3("", region="eu-west-1", path_style=False).upload_origin("http://hub") \
        == "https://my-bucket.s3.eu-west-1.amazonaws.com"
    assert s3("", region="eu-west-1").upload_origin("http://hub") == "https://s3.eu-west-1.amazonaws.com"

    signer = UrlSigner(b"k" * 32)
    direct = LocalObjectStore(str(tmp_path / "a"), signer, "/services/kqi/storage", direct=DirectAddress(port=9999))
    assert direct.upload_origin("http://localhost:8000") == "http://localhost:9999"
    assert direct.upload_origin("") is None
    proxied = LocalObjectStore(str(tmp_path / "b"), signer, "/services/kqi/storage")
    assert proxied.upload_origin("http://localhost:8000") is None  # the page's own origin


def part_origin(user) -> str:
    r = user.api("GET", "/upload/parameter", params={"fileName": "csp.bin", "partSum": 1, "type": "Data"})
    assert r.status_code == 200, r.text
    return origin(r.json()["uris"][0])


def test_s3_tenant_pages_may_connect_to_s3_and_local_ones_not(platform, s3_storage):
    public = s3_storage["publicUrl"]
    s3_user = tenant_user(platform, storage_id=s3_storage["id"])
    local_user = tenant_user(platform)
    assert part_origin(s3_user) == public  # what the page's uploads PUT to
    local_parts = part_origin(local_user)
    assert local_parts != public

    s3_session = sign_in(platform, s3_user.name, s3_user.password)
    local_session = sign_in(platform, local_user.name, local_user.password)
    for path in ("/data", "/datasets", "/"):  # the data pages upload; every page has the same policy
        r = s3_session.get(f"{platform.service_url}{path}", timeout=30)
        assert r.status_code == 200, (path, r.status_code)
        assert policy(r)["connect-src"] == f"'self' {public}", (path, policy(r))
        assert policy(r)["default-src"] == "'self'", policy(r)
        r = local_session.get(f"{platform.service_url}{path}", timeout=30)
        assert r.status_code == 200, (path, r.status_code)
        connect = policy(r)["connect-src"].split()
        assert public not in connect and s3_storage["serverUrl"] not in connect, (path, connect)
        # the local tenant's parts go to the direct listener (kqi-hub's default), which it may reach
        assert connect == ["'self'", local_parts], (path, connect)


def test_the_switched_tenant_decides(platform, s3_storage):
    """A member of both tenants: the page allows the store of the tenant the switcher chose, as the
    API (GET /account's selectedTenant, the upload URLs) then acts in, and only that one."""
    public = s3_storage["publicUrl"]
    s3_tenant = platform.create_tenant(storageId=s3_storage["id"])
    local_tenant = platform.create_tenant(storageId=1)
    name, password = platform.create_user(tenants=[s3_tenant["name"], local_tenant["name"]])
    session = sign_in(platform, name, password)
    for tenant in (s3_tenant, local_tenant, s3_tenant):
        page = session.get(f"{platform.service_url}/data", timeout=30)
        r = session.post(f"{platform.api_url}/account/tenants/{tenant['id']}/token", json={},
                         headers={"X-XSRFToken": page_xsrf(page)}, timeout=30)
        assert r.status_code == 200, r.text
        account = session.get(f"{platform.api_url}/account", timeout=30).json()
        assert account["selectedTenant"]["id"] == tenant["id"], account["selectedTenant"]
        r = session.get(f"{platform.api_url}/upload/parameter", timeout=30,
                        params={"fileName": "csp.bin", "partSum": 1, "type": "Data"})
        assert r.status_code == 200, r.text
        parts = origin(r.json()["uris"][0])
        connect = policy(session.get(f"{platform.service_url}/data", timeout=30))["connect-src"].split()
        assert parts in connect, (tenant["name"], parts, connect)
        assert (public in connect) == (tenant is s3_tenant), (tenant["name"], connect)
        assert len(connect) == 2, connect  # 'self' and the one store's origin
