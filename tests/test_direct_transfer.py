"""The local store's signed URLs on the service's direct listener (KqiService.direct_transfer_*),
which keeps their bytes off the hub's proxy, through the real platform:

- `kqi-hub` on one machine hands the URLs out on the listener by default, on the host name the
  caller used; with KQI_DIRECT_TRANSFER_URL on that address (and under the hub's base URL);
  with KQI_DIRECT_TRANSFER=off through the hub's proxy, as before;
- the official CLI and curl upload and download through them, byte for byte;
- a URL whose signature was changed, or that expired, is refused there (403, the API's error shape);
- nothing else is served there: the API, the UI, the hub, git and the job proxy are 404, with or
  without a token; the browser's CORS preflight is answered.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from kqi_services.datadir import free_port
from kqi_services.storage.local import DirectAddress

from .platform import Platform, new_platform, remove_tree, tenant_user, upload_parts

MiB = 1024 * 1024
SIZE = 33 * MiB + 4321  # three parts of the CLI's 16 MiB, the last one short


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("payload") / "payload.bin")
    content = os.urandom(SIZE)
    with open(path, "wb") as f:
        f.write(content)
    return path, hashlib.sha256(content).hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def tamper(url: str, **fields) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(fields)
    return urlunsplit(parts._replace(query=urlencode(query)))


def download_url(user, data_id: int) -> str:
    r = user.api("GET", f"/data/{data_id}/files", params={"withUrl": "true"})
    assert r.status_code == 200, r.text
    return r.json()[0]["url"]


def created_id(result) -> int:
    return int(result.stdout.split("created")[-1].split()[0])


def cli_round_trip(user, payload, out_dir: str) -> int:
    """`kqi data create -f` then `kqi data download-files`: the same bytes come back. The data's id."""
    path, sha = payload
    created = user.cli("data", "create", "-n", "direct", "-f", path)
    data_id = created_id(created)
    os.makedirs(out_dir, exist_ok=True)
    user.cli("data", "download-files", str(data_id), "-d", out_dir)
    assert sha256_file(os.path.join(out_dir, os.path.basename(path))) == sha
    return data_id


def curl_round_trip(user, tmp_path, expected_origin: str, path_prefix: str) -> None:
    """Parts PUT with curl to the handed-out URLs, the file fetched back with curl."""
    parts = [os.urandom(2 * MiB), b"the last part"]
    r = user.api("GET", "/upload/parameter", params={"fileName": "curl.bin", "partSum": len(parts), "type": "Data"})
    assert r.status_code == 200, r.text
    upload = r.json()
    etags = []
    for number, (url, body) in enumerate(zip(upload["uris"], parts), start=1):
        assert origin(url) == expected_origin and urlsplit(url).path == f"{path_prefix}part", url
        part_file = tmp_path / f"part{number}"
        part_file.write_bytes(body)
        out = subprocess.run(["curl", "-sS", "--fail", "-H", "Expect:", "-T", str(part_file), "-w", "%header{etag}",
                              "-o", os.devnull, url], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        etags.append(f"{number}+{out.stdout.strip()}")
    r = user.api("POST", "/upload/complete", json={"key": upload["key"], "uploadId": upload["uploadId"],
                                                   "partETags": etags})
    assert r.status_code == 200, r.text
    r = user.api("POST", "/data", json={"name": "curl"})
    assert r.status_code == 201, r.text
    data_id = r.json()["id"]
    r = user.api("POST", f"/data/{data_id}/files", json={"files": [{"fileName": "curl.bin",
                                                                     "storedPath": upload["storedPath"]}]})
    assert r.status_code == 201, r.text
    url = download_url(user, data_id)
    assert origin(url) == expected_origin and urlsplit(url).path == f"{path_prefix}object", url
    target = tmp_path / "curl-back.bin"
    out = subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == b"".join(parts)


def assert_refused(response, status: int, words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "errors"}, body
    assert body["status"] == status and words in body["detail"], body


# ---------------------------------------------------------------------------- pure rules
def test_direct_address_rules():
    on_port = DirectAddress(port=9999)
    assert on_port.base_for("http://127.0.0.1:8000") == "http://127.0.0.1:9999"
    assert on_port.base_for("https://hub.example.org") == "http://hub.example.org:9999"  # the listener is plain http
    assert on_port.base_for("http://[::1]:8000") == "http://[::1]:9999"
    assert on_port.base_for("") == ""  # the platform's own containers: relative, unchanged
    named = DirectAddress(url="https://files.example.org/", port=9999)
    assert named.base_for("http://127.0.0.1:8000") == "https://files.example.org"
    assert named.base_for("") == ""


# -------------------------------------------------------------- kqi-hub's default: on
def test_default_urls_use_the_direct_listener_on_the_callers_host(platform):
    user = tenant_user(platform)
    upload = upload_parts(user, "a.txt", [b"hello "], complete=True)
    direct = origin(upload["uris"][0])
    assert direct.startswith("http://127.0.0.1:") and direct != platform.url, upload["uris"]
    assert urlsplit(upload["uris"][0]).path == "/services/kqi/storage/part"
    # the caller's host name, not a fixed one
    r = requests.get(f"http://localhost:{platform.port}/services/kqi/api/v2/upload/parameter",
                     params={"fileName": "b.txt", "partSum": 1, "type": "Data"},
                     headers={"Authorization": f"Bearer {user.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert origin(r.json()["uris"][0]) == direct.replace("127.0.0.1", "localhost")
    # the part goes up there (upload_parts did it): and an answer says so
    assert upload["completed"]


def test_cli_and_curl_through_the_direct_listener(platform, payload, tmp_path):
    user = tenant_user(platform, home=str(tmp_path / "home"))
    data_id = cli_round_trip(user, payload, str(tmp_path / "back"))
    url = download_url(user, data_id)
    direct = origin(url)
    assert direct != platform.url and urlsplit(url).path == "/services/kqi/storage/object", url
    curl_round_trip(user, tmp_path, direct, "/services/kqi/storage/")


def test_ui_may_connect_to_the_direct_listener(platform):
    """The web UI's Content-Security-Policy lets its uploads PUT parts to the direct listener (and
    nowhere else but its own origin)."""
    from .test_password_tokens import sign_in

    user = tenant_user(platform)
    direct = origin(upload_parts(user, "csp.txt", [b"x"], complete=False)["uris"][0])
    session = sign_in(platform, user.name, user.password)
    r = session.get(f"{platform.service_url}/data", timeout=30)
    assert r.status_code == 200, r.status_code
    policy = dict(d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";") if d.strip())
    assert policy["connect-src"] == f"'self' {direct}", policy
    assert policy["default-src"] == "'self'", policy


def test_bad_signature_refused_on_the_direct_listener(platform):
    user = tenant_user(platform)
    upload = upload_parts(user, "sig.txt", [b"x"], complete=False)
    part_url = upload["uris"][0]
    r = requests.put(tamper(part_url, signature="0" * 64), data=b"y", timeout=30)
    assert_refused(r, 403, "signature is wrong")
    r = requests.put(tamper(part_url, part="2"), data=b"y", timeout=30)  # another part than the one signed
    assert_refused(r, 403, "signature is wrong")
    r = requests.put(tamper(part_url, expires=str(int(time.time()) - 10)), data=b"y", timeout=30)
    assert_refused(r, 403, "signature is wrong")  # an expiry moved back breaks the signature too
    r = user.api("POST", "/data", json={"name": "sig"})
    data_id = r.json()["id"]
    done = upload_parts(user, "sig3.txt", [b"content"], complete=True)
    r = user.api("POST", f"/data/{data_id}/files", json={"files": [{"fileName": "sig3.txt",
                                                                     "storedPath": done["storedPath"]}]})
    assert r.status_code == 201, r.text
    url = download_url(user, data_id)
    assert requests.get(url, timeout=30).content == b"content"
    for bad in (tamper(url, signature="f" * 64), tamper(url, name="other.txt"), tamper(url, key="../../etc/passwd"),
                tamper(url, store="999")):
        r = requests.get(bad, timeout=30)
        assert r.status_code == 403, (bad, r.status_code, r.text)
        assert r.json()["status"] == 403


def test_only_the_signed_routes_are_served_on_the_direct_listener(platform):
    user = tenant_user(platform)
    upload = upload_parts(user, "o.txt", [b"x"], complete=False)
    direct = origin(upload["uris"][0])
    token = {"Authorization": f"Bearer {user.token}"}
    admin = {"Authorization": f"Bearer {platform.admin_token()}"}
    for path in ("/services/kqi/api/v2/version", "/services/kqi/api/v2/account", "/services/kqi/api/v2/data",
                 "/services/kqi/api/v2/admin/tenants", "/services/kqi/", "/services/kqi/data",
                 "/services/kqi/oauth_callback", "/hub/api/", "/hub/login", "/",
                 "/services/kqi/static/xterm/xterm/package.json",
                 f"/services/kqi/git/{user.tenant['name']}/x/y.git/info/refs?service=git-upload-pack",
                 "/services/kqi/proxy/training/1/8888/", "/services/kqi/storage/", "/services/kqi/storage/part/x"):
        for headers in ({}, token, admin):
            r = requests.get(direct + path, headers=headers, timeout=30, allow_redirects=False)
            assert_refused(r, 404, "serves only the signed")
    r = requests.post(direct + "/services/kqi/api/v2/data", json={"name": "x"}, headers=token, timeout=30)
    assert_refused(r, 404, "serves only the signed")
    assert user.api("GET", "/data").json() == []  # nothing was made
    # the signed routes answer only their own methods
    r = requests.get(upload["uris"][0], timeout=30)
    assert r.status_code == 405 and r.json()["status"] == 405
    r = requests.put(direct + "/services/kqi/storage/object", data=b"x", timeout=30)
    assert r.status_code == 405 and r.json()["status"] == 405
    # the web UI (another origin) may PUT a part there and read its ETag: the signature is the credential
    r = requests.options(upload["uris"][0], headers={"Origin": platform.url, "Access-Control-Request-Method": "PUT",
                                                     "Access-Control-Request-Headers": "content-type"}, timeout=30)
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*", r.headers
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]
    r = requests.put(upload["uris"][0], data=b"x", headers={"Origin": platform.url}, timeout=30)
    assert r.status_code == 200 and "ETag" in r.headers["Access-Control-Expose-Headers"], r.headers
    # the same URL through the proxy: still served, and without the CORS grant (same origin there)
    proxied = platform.url + urlsplit(upload["uris"][0]).path + "?" + urlsplit(upload["uris"][0]).query
    r = requests.put(proxied, data=b"x", timeout=30)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers, r.headers


# ------------------------------------------ KQI_DIRECT_TRANSFER_URL, under a base URL
BASE = "/ai/"


@dataclass
class BasePlatform(Platform):
    @property
    def service_url(self) -> str:
        return f"{self.url}{BASE}services/kqi"

    @property
    def hub_api_url(self) -> str:
        return f"{self.url}{BASE}hub/api"


@pytest.fixture(scope="module")
def named_platform(tmp_path_factory):
    """Direct URLs on a named address (localhost:<port>) under the base URL /ai/; download URLs
    that expire after 4 s."""
    base = str(tmp_path_factory.mktemp("direct-named"))
    port = free_port()
    config = os.path.join(base, "kqi_service_config.py")
    with open(config, "w") as f:
        f.write("c.KqiService.download_url_expiry_seconds = 4\n")
    made = new_platform(base, {"KQI_BASE_URL": BASE, "KQI_DIRECT_TRANSFER_PORT": str(port),
                               "KQI_DIRECT_TRANSFER_URL": f"http://localhost:{port}", "KQI_SERVICE_CONFIG": config})
    p = BasePlatform(**{k: getattr(made, k) for k in ("data_dir", "port", "admin_password", "env")})
    p.direct_port = port
    p.start()
    yield p
    p.stop()
    remove_tree(base)


def test_named_direct_address_under_the_base_url(named_platform, tmp_path):
    p = named_platform
    user = tenant_user(p)
    curl_round_trip(user, tmp_path, f"http://localhost:{p.direct_port}", f"{BASE}services/kqi/storage/")
    # nothing at the old root there either
    r = requests.get(f"http://localhost:{p.direct_port}/services/kqi/storage/object", timeout=30)
    assert_refused(r, 404, "serves only the signed")


def test_expired_url_refused_on_the_direct_listener(named_platform):
    user = tenant_user(named_platform)
    r = user.api("POST", "/data", json={"name": "exp"})
    data_id = r.json()["id"]
    done = upload_parts(user, "e.txt", [b"soon gone"], complete=True)
    r = user.api("POST", f"/data/{data_id}/files", json={"files": [{"fileName": "e.txt",
                                                                     "storedPath": done["storedPath"]}]})
    assert r.status_code == 201, r.text
    url = download_url(user, data_id)
    expires = int(dict(parse_qsl(urlsplit(url).query))["expires"])
    time.sleep(max(0.0, expires - time.time()) + 1.5)
    assert_refused(requests.get(url, timeout=30), 403, "expired")


# ---------------------------------------------------------- KQI_DIRECT_TRANSFER=off
@pytest.fixture(scope="module")
def proxied_platform(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("direct-off"))
    p = new_platform(base, {"KQI_DIRECT_TRANSFER": "off"})
    p.start()
    yield p
    p.stop()
    remove_tree(base)


def test_off_urls_go_through_the_proxy(proxied_platform, payload, tmp_path):
    p = proxied_platform
    user = tenant_user(p, home=str(tmp_path / "home"))
    upload = upload_parts(user, "a.txt", [b"hello "], complete=True)
    assert all(u.startswith(f"{p.url}/services/kqi/storage/part?") for u in upload["uris"]), upload["uris"]
    data_id = cli_round_trip(user, payload, str(tmp_path / "back"))
    assert download_url(user, data_id).startswith(f"{p.url}/services/kqi/storage/object?")
    curl_round_trip(user, tmp_path, p.url, "/services/kqi/storage/")
    # the UI connects to its own origin only
    from .test_password_tokens import sign_in

    r = sign_in(p, user.name, user.password).get(f"{p.service_url}/data", timeout=30)
    assert "connect-src 'self';" in r.headers["Content-Security-Policy"], r.headers
