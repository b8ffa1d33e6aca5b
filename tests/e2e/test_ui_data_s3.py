"""Uploads from the web UI for a tenant on S3: the data page's browser PUTs its parts to the S3
server's public address (another origin than the platform's), which the page's
Content-Security-Policy must allow and the bucket's CORS rules must let through (PUT from the
platform's origin, the ETag header exposed). Real platform, real S3 server (SeaweedFS), real
Chromium."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import expect

from ..platform import tenant_user
from ..s3server import s3_server  # noqa: F401  (the session fixture)
from .conftest import sign_in


@pytest.mark.sqlite_only
def test_upload_a_file_to_an_s3_tenant_from_the_data_page(platform, s3_server, browser, tmp_path):
    internal = s3_server.endpoint
    public = f"{urlsplit(internal).scheme}://localhost:{urlsplit(internal).port}"
    bucket = s3_server.new_bucket()
    page_origin = f"{urlsplit(platform.url).scheme}://{urlsplit(platform.url).netloc}"
    # what an administrator sets on a bucket the web UI uploads to (docs: admin/storage)
    s3_server.client().put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [page_origin], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600}]})
    r = platform.api("POST", "/admin/storage/endpoints", platform.admin_token(), json={
        "name": f"s3-ui-{uuid.uuid4().hex[:8]}", "kind": "s3", "serverUrl": internal, "publicUrl": public,
        "bucket": bucket, "region": s3_server.region, "pathStyle": True,
        "accessKey": s3_server.access_key, "secretKey": s3_server.secret_key})
    assert r.status_code == 201, r.text
    user = tenant_user(platform, storage_id=r.json()["id"])
    content = "from the browser to S3\n".encode() * 100
    (tmp_path / "s3 sample.txt").write_bytes(content)
    data_name = f"ui-s3-{uuid.uuid4().hex[:6]}"

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console, part_puts = [], []
    page.on("console", lambda message: console.append(message.text))
    page.on("request", lambda request: request.method == "PUT" and part_puts.append(request.url))
    try:
        sign_in(page, platform, user.name, user.password, "/data")
        page.wait_for_selector('body[data-kqi-view="data-list"]')
        page.click("#data-new")
        page.wait_for_selector('body[data-kqi-view="data-new"]')
        page.fill("#data-name", data_name)
        page.set_input_files("#data-file-input", [str(tmp_path / "s3 sample.txt")])
        page.click("#data-save")
        page.wait_for_selector('body[data-kqi-view="data-edit"]')
        expect(page.locator("#kqi-alerts .alert-success")).to_have_text(f"Saved {data_name} with 1 new file(s).")
        expect(page.locator("#data-upload-list .kqi-upload-state")).to_have_text(["Uploaded"])
    finally:
        context.close()
    # the part went straight to S3's public address, and nothing was blocked on the way
    assert part_puts and all(u.startswith(public + "/" + bucket + "/") for u in part_puts), part_puts
    assert not [m for m in console if "Content Security Policy" in m or "CORS" in m], console

    # the data's file exists, through the API, byte for byte
    found = user.api("GET", "/data", params={"name": data_name}).json()
    assert [d["name"] for d in found] == [data_name]
    r = user.api("GET", f"/data/{found[0]['id']}/files", params={"withUrl": "true"})
    assert r.status_code == 200, r.text
    files = r.json()
    assert [(f["fileName"], f["fileSize"]) for f in files] == [("s3 sample.txt", len(content))]
    got = requests.get(files[0]["url"], timeout=30)
    assert got.status_code == 200 and got.content == content
