"""Regression tests for what the schema fuzzing (tests/test_schema_fuzz.py) found, through the
real platform: each test names the request that failed and checks the answer it gets now."""
from __future__ import annotations

import re

import requests

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _document(platform) -> dict:
    r = requests.get(f"{platform.api_url}/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _concrete(path: str) -> str:
    """A path of the document with every parameter filled in (ids 1, names x)."""
    return re.sub(r"\{([^}]+)\}", lambda m: "1" if m.group(1).lower().endswith("id") else "x", path)


def test_a_405_names_the_methods_of_its_route(platform):
    """Found: `TRACE` (and every method a route does not take) answered 405 without `Allow`
    (RFC 9110 requires it). Now every route's 405 lists exactly the methods the document gives
    it, for a method tornado does not know (TRACE), for OPTIONS and for an undeclared one, signed
    in or not."""
    doc = _document(platform)
    token = platform.admin_hub_token()
    checked = 0
    for path, item in doc["paths"].items():
        declared = {m.upper() for m in item if m.upper() in METHODS}
        assert declared, path
        undeclared = [m for m in METHODS if m not in declared][:1]
        for method in ["TRACE", "OPTIONS", *undeclared]:
            for headers in ({"Authorization": f"Bearer {token}"}, {}):
                r = requests.request(method, platform.api_url + _concrete(path), headers=headers, timeout=30)
                assert r.status_code == 405, (method, path, r.status_code, r.text[:300])
                allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
                assert allow == declared, (method, path, r.headers.get("Allow"))
                body = r.json()  # the API's error shape
                assert (body["status"], body["title"]) == (405, "Method Not Allowed"), body
                assert body["instance"] == "/services/kqi/api/v2" + _concrete(path), body
                checked += 1
    assert checked >= 3 * 2 * 100, checked


def test_a_declared_method_still_works_next_to_the_405(platform):
    """The 405 check comes before sign-in, and does not get in the way of the methods a route has."""
    token = platform.admin_hub_token()
    r = requests.get(f"{platform.api_url}/version", timeout=30)
    assert r.status_code == 200 and "Allow" not in r.headers, r.text
    r = requests.get(f"{platform.api_url}/data", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.delete(f"{platform.api_url}/data", timeout=30)  # anonymous, undeclared: 405 before 401
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST", (r.status_code, r.headers)


def test_a_nul_character_in_a_filter_or_a_path_is_a_400(platform):
    """Found on PostgreSQL: `GET /data?name=a%00b` answered 500 (PostgreSQL text cannot hold NUL,
    the search handed it to the database). Now any query parameter or path segment with a NUL is a
    400 naming it, on SQLite as on PostgreSQL, and the same search without it still works."""
    from .platform import create_data, tenant_user

    user = tenant_user(platform)
    create_data(user, "nul-search")
    for path, params, field in [
        ("/data", {"name": "nul\x00search"}, "name"),
        ("/data", {"memo": "\x00", "name": "x"}, "memo"),
        ("/datasets", {"name": "a\x00"}, "name"),
        ("/training", {"name": "a\x00"}, "name"),
        ("/data/1/tags/a\x00b", {}, "path"),
    ]:
        method = "PUT" if "/tags/" in path else "GET"
        r = user.api(method, path.replace("\x00", "%00"), params=params)
        assert r.status_code == 400, (path, params, r.status_code, r.text)
        assert r.json()["errors"] == {field: ["must not hold NUL characters"]}, r.text
    r = user.api("GET", "/data", params={"name": "nul-search"})
    assert r.status_code == 200 and [d["name"] for d in r.json()] == ["nul-search"], r.text


def test_data_in_a_preprocessing_history_is_not_deleted_from_under_it(platform):
    """Found: `DELETE /data/{id}` answered 500 (a foreign key error) for data a preprocessing
    history reads (its input) or wrote (its output). Now it is a 409 naming the preprocessing, the
    data and its history stay whole, and once the history is deleted the data can go."""
    from .platform import create_data, tenant_user

    user = tenant_user(platform)
    source = create_data(user, "fuzz-input", {"a.txt": b"a"})
    prep = user.api("POST", "/preprocessings", json={"name": "fuzz-prep"})
    assert prep.status_code == 201, prep.text
    prep = prep.json()
    history = f"/preprocessings/{prep['id']}/histories/{source['id']}"
    r = user.api("POST", history)
    assert r.status_code == 201, r.text
    r = user.api("POST", f"{history}/data", json={"name": "fuzz-output", "files": []})
    assert r.status_code in (200, 201), r.text
    output_id = r.json()["id"]

    for data_id, role in [(source["id"], "input"), (output_id, "output")]:
        r = user.api("DELETE", f"/data/{data_id}")
        assert r.status_code == 409, (role, r.status_code, r.text)
        assert f"fuzz-prep (id {prep['id']}, as its {role})" in r.json()["detail"], r.text
        assert user.api("GET", f"/data/{data_id}").status_code == 200
    r = user.api("GET", history)
    assert r.status_code == 200, r.text
    assert [f["fileName"] for f in user.api("GET", f"/data/{source['id']}/files").json()] == ["a.txt"]

    r = user.api("DELETE", history)
    assert r.status_code == 204, r.text
    r = user.api("DELETE", f"/data/{source['id']}")
    assert r.status_code == 204, r.text
    assert user.api("GET", f"/data/{source['id']}").status_code == 404


def test_an_id_beyond_the_database_range_is_a_404(platform):
    """Found on PostgreSQL: schema-valid path ids above 2**31-1 (the document allows 0..2**53)
    answered 500 (`integer out of range`: the tables' ids are 32-bit). Such an id names nothing:
    a 404, on SQLite as on PostgreSQL, for a user's and the administrator's routes; above 2**53 the
    id is refused as out of range (400) as before."""
    from .platform import tenant_user

    user = tenant_user(platform)
    admin = platform.admin_hub_token()
    big = [2**31, 17179869183, 2**53 - 1]
    for number in big:
        for method, path, token in [
            ("GET", f"/datasets/{number}", user.token),
            ("POST", f"/datasets/{number}/copy", user.token),
            ("GET", f"/training/{number}/tensorboard", user.token),
            ("DELETE", f"/training/{number}/tensorboard", user.token),
            ("POST", f"/inferences/{number}/halt", user.token),
            ("POST", f"/training/{number}/user-cancel", user.token),
            ("DELETE", f"/notebook/{number}", user.token),
            ("POST", f"/preprocessings/{number}/histories/1", user.token),
            ("DELETE", f"/admin/tenants/{number}", admin),
        ]:
            r = platform.api(method, path, token, json={} if method == "POST" else None)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["status"] == 404 and str(number) in r.json()["detail"], r.text
    r = platform.api("GET", f"/datasets/{2**31 - 1}", user.token)  # the largest id: an ordinary 404
    assert r.status_code == 404, r.text
    r = platform.api("GET", f"/datasets/{2**53 + 1}", user.token)
    assert r.status_code == 400 and r.json()["detail"] == "The id is out of range.", r.text


def test_a_filter_number_beyond_the_database_range_matches_as_it_reads(platform):
    """Found on PostgreSQL: `GET /training?parentId=1099511627777` (and an `id` filter such as
    `id=>3000000000`) answered 500 (`integer out of range`). Now such a number matches no id, and
    `<` / `<=` it matches every one; a parentId that is not a number is a 400."""
    from .platform import create_data, tenant_user

    user = tenant_user(platform)
    data = create_data(user, "filter-range")
    for path, params, expected in [
        ("/training", {"parentId": "1099511627777"}, []),
        ("/inferences", {"parentId": str(2**31)}, []),
        ("/training", {"id": "3000000000"}, []),
        ("/data", {"id": ">3000000000"}, []),
        ("/data", {"id": ">=2147483648"}, []),
        ("/data", {"id": "<3000000000"}, [data["id"]]),
        ("/data", {"id": "<=99999999999"}, [data["id"]]),
        ("/datasets", {"id": "=2147483648"}, []),
    ]:
        r = user.api("GET", path, params=params)
        assert r.status_code == 200, (path, params, r.status_code, r.text)
        assert [item["id"] for item in r.json()] == expected, (path, params, r.text)
    r = user.api("GET", "/training", params={"parentId": "x1"})
    assert r.status_code == 400 and "parentId" in r.json()["errors"], r.text


def test_a_body_or_query_id_beyond_the_database_range_is_refused_or_matches_nothing(platform):
    """Found on PostgreSQL: `POST /training/run` with a schema-valid `dataSetId` above 2**31-1
    answered 500 (the dataset was looked up with it), and so did
    `GET /tenant/shell-sessions?jobId=<such a number>`. Now a body number above the database's
    range is a 400 naming the field (ids and id lists alike), and the filter matches nothing."""
    from .platform import tenant_user

    user = tenant_user(platform)
    big = 2**40
    body = {"name": "big-ids", "containerImage": {"image": "python", "tag": "3.11", "registryId": big},
            "dataSetId": big, "parentIds": [1, big], "gitModel": {"gitId": big, "owner": "o", "repository": "r"},
            "entryPoint": "true", "cpu": 1, "memory": 1, "gpu": 0}
    for path in ("/training/run", "/inferences/run"):
        r = user.api("POST", path, json=body)
        assert r.status_code == 400, (path, r.status_code, r.text)
        errors = r.json()["errors"]
        assert errors.get("dataSetId") == [f"must be at most {2**31 - 1}"], (path, errors)
        assert errors.get("parentIds") == [f"must hold numbers of at most {2**31 - 1}"], (path, errors)
    name, password = platform.create_user(admin_of=[user.tenant["name"]])
    admin_token = platform.login(name, password, user.tenant["id"])
    r = platform.api("GET", "/tenant/shell-sessions", admin_token, params={"jobId": str(big)})
    assert r.status_code == 200 and r.json() == [], r.text


def test_an_s3_endpoint_that_cannot_be_reached_is_a_503(platform):
    """Found: with a tenant's S3 endpoint pointing where nothing answers (an administrator's
    typo), every route that touches the store (upload parameter and completion, file lists with
    URLs, deleting data) answered 500 (botocore's EndpointConnectionError was not mapped). Now a
    503 in the API's error shape says the object store cannot be used."""
    from .platform import create_s3_storage, tenant_user

    storage = create_s3_storage(platform, "http://127.0.0.1:1", "fuzz-access", "fuzz-secret", "fuzz-bucket")
    user = tenant_user(platform)  # on the local store, then moved to the unreachable one
    admin = platform.admin_token()
    r = platform.api("PUT", f"/admin/tenants/{user.tenant['id']}", admin,
                     json={"displayName": user.tenant["displayName"], "gitIds": [1], "registryIds": [1],
                           "storageId": storage["id"]})
    if r.status_code != 200:  # a tenant's storage may be fixed at creation: make one on it instead
        user = tenant_user(platform, storage_id=storage["id"])
    for method, path, params in [("GET", "/upload/parameter", {"fileName": "a.txt", "partSum": 1, "type": "Data"}),
                                 ("POST", "/upload/complete", None)]:
        r = user.api(method, path, params=params,
                     json={"key": "x", "uploadId": "1", "partETags": ["1+e"]} if method == "POST" else None)
        assert r.status_code == 503, (path, r.status_code, r.text)
        body = r.json()
        assert body["status"] == 503 and "object store" in body["detail"], body
        assert "fuzz-secret" not in r.text


def test_true_or_false_is_not_a_choice_of_numbers(platform):
    """Found (ST201, as administrator): `POST /admin/nodes` with `"accessLevel": false` was accepted
    and stored as 0 (Disabled): a bool is an int in Python, so the choice 0/1/2 took false and true.
    Now every numeric choice (node access level, git and registry service types) refuses them."""
    token = platform.admin_token()
    for path, body, field in (
        ("/admin/nodes", {"name": "fuzz-bool-node", "accessLevel": False}, "accessLevel"),
        ("/admin/nodes", {"name": "fuzz-bool-node", "accessLevel": True}, "accessLevel"),
        ("/admin/git/endpoints", {"name": "fuzz-bool-git", "repositoryUrl": "http://git.example",
                                  "serviceType": True}, "serviceType"),
        ("/admin/registry/endpoints", {"name": "fuzz-bool-registry", "registryHost": "registry.example",
                                       "serviceType": True}, "serviceType"),
    ):
        r = platform.api("POST", path, token, json=body)
        assert r.status_code == 400, (path, body, r.status_code, r.text[:300])
        assert "not true or false" in " ".join(r.json()["errors"][field]), r.text
    names = {n["name"] for n in platform.api("GET", "/admin/nodes", token).json()}
    assert "fuzz-bool-node" not in names
