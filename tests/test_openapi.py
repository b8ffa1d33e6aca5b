"""The OpenAPI document: built from the routes, kept current in the repository, served."""
from __future__ import annotations

import json
import os

import pytest
import requests
from openapi_spec_validator import validate

from kqi_services import openapi
from kqi_services.api.base import BaseAPIHandler
from kqi_services.api.schemas.core import contract_of
from kqi_services.app import api_routes
from kqi_services.permissions import Access

COMMITTED = os.path.join(os.path.dirname(openapi.__file__), "openapi.json")
REGENERATE = "regenerate it: python -m kqi_services.openapi > kqi_services/openapi.json"


@pytest.fixture(scope="module")
def document():
    return openapi.build_document()


def test_committed_document_is_current(document):
    with open(COMMITTED, encoding="utf-8") as f:
        committed = json.load(f)
    if committed != document:
        old = {(p, m) for p, item in committed.get("paths", {}).items() for m in item}
        new = {(p, m) for p, item in document["paths"].items() for m in item}
        raise AssertionError(
            f"kqi_services/openapi.json is out of date ({REGENERATE}).\n"
            f"operations missing from it: {sorted(new - old)}\nno longer served: {sorted(old - new)}"
        )


def test_committed_file_is_what_the_generator_writes():
    with open(COMMITTED, encoding="utf-8") as f:
        text = f.read()
    assert text == openapi.dumps(json.loads(text)), f"not written by the generator: {REGENERATE}"


def test_document_is_valid_openapi_3_1(document):
    validate(document)  # raises OpenAPIValidationError with the first problem
    assert document["openapi"].startswith("3.1.")


def test_every_route_and_method_is_described(document):
    seen = 0
    for pattern, handler, *_ in api_routes():
        path = openapi.openapi_path(pattern, handler)
        assert path in document["paths"], f"{pattern} is not in the document"
        for method in openapi.implemented_methods(handler):
            op = document["paths"][path][method.lower()]
            access = handler.access_for(method)
            assert op["x-kqi-access"] == access.value
            if access is Access.ANONYMOUS:
                assert op["security"] == []
            else:
                assert op["security"] == [{"bearerToken": []}]
                assert op["responses"]["401"] == {"$ref": "#/components/responses/Error401"}
                assert op["responses"]["403"] == {"$ref": "#/components/responses/Error403"}
            assert op["summary"]
            names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert ["{" + n + "}" for n in names] == [s for s in path.split("/") if s.startswith("{")]
            seen += 1
    documented = sum(len(item) for item in document["paths"].values())
    assert documented == seen


def test_known_routes_read_as_expected(document):
    paths = document["paths"]
    login = paths["/account/login"]["post"]
    assert login["x-kqi-access"] == "anonymous" and login["security"] == []
    assert login["requestBody"]["required"] is True
    assert login["summary"].startswith("POST /account/login")

    tenants = paths["/admin/tenants"]
    names = [p["name"] for p in tenants["get"]["parameters"]]
    assert names[:3] == ["perPage", "page", "withTotal"]
    assert tenants["get"]["responses"]["200"]["headers"]["X-Total-Count"]
    assert "201" in tenants["post"]["responses"] and "200" not in tenants["post"]["responses"]
    assert tenants["post"]["x-kqi-access"] == "system-admin"

    tenant = paths["/admin/tenants/{id}"]
    assert set(tenant) == {"get", "put", "delete"}
    assert tenant["get"]["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": 2**53}}
    ]
    assert tenant["get"]["responses"]["404"] == {"$ref": "#/components/responses/Error404"}

    switch = paths["/account/tenants/{tenantId}/token"]["post"]  # named after the argument tenant_id
    assert switch["requestBody"]["required"] is False
    assert switch["x-kqi-access"] == "authenticated"

    # GET /tenant does not page; PUT /account reads ?defaultTenant
    assert "parameters" not in paths["/tenant"]["get"]
    assert [p["name"] for p in paths["/account"]["put"]["parameters"]] == ["defaultTenant"]
    assert paths["/openapi.json"]["get"]["x-kqi-access"] == "anonymous"

    error = document["components"]["schemas"]["JsonErrorResponse"]
    assert set(error["required"]) == {"type", "title", "status", "detail", "instance", "errors"}


def test_paging_parameters_follow_self_paginate(document):
    for pattern, handler, *_ in api_routes():
        if "GET" not in openapi.implemented_methods(handler):
            continue
        op = document["paths"][openapi.openapi_path(pattern, handler)]["get"]
        query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        declared = contract_of(handler, "GET")
        if declared.paged if declared is not None else openapi._Calls(handler, "get").paged:
            for p in openapi.PAGING_PARAMETERS:
                assert query.get(p["name"]) == p, pattern
            assert op["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
        else:
            assert "withTotal" not in query, pattern


# ---------------------------------------------------------------- path naming
class _Handler(BaseAPIHandler):
    access = Access.TENANT_USER

    def get(self, git_id, owner, repository_name):
        """First line.

        More text."""


class _Named(BaseAPIHandler):
    path_params = ("a", "b")

    def get(self, x, y):
        pass


class _Args(BaseAPIHandler):
    def get(self, *args):
        pass


@pytest.mark.parametrize("pattern, handler, expected", [
    (r"/git/([^/]+)/repos/(.+)/([^/]+)/branches", _Handler, "/git/{gitId}/repos/{owner}/{repositoryName}/branches"),
    (r"/x/([^/]+)/y/([^/]+)", _Named, "/x/{a}/y/{b}"),
    (r"/x/([^/]+)", _Args, "/x/{id}"),
    (r"/git/([^/]+)/repos/([^/]+)", _Args, "/git/{gitId}/repos/{repoId}"),
    (r"/x/([^/]+)([^/]+)", _Args, "/x/{xId}{param2}"),
    (r"/x/(?P<name>[^/]+)", None, "/x/{name}"),
    (r"/openapi\.json", None, "/openapi.json"),
    (r"/admin/tenants/([^/]+)", None, "/admin/tenants/{id}"),
])
def test_path_names(pattern, handler, expected):
    assert openapi.openapi_path(pattern, handler) == expected


@pytest.mark.parametrize("pattern", [r"/a|b", r"/x(?:/y)?", r"/x.json", r"/x/(unbalanced"])
def test_patterns_without_a_path_form_are_refused(pattern):
    with pytest.raises(ValueError):
        openapi.openapi_path(pattern)


def test_wrong_number_of_names_is_refused():
    class Wrong(BaseAPIHandler):
        path_params = ("only",)

        def get(self, a, b):
            pass

    with pytest.raises(ValueError, match="2 parameters"):
        openapi.openapi_path(r"/x/([^/]+)/([^/]+)", Wrong)


def test_document_of_chosen_routes():
    doc = openapi.build_document([(r"/git/([^/]+)/repos/(.+)/([^/]+)/branches", _Handler)])
    op = doc["paths"]["/git/{gitId}/repos/{owner}/{repositoryName}/branches"]["get"]
    assert op["summary"] == "First line."
    assert op["description"].startswith("More text.")
    assert op["x-kqi-access"] == "tenant-user"
    assert op["operationId"] == "_Handler.get"
    validate(doc)


# ------------------------------------------------------------------ served
def test_served_document_equals_the_committed_one(platform):
    r = requests.get(f"{platform.api_url}/openapi.json", timeout=30)  # anonymous
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    with open(COMMITTED, encoding="utf-8") as f:
        assert r.json() == json.load(f)
    # also with a token, and with a trailing slash as every route takes
    r = requests.get(f"{platform.api_url}/openapi.json/", timeout=30,
                     headers={"Authorization": f"Bearer {platform.admin_token()}"})
    assert r.status_code == 200 and r.json()["openapi"] == "3.1.0"
    r = requests.post(f"{platform.api_url}/openapi.json", json={}, timeout=30)
    assert r.status_code == 405 and r.json()["status"] == 405
