"""The OpenAPI 3.1 document of the kqi REST API, built from `app.api_routes()`.

Nothing here is written by hand per route: each route's path comes from its pattern, its
operations from the HTTP methods its handler class defines, its permission from the
handler's `access`, its summary from docstrings, and its query parameters, request body
and success status from a look at the method's source (calls of `self.paginate`,
`self.int_query("name")`, `self.json_body(...)`, `write_json(..., status=201)`,
`self.no_content()`).

A route's path parameters are named, in this order, by the handler's `path_params`
class attribute, by PATH_PARAM_NAMES below, by the pattern's own `(?P<name>...)`
groups, by the argument names of the handler's methods (`def get(self, tenant_id)`
gives `{tenantId}`), or else derived from the pattern (`{id}` for a single parameter,
`{gitId}` after `/git/`, `{param1}` when nothing better is known). A path parameter's schema
is an id's (0..2**53) when the method reads it with `self.int_path(...)` or the pattern takes
digits only, else a string; the handler's `path_schemas` class attribute ({name: JSON schema})
gives it for a parameter that takes more (`gitId` -1 for the tenant's default git server).

    python -m kqi_services.openapi > kqi_services/openapi.json

writes the copy kept in the repository (tests/test_openapi.py checks it is current).
"""
from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
from functools import lru_cache
from http.client import responses as http_reasons

from pydantic import BaseModel, TypeAdapter
from tornado import web

from .api.schemas.core import MAX_ID, Paging, contract_of
from .permissions import Access

API_BASE = "/services/kqi/api/v2"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")

#: names of the path parameters of routes whose pattern alone does not name them well,
#: keyed by the pattern exactly as it appears in a module's `default_handlers`
PATH_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    r"/admin/tenants/([^/]+)": ("id",),
    # KAMONOHASHI's names for the system administrator's catalogues (the handlers say row_id)
    r"/admin/git/endpoints/([^/]+)": ("id",),
    r"/admin/registry/endpoints/([^/]+)": ("id",),
    r"/admin/storage/endpoints/([^/]+)": ("id",),
    r"/admin/nodes/([^/]+)": ("id",),
}

ACCESS_DESCRIPTIONS = {
    Access.ANONYMOUS: "No credentials needed.",
    Access.AUTHENTICATED: "Any signed-in KQI user, also one who belongs to no tenant yet.",
    Access.TENANT_USER: "A member of the current tenant (the tenant the token is bound to).",
    Access.TENANT_ADMIN: "An administrator of the current tenant.",
    Access.SYSTEM_ADMIN: "A KQI system administrator.",
}

ERROR_RESPONSES = {
    "400": "The request is invalid: see `detail` and the per-field messages in `errors`.",
    "401": "No credentials, or a token that is invalid, expired or revoked.",
    "403": "The caller is signed in but not allowed to do this.",
    "404": "No such object in the caller's tenant.",
    "405": "The method is not allowed on this route.",
    "409": "The request clashes with the current state.",
    "413": "The request is too large.",
    "503": "A service the platform needs (object store, container runtime) is not available.",
    "507": "The storage is full: nothing was kept.",
}

REF = "#/components/schemas/{model}"
ID_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_ID}



def _strip_titles(schema):
    """pydantic's per-field titles repeat the field names: drop them (a model keeps its own)."""
    if isinstance(schema, list):
        return [_strip_titles(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
        elif key in ("default", "examples", "const", "enum"):
            out[key] = value
        else:
            out[key] = _strip_titles(value)
    patterns = out.get("patternProperties")
    if patterns and len(patterns) == 1 and "additionalProperties" not in out and "properties" not in out:
        # pydantic's dict[Annotated[str, pattern], V]: only keys of the pattern are taken
        (pattern, values), = patterns.items()
        del out["patternProperties"]
        out["propertyNames"] = {"pattern": pattern}
        out["additionalProperties"] = values
    if out.get("default", 0) is None and "type" in out and "null" not in out["type"]:
        del out["default"]  # `x: str = None` (a field that may be left out, not be null)
    return out


def query_parameters(model: type[BaseModel]) -> list[dict]:
    """The query parameters of a query model, one per field, in the model's order."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _strip_titles(prop)
        # a query value is never null: `X | None = None` reads as an optional X
        options = [o for o in prop.pop("anyOf", []) if o != {"type": "null"}]
        if len(options) == 1:
            prop.update(options[0])
        elif options:
            prop["anyOf"] = options
        if prop.get("default", 0) is None:
            del prop["default"]
        param = {"name": name, "in": "query", "required": name in required}
        description = prop.pop("description", None)
        if description:
            param["description"] = description
        param["schema"] = prop
        out.append(param)
    return out


PAGING_PARAMETERS = query_parameters(Paging)
PAGING_NAMES = {p["name"] for p in PAGING_PARAMETERS}

JSON_ERROR_RESPONSE = {
    "type": "object",
    "description": "KAMONOHASHI's JsonErrorResponse: every 4xx and 5xx answer has this shape.",
    "required": ["type", "title", "status", "detail", "instance", "errors"],
    "properties": {
        "type": {"type": "string", "description": "A URL naming the kind of error."},
        "title": {"type": "string", "description": "The HTTP reason phrase."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for a person to read."},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {
            "type": "object",
            "description": "Messages per input field (camelCase field name → messages).",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


# --------------------------------------------------------------------------- paths
def _split_pattern(pattern: str) -> list[tuple[str, str | None]]:
    """The pattern as pieces: ("literal", text) and ("group", name-or-None).

    Understands what tornado route patterns use: literal text, backslash escapes and
    capturing groups (named or not) whose insides are not looked at. Anything else
    (alternation, optional parts, non-capturing groups) has no OpenAPI path form.
    """
    pieces: list[tuple[str, str | None]] = []
    literal = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1].isalnum():
                raise ValueError(f"route {pattern!r}: escape {pattern[i:i + 2]!r} has no path form")
            literal += pattern[i + 1]
            i += 2
        elif ch == "(":
            name = None
            if pattern.startswith("(?P<", i):
                end = pattern.index(">", i)
                name = pattern[i + 4:end]
            elif pattern.startswith("(?", i):
                raise ValueError(f"route {pattern!r}: only capturing groups are supported in paths")
            depth, j = 0, i
            while j < len(pattern):
                if pattern[j] == "\\":
                    j += 2
                    continue
                if pattern[j] == "(":
                    depth += 1
                elif pattern[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            else:
                raise ValueError(f"route {pattern!r}: unbalanced parenthesis")
            if literal:
                pieces.append(("literal", literal))
                literal = ""
            pieces.append(("group", name))
            i = j + 1
        elif ch in "^$":
            i += 1
        elif ch in ".*+?|[]{}":
            raise ValueError(f"route {pattern!r}: {ch!r} outside a group has no path form")
        else:
            literal += ch
            i += 1
    if literal:
        pieces.append(("literal", literal))
    return pieces


def _derived_name(previous_literal: str, index: int) -> str:
    """`{gitId}` after `/git/`, `{repositoryId}` after `/repositories/`, else `{paramN}`."""
    segments = [s for s in previous_literal.split("/") if s]
    if previous_literal.endswith("/") and segments:
        word = re.sub(r"[^A-Za-z0-9]", "", segments[-1])
        if word:
            if word.endswith("ies"):
                word = word[:-3] + "y"
            elif word.endswith("s") and not word.endswith("ss"):
                word = word[:-1]
            return word + "Id"
    return f"param{index + 1}"


def _argument_names(handler: type | None, count: int) -> list[str] | None:
    """The camel-cased argument names of the handler's methods, when they agree."""
    if handler is None:
        return None
    found = None
    for method in implemented_methods(handler):
        try:
            params = list(inspect.signature(getattr(handler, method.lower())).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        if len(params) != count or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                                       for p in params):
            return None
        names = [_camel(p.name) for p in params]
        if found is not None and names != found:
            return None
        found = names
    return found


def _camel(name: str) -> str:
    head, *rest = name.strip("_").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def path_parameter_names(pattern: str, handler: type | None = None) -> list[str]:
    pieces = _split_pattern(pattern)
    groups = [name for kind, name in pieces if kind == "group"]
    given = getattr(handler, "path_params", None) if handler is not None else None
    if given is None:
        given = PATH_PARAM_NAMES.get(pattern)
    if given is None and groups and not any(groups):
        given = _argument_names(handler, len(groups))
    if given is not None:
        if len(given) != len(groups):
            raise ValueError(f"route {pattern!r} has {len(groups)} parameters but names {list(given)}")
        return list(given)
    names: list[str] = []
    previous = ""
    for kind, value in pieces:
        if kind == "literal":
            previous = value
            continue
        if value:
            name = value
        elif len(groups) == 1:
            name = "id"
        else:
            name = _derived_name(previous, len(names))
        if name in names:
            name = f"param{len(names) + 1}"
        names.append(name)
        previous = ""
    return names


def openapi_path(pattern: str, handler: type | None = None) -> str:
    names = iter(path_parameter_names(pattern, handler))
    out = ""
    for kind, value in _split_pattern(pattern):
        out += value if kind == "literal" else "{" + next(names) + "}"
    return out


# --------------------------------------------------------------- handler methods
def implemented_methods(handler: type) -> list[str]:
    """The HTTP methods (upper case) that the handler class defines itself."""
    return [
        m.upper()
        for m in HTTP_METHODS
        if getattr(handler, m, None) is not getattr(web.RequestHandler, m)
    ]


def _first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip():
            return line.strip()
    return None


def _own_methods(handler: type) -> dict[str, object]:
    """Functions defined by the handler and its mixins, not by the shared base classes."""
    from .api.base import BaseAPIHandler

    found = {}
    for klass in reversed(handler.__mro__):
        if klass in (object, web.RequestHandler, BaseAPIHandler) or klass.__module__.startswith(
            ("tornado.", "jupyterhub.")
        ):
            continue
        for name, value in vars(klass).items():
            if inspect.isfunction(value):
                found[name] = value
    return found


@lru_cache(maxsize=None)
def _function_ast(func) -> ast.AST | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    return ast.parse(source)


class _Calls:
    """What a handler method does, read from its source and that of the methods it calls."""

    def __init__(self, handler: type, method: str):
        self.paged = False
        self.query: dict[str, str] = {}  # name -> JSON schema type
        self.body: str | None = None  # None, "required", "optional"
        self.statuses: set[int] = set()
        self.int_arguments: set[str] = set()  # variables read with self.int_path(...)
        self._methods = _own_methods(handler)
        self._seen: set[str] = set()
        self._walk(method)

    def _walk(self, name: str) -> None:
        if name in self._seen or name not in self._methods:
            return
        self._seen.add(name)
        tree = _function_ast(self._methods[name])
        if tree is None:
            return
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr = node.func.attr
            on_self = isinstance(node.func.value, ast.Name) and node.func.value.id == "self"
            first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if attr == "paginate" and on_self:
                self.paged = True
            elif attr == "int_path" and on_self and node.args and isinstance(node.args[0], ast.Name):
                self.int_arguments.add(node.args[0].id)
            elif attr == "int_query" and on_self and isinstance(first, str):
                self.query.setdefault(first, "integer")
            elif attr in ("get_query_argument", "get_argument", "get_query_arguments") and on_self \
                    and isinstance(first, str):
                self.query.setdefault(first, "array" if attr == "get_query_arguments" else "string")
            elif attr == "json_body" and on_self:
                required = True
                for kw in node.keywords:
                    if kw.arg == "required" and isinstance(kw.value, ast.Constant):
                        required = bool(kw.value.value)
                if node.args and isinstance(node.args[0], ast.Constant):
                    required = bool(node.args[0].value)
                if self.body != "required":
                    self.body = "required" if required else "optional"
            elif attr == "write_json" and on_self:
                status = 200
                for kw in node.keywords:
                    if kw.arg == "status" and isinstance(kw.value, ast.Constant):
                        status = kw.value.value
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    status = node.args[1].value
                self.statuses.add(int(status))
            elif attr == "no_content" and on_self:
                self.statuses.add(204)
            elif attr == "set_status" and on_self and isinstance(first, int):
                self.statuses.add(first)
            elif on_self:
                self._walk(attr)


def _add_schema(schemas: dict, name: str, schema: dict) -> None:
    schema = _strip_titles(schema)
    schema["title"] = name
    if name in schemas and schemas[name] != schema:
        raise ValueError(f"two different models are named {name}: model class names must be unique in the API")
    schemas[name] = schema


def _collect(model: type[BaseModel], schemas: dict, component: bool = True) -> None:
    schema = model.model_json_schema(ref_template=REF)
    for name, sub in schema.pop("$defs", {}).items():
        _add_schema(schemas, name, sub)
    if component:
        _add_schema(schemas, model.__name__, schema)


def schema_of(value, schemas: dict) -> dict:
    """The JSON schema of a declared type (a model, list[Model], a plain type); models go to `schemas`."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        _collect(value, schemas)
        return {"$ref": REF.format(model=value.__name__)}
    schema = TypeAdapter(value).json_schema(ref_template=REF)
    for name, sub in schema.pop("$defs", {}).items():
        _add_schema(schemas, name, sub)
    return _strip_titles(schema)


def _group_bodies(pattern: str) -> list[str]:
    """The insides of a pattern's capturing groups, in order (`[0-9]+` for `/x/([0-9]+)`)."""
    return re.findall(r"\((?:\?P<\w+>)?([^()]*)\)", pattern)


def _error_ref(code: str) -> dict:
    return {"$ref": f"#/components/responses/Error{code}"}


def _operation(pattern: str, handler: type, method: str, path_names: list[str],
               operation_ids: set[str], schemas: dict) -> dict:
    access = handler.access_for(method)
    func = getattr(handler, method.lower())
    summary = _first_line(func.__doc__) or _first_line(handler.__doc__) or f"{method} {openapi_path(pattern, handler)}"
    calls = _Calls(handler, method.lower())

    op_id = f"{handler.__name__}.{method.lower()}"
    n = 2
    while op_id in operation_ids:
        op_id = f"{handler.__name__}.{method.lower()}.{n}"
        n += 1
    operation_ids.add(op_id)

    description = ACCESS_DESCRIPTIONS[access]
    doc = inspect.getdoc(func) if func.__doc__ else None
    if doc and "\n" in doc:
        description = doc.split("\n", 1)[1].strip() + "\n\n" + description

    op: dict = {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "tags": [_tag(pattern)],
        "x-kqi-access": access.value,
        "security": [] if access is Access.ANONYMOUS else [{"bearerToken": []}],
    }
    try:
        arguments = list(inspect.signature(func).parameters)[1:]
    except (TypeError, ValueError):
        arguments = []
    declared = contract_of(handler, method)
    paged = declared.paged if declared is not None else (calls.paged and method == "GET")
    parameters = []
    digits = [body in (r"[0-9]+", r"\d+") for body in _group_bodies(pattern)]
    given = getattr(handler, "path_schemas", None) or {}
    if set(given) - set(path_names):
        raise ValueError(f"{handler.__name__}.path_schemas names {sorted(set(given) - set(path_names))},"
                         f" not parameters of {pattern!r} ({path_names})")
    for i, name in enumerate(path_names):
        integer = (i < len(arguments) and arguments[i] in calls.int_arguments) or (i < len(digits) and digits[i])
        schema = json.loads(json.dumps(given[name])) if name in given else (
            dict(ID_SCHEMA) if integer else {"type": "string"})
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if paged:
        parameters += [json.loads(json.dumps(p)) for p in PAGING_PARAMETERS]
    if declared is not None:
        if declared.query is not None:
            parameters += [p for p in query_parameters(declared.query)
                           if not (paged and p["name"] in PAGING_NAMES)]
            _collect(declared.query, schemas, component=False)
    else:
        for name, typ in sorted(calls.query.items()):
            if name in PAGING_NAMES and calls.paged:
                continue
            schema = {"type": "array", "items": {"type": "string"}} if typ == "array" else {"type": typ}
            parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    if parameters:
        op["parameters"] = parameters

    has_body = False
    if declared is not None:
        if declared.body is not None:
            has_body = True
            op["requestBody"] = {
                "required": declared.body_required,
                "content": {"application/json": {"schema": schema_of(declared.body, schemas)}},
            }
    elif calls.body is not None and method in ("POST", "PUT", "PATCH", "DELETE"):
        has_body = True
        op["requestBody"] = {
            "required": calls.body == "required",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }

    responses: dict = {}
    if declared is not None:
        op["x-kqi-contract"] = True
        if declared.status == 204:
            responses["204"] = {"description": "Done; no content."}
        elif declared.status == 101:
            responses["101"] = {"description": "Switching to the WebSocket protocol."}
        else:
            if declared.content_type == "application/json":
                schema = schema_of(declared.response, schemas)
            elif declared.response is bytes:
                schema = {"type": "string", "contentMediaType": declared.content_type}
            else:
                schema = {"type": "string"}
            response = {"description": "Success.", "content": {declared.content_type: {"schema": schema}}}
            headers = {}
            if paged:
                headers["X-Total-Count"] = {"$ref": "#/components/headers/X-Total-Count"}
            for name, text in declared.headers.items():
                headers[name] = {"description": text, "schema": {"type": "string"}}
            if headers:
                response["headers"] = headers
            responses[str(declared.status)] = response
    else:
        success = sorted(s for s in calls.statuses if 200 <= s < 300) or [200]
        for status in success:
            if status == 204:
                responses["204"] = {"description": "Done; no content."}
                continue
            response = {
                "description": "Success.",
                "content": {"application/json": {"schema": {"type": "array" if paged else "object"}}},
            }
            if paged:
                response["headers"] = {"X-Total-Count": {"$ref": "#/components/headers/X-Total-Count"}}
            responses[str(status)] = response
    errors = set(str(code) for code in (declared.errors if declared is not None else ()))
    if has_body or any(p["in"] == "query" for p in parameters) or path_names:
        errors.add("400")
    if access is not Access.ANONYMOUS:
        errors.update(("401", "403"))
    if path_names:
        errors.add("404")
    for code in sorted(errors):
        responses[code] = _error_ref(code)
    responses["default"] = {"$ref": "#/components/responses/Error"}
    op["responses"] = responses
    return op


def _tag(pattern: str) -> str:
    segments = [s for s in pattern.split("/") if s and "(" not in s]
    if not segments:
        return "misc"
    if segments[0] in ("admin", "tenant") and len(segments) > 1:
        return f"{segments[0]}/{segments[1]}"
    return segments[0]


# --------------------------------------------------------------------- document
def build_document(routes: list[tuple] | None = None) -> dict:
    """The OpenAPI 3.1 document of `routes` (by default every route of the service)."""
    if routes is None:
        from .app import api_routes

        routes = api_routes()
    paths: dict = {}
    operation_ids: set[str] = set()
    schemas: dict = {"JsonErrorResponse": JSON_ERROR_RESPONSE}
    for pattern, handler, *_ in routes:
        path = openapi_path(pattern, handler)
        names = path_parameter_names(pattern, handler)
        item = paths.setdefault(path, {})
        for method in implemented_methods(handler):
            if handler.access_for(method) is None:
                continue  # answers 405: tests/test_isolation.py reports such a method
            if method.lower() in item:
                raise ValueError(f"{method} {path} is served by two routes")
            item[method.lower()] = _operation(pattern, handler, method, names, operation_ids, schemas)
    tags = sorted({op["tags"][0] for item in paths.values() for op in item.values()})
    used = sorted({ref["$ref"].rsplit("/Error", 1)[1] for item in paths.values() for op in item.values()
                   for ref in op["responses"].values() if "$ref" in ref and ref["$ref"][-3:].isdigit()}
                  | set(ERROR_RESPONSES))
    components_responses = {
        f"Error{code}": {
            "description": ERROR_RESPONSES.get(code) or http_reasons.get(int(code), "Error") + ".",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JsonErrorResponse"}}},
        }
        for code in used
    }
    components_responses["Error405"]["headers"] = {
        "Allow": {"description": "The methods the route answers (every 405 carries it).", "required": True,
                  "schema": {"type": "string"}}}
    components_responses["Error"] = {
        "description": "An error, in the JsonErrorResponse shape.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JsonErrorResponse"}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "KQI Hub API",
            "version": "v2",
            "summary": "The KAMONOHASHI-style v2 REST API of the kqi service.",
            "description": (
                "Routes, field names (camelCase JSON), paging (perPage, page, withTotal; the total"
                " in the X-Total-Count header) and errors follow KAMONOHASHI's v2 API. Credentials"
                " are hub API tokens (`Authorization: Bearer <token>` or `token <token>`); a token"
                " from POST /account/login acts in one tenant. Each operation's `x-kqi-access`"
                " names the permission it needs: " + ", ".join(a.value for a in Access) + "."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": API_BASE}],
        "security": [{"bearerToken": []}],
        "tags": [{"name": t} for t in tags],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A hub API token, e.g. from POST /account/login.",
                }
            },
            "schemas": dict(sorted(schemas.items())),
            "responses": components_responses,
            "headers": {
                "X-Total-Count": {
                    "description": "The number of items in the whole list (sent when withTotal=true).",
                    "schema": {"type": "integer"},
                }
            },
        },
    }


def dumps(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.stdout.write(dumps(build_document()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
