"""Typed contracts (kqi_services/api/schemas): every route declares its models, the OpenAPI document is
made from them, input that does not fit is refused with per-field messages before a handler runs, and
the answers the running platform gives fit the declared response models."""
from __future__ import annotations

import json
import os
from typing import get_origin

import pytest
from openapi_spec_validator import validate

from kqi_services import openapi
from kqi_services.api.schemas.core import (
    MAX_ID,
    ApiModel,
    InputError,
    Name,
    Paging,
    QueryBool,
    contract_of,
    response_problems,
    body_data,
    contract,
    validate_body,
    validate_query,
)
from kqi_services.app import api_routes

from .platform import create_data, tenant_user

COMMITTED = os.path.join(os.path.dirname(openapi.__file__), "openapi.json")


@pytest.fixture(scope="module")
def document():
    return openapi.build_document()


def operations():
    """(pattern, handler, method) of every operation the service serves."""
    for pattern, handler, *_ in api_routes():
        for method in openapi.implemented_methods(handler):
            if handler.access_for(method) is not None:
                yield pattern, handler, method


# ------------------------------------------------------------------------- the document
def test_every_route_and_method_has_a_contract():
    missing = [f"{method} {pattern} ({handler.__name__})" for pattern, handler, method in operations()
               if contract_of(handler, method) is None]
    assert not missing, "routes without a contract (api/schemas/core.py `contract`):\n" + "\n".join(missing)
    assert len(list(operations())) > 100


def test_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_committed_document_is_current(document):
    with open(COMMITTED, encoding="utf-8") as f:
        assert json.load(f) == document, "regenerate: python -m kqi_services.openapi > kqi_services/openapi.json"


def _resolve(document, schema):
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_list_routes_are_arrays_and_models_are_real_schemas(document):
    lists = 0
    for pattern, handler, method in operations():
        declared = contract_of(handler, method)
        op = document["paths"][openapi.openapi_path(pattern, handler)][method.lower()]
        success = op["responses"][str(declared.status)]
        if declared.status in (101, 204):
            assert "content" not in success
            continue
        schema = success["content"][declared.content_type]["schema"]
        if declared.paged or get_origin(declared.response) is list:
            assert schema["type"] == "array" and schema["items"], (method, pattern)
            lists += 1
        if declared.paged:
            assert success["headers"]["X-Total-Count"]
        if isinstance(declared.response, type) and issubclass(declared.response, ApiModel):
            model = _resolve(document, schema)
            assert model["type"] == "object" and model["properties"] and model["required"], (method, pattern)
        if declared.body is not None:
            # a model, a list of models, or a union of those (anyOf): each is an object model in the end
            stack = [op["requestBody"]["content"]["application/json"]["schema"]]
            while stack:
                body = _resolve(document, stack.pop())
                if "anyOf" in body:
                    stack.extend(body["anyOf"])
                elif body.get("type") == "array":
                    stack.append(body["items"])
                else:
                    assert body["type"] == "object" and body["properties"], (method, pattern)
        for code, response in op["responses"].items():
            if code[0] in "45" or code == "default":
                assert response["$ref"].startswith("#/components/responses/Error")
    assert lists >= 30
    # no operation of the API says only "type: object" any more
    for item in document["paths"].values():
        for op in item.values():
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    assert media["schema"] != {"type": "object"}


def test_known_shapes(document):
    schemas = document["components"]["schemas"]
    data = schemas["DataIndexOutput"]
    assert data["properties"]["memo"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert data["properties"]["id"] == {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    assert "memo" in data["required"] and "parentDataId" in data["required"]
    details = schemas["JobDetailsOutput"]["properties"]
    assert details["cpu"] == {"type": "number"} and details["gpu"] == {"type": "integer"}
    get_data = document["paths"]["/data"]["get"]
    params = {p["name"]: p["schema"] for p in get_data["parameters"]}
    assert params["withTotal"] == {"type": "boolean", "default": False}
    assert params["perPage"]["minimum"] == 1 and params["page"]["minimum"] == 1
    assert params["tag"]["type"] == "array"
    # path ids accept what int_path accepts: 0..2**53
    one = document["paths"]["/training/{jobId}"]["get"]["parameters"][0]
    assert one["schema"] == {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    run = document["paths"]["/training/run"]["post"]
    assert run["requestBody"]["required"] is True
    create = schemas["JobCreateInput"]
    assert {"name", "entryPoint", "cpu", "memory", "gpu", "containerImage", "dataSetId", "gitModel"} <= \
        set(create["required"])


def test_two_models_of_one_name_are_refused():
    schemas = {}
    openapi._add_schema(schemas, "X", {"type": "object", "properties": {"a": {"type": "string"}}})
    openapi._add_schema(schemas, "X", {"type": "object", "properties": {"a": {"type": "string"}}})
    with pytest.raises(ValueError, match="two different models are named X"):
        openapi._add_schema(schemas, "X", {"type": "object", "properties": {"b": {"type": "string"}}})


# -------------------------------------------------------------------------- validation
class _Body(ApiModel):
    name: Name
    cpu: float
    gpu: int | None = None
    tags: list[str] | None = None


class _Query(ApiModel):
    name: str | None = None
    tag: list[str] = []
    withUrl: QueryBool = False


def _refused(func, *args) -> InputError:
    with pytest.raises(InputError) as info:
        func(*args)
    return info.value


def test_bodies_are_strict_json():
    ok = validate_body(_Body, b'{"name": " a ", "cpu": 1, "unknown": [1], "tags": ["x"]}')
    assert ok.model_dump(exclude_unset=True) == {"name": " a ", "cpu": 1.0, "tags": ["x"]}
    e = _refused(validate_body, _Body, b'{"name": "   ", "cpu": "2", "gpu": 1.5, "tags": "x"}')
    assert set(e.errors) == {"name", "cpu", "gpu", "tags"}
    assert e.errors["name"] == ["must not be blank nor hold NUL characters"]
    assert "cpu" in e.detail and "gpu" in e.detail
    assert _refused(validate_body, _Body, b'{"cpu": 1}').errors == {"name": ["is required"]}
    assert _refused(validate_body, _Body, b"[1]").errors == {"body": ["must be a JSON object"]}
    assert _refused(validate_body, _Body, b"{nope").errors == {"body": ["is not valid JSON"]}
    assert _refused(validate_body, _Body, b"").errors == {"body": ["is required"]}
    assert validate_body(_Body, b"  ", required=False) is None
    e = _refused(validate_body, _Body, b'{"name": "a\\u0000b", "cpu": true}')
    assert set(e.errors) == {"name", "cpu"}


class _Item(ApiModel):
    id: int
    token: str | None = None


class _Wrapped(ApiModel):
    items: list[_Item]


def test_list_and_union_bodies_are_strict_json_and_named_per_item():
    many = list[_Item]
    value = validate_body(many, b'[{"id": 1, "unknown": 2}, {"id": 2, "token": null}]')
    assert body_data(value) == [{"id": 1}, {"id": 2, "token": None}]  # only the keys sent
    e = _refused(validate_body, many, b'[{"id": 1}, {"id": "2", "token": 5}, 3]')
    assert set(e.errors) == {"[1].id", "[1].token", "[2]"}
    assert e.errors["[1].id"] == ["must be a whole number"] and e.errors["[2]"] == ["must be an object"]
    assert "" not in e.errors and "[1].id" in e.detail
    assert _refused(validate_body, many, b'{"id": 1}').errors == {"body": ["must be a JSON list of {id, token} objects"]}
    assert _refused(validate_body, many, b"").errors == {"body": ["is required"]}
    assert body_data(validate_body(many, b"[]")) == []
    either = list[_Item] | _Wrapped
    assert body_data(validate_body(either, b'[{"id": 1}]')) == [{"id": 1}]
    assert body_data(validate_body(either, b'{"items": [{"id": 1, "token": "t"}]}')) == {"items": [{"id": 1, "token": "t"}]}
    # the JSON's shape picks the member: an object's errors name its fields, a list's its items
    assert set(_refused(validate_body, either, b'{"items": [{"id": true}]}').errors) == {"items[0].id", "items"}
    assert set(_refused(validate_body, either, b'[{"id": true}]').errors) == {"[0].id"}
    e = _refused(validate_body, either, b'"x"')
    assert e.errors == {"body": ["must be a JSON list of {id, token} objects or one {items} object"]}
    for wrong in (list[int], list[_Item] | None, dict[str, _Item], list):
        with pytest.raises(TypeError):
            contract(body=wrong, response=None, status=204)
    assert contract(body=either, response=None, status=204)


def test_queries_are_converted_from_text():
    q = validate_query(_Query, {"Name": [b"x"], "tag": [b"a", b""], "withUrl": [b"TRUE"], "other": [b"1"]})
    assert (q.name, q.tag, q.withUrl) == ("x", ["a", ""], True)
    assert validate_query(_Query, {"name": [b""]}).name is None
    e = _refused(validate_query, _Query, {"withUrl": [b"yes"]})
    assert e.errors == {"withUrl": ["must be true or false"]}
    paging = validate_query(Paging, {"perPage": [b"5"], "page": [b"2"], "withTotal": [b"false"]})
    assert (paging.perPage, paging.page, paging.withTotal) == (5, 2, False)
    e = _refused(validate_query, Paging, {"perPage": [b"0"], "page": [b"x"], "withTotal": [b"1"]})
    assert set(e.errors) == {"perPage", "page", "withTotal"}


# ---------------------------------------------------------------------- through the platform
@pytest.fixture(scope="module")
def member(platform):
    return tenant_user(platform)


def _error(r, status: int, *fields: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "errors"}
    assert body["status"] == status and body["detail"]
    for field in fields:
        assert body["errors"].get(field), (field, body)
        assert field in body["detail"]
    return body


@pytest.mark.parametrize("path", ["/data", "/datasets", "/training", "/inferences", "/preprocessings",
                                  "/notebook"])
def test_paging_is_typed(member, path):
    _error(member.api("GET", path, params={"withTotal": "maybe"}), 400, "withTotal")
    _error(member.api("GET", path, params={"perPage": "0", "page": "-1"}), 400, "perPage", "page")
    r = member.api("GET", path, params={"withTotal": "true", "perPage": "1", "page": "1"})
    assert r.status_code == 200 and isinstance(r.json(), list) and r.headers["X-Total-Count"].isdigit()


def test_bad_bodies_are_refused_per_field_and_change_nothing(member):
    before = member.api("GET", "/data").json()
    _error(member.api("POST", "/data", json={"name": 5, "tags": "x"}), 400, "name", "tags")
    _error(member.api("POST", "/data", json=["name"]), 400, "body")
    _error(member.api("POST", "/data", data=b"{"), 400, "body")
    r = _error(member.api("POST", "/training/run", json={"name": "UPPER", "cpu": "1", "memory": 1, "gpu": 0.5,
                                                         "entryPoint": "x", "dataSetId": -1,
                                                         "containerImage": {"image": "i"},
                                                         "gitModel": {"owner": "o", "repository": "r"}}),
               400, "name", "cpu", "gpu", "dataSetId", "containerImage.tag")
    assert r["errors"]["containerImage.tag"] == ["is required"]
    assert member.api("GET", "/data").json() == before
    assert member.api("GET", "/training").json() == []


def test_schema_valid_ids_are_never_refused_as_out_of_range(member):
    for path in ("/data/{}", "/datasets/{}", "/training/{}", "/inferences/{}", "/preprocessings/{}",
                 "/notebook/{}"):
        for value in (0, MAX_ID):
            _error(member.api("GET", path.format(value)), 404)
    _error(member.api("GET", f"/data/{MAX_ID + 1}"), 400)


def test_what_the_sdk_sends_is_taken(member):
    """The official SDK's shapes: unknown fields ignored, ids in lists as digit strings, empty tag= ."""
    r = member.api("POST", "/data", json={"name": "sdk", "memo": "m", "tags": ["a"], "extra": {"x": 1}})
    assert r.status_code == 201, r.text
    assert member.api("GET", "/data", params={"tag": "", "Name": "sdk"}).json()[0]["name"] == "sdk"


def _simple_get_routes():
    """GET routes without path parameters or required query parameters that answer JSON."""
    for pattern, handler, method in operations():
        declared = contract_of(handler, method)
        needs_query = declared.query is not None and any(f.is_required() for f in declared.query.model_fields.values())
        if method == "GET" and "(" not in pattern and declared.content_type == "application/json" and not needs_query:
            yield pattern, handler


def test_answers_fit_their_contracts(platform, member):
    """Every GET without path parameters, as an administrator and as a tenant member, and the details of
    a data with files: each 200 fits its declared response model exactly (strict JSON types)."""
    data_id = create_data(member, "fits", {"a.txt": b"hello"})["id"]
    checked = 0
    admin = platform.admin_token()
    for pattern, handler in _simple_get_routes():
        path = pattern.replace("\\", "")
        for token in (admin, member.token):
            r = platform.api("GET", path, token)
            if r.status_code != 200:
                assert r.status_code in (403, 404), (path, r.status_code, r.text)
                continue
            problems = response_problems(contract_of(handler, "GET"), r.content)
            assert not problems, (path, problems)
            checked += 1
    for path, pattern in ((f"/data/{data_id}", r"/data/([^/]+)"), (f"/data/{data_id}/files", r"/data/([^/]+)/files")):
        handler = dict((p, h) for p, h, *_ in api_routes())[pattern]
        r = member.api("GET", path, params={"withUrl": "true"})
        assert r.status_code == 200, r.text
        assert not response_problems(contract_of(handler, "GET"), r.content)
        checked += 1
    assert checked >= 30


def test_no_answer_so_far_broke_its_contract(platform):
    """The platform checks every JSON answer against its declared model (KQI_CHECK_RESPONSES=1 in
    tests/platform.py) and logs a misfit: none in this session's platform log up to here."""
    misfits = platform.contract_misfits()
    assert not misfits, "answers that do not fit their contracts:\n" + "".join(misfits[:20])


def test_every_paged_route_refuses_an_ill_typed_withTotal(platform):
    """Paging is typed on every list route (the 14 that took withTotal=maybe before included)."""
    admin = platform.admin_token()
    paged = [(p, h) for p, h, m in operations() if m == "GET" and "(" not in p and contract_of(h, m).paged]
    assert len(paged) >= 14
    for pattern, _ in paged:
        path = pattern.replace("\\", "")
        r = platform.api("GET", path, admin, params={"withTotal": "maybe"})
        _error(r, 400, "withTotal")
        r = platform.api("GET", path, admin, params={"withTotal": "TRUE", "perPage": "2"})
        assert r.status_code == 200 and isinstance(r.json(), list) and len(r.json()) <= 2, (path, r.text)
        assert r.headers["X-Total-Count"].isdigit()
