"""Typed contracts of the REST API: request and response models, and the `contract` decorator.

Every handler method (get/post/put/patch/delete) declares what it reads and what it answers;
the handler base (api/base.py) validates the JSON body and the query string against the
declared models before the method runs, and kqi_services/openapi.py writes the OpenAPI 3.1
document from the same declarations. One source, so the document and the checks agree.

How to declare a contract
-------------------------
    from .schemas.core import ApiModel, Id, Name, Timestamp, contract

    class DataCreateInput(ApiModel):            # a request body: KAMONOHASHI's JSON names
        name: Name                               # required (no default)
        memo: str | None = None                  # optional and nullable
        tags: list[str] | None = None

    class DataIndexOutput(ApiModel):             # a response: every key the handler emits,
        id: Id                                   # no defaults (so every key is "required"),
        memo: str | None                         # `X | None` wherever the value can be null
        createdAt: Timestamp

    class DataListQuery(ApiModel):               # query parameters (strings in the URL, converted)
        name: str | None = None
        tag: list[str] = []                      # a list field takes repeated ?tag=a&tag=b

    class DataListHandler(BaseAPIHandler):
        @contract(query=DataListQuery, response=list[DataIndexOutput], paged=True)
        def get(self): ...                       # paged: perPage/page/withTotal + X-Total-Count

        @contract(body=DataCreateInput, response=DataIndexOutput, status=201, errors=(409,))
        def post(self):
            self.json_body()                     # the validated body as a dict (only the keys sent)
            self.body                            # ... or the model instance itself

    @contract(body=list[QuotaInput], ...)        # a JSON list of objects: self.body_data() is a list
    @contract(body=list[GitTokenInput] | GitTokenInput, ...)   # a list or one object (by the JSON's shape)

    @contract(response=None, status=204)         # no content
    @contract(response=str, content_type="text/plain")   # a non-JSON answer (`bytes` for binary)
    @contract(body=X, body_required=False)       # a body that may be left out

    # a subclass that inherits a method but answers another model:
    kqi_contracts = {"GET": answering(JobListHandler, "GET", list[InferenceIndexOutput])}
    # a method inherited from a library class (a WebSocket's GET):
    kqi_contracts = {"GET": declare(response=None, status=101, errors=(409,))}

Rules of the models (decided once for the whole API):
- Field names are the JSON names (camelCase), written as they are on the wire.
- Unknown request fields are ignored (`extra="ignore"`): the official kamonohashi-sdk 4.0.2 and
  the web UI send fields the service does not use, and KAMONOHASHI ignored them too.
- Bodies are validated in pydantic's strict JSON mode: a number must be a JSON number, a string a
  JSON string, a boolean true/false ("5" is not an integer); the SDK sends typed JSON.
- Query values arrive as strings and are converted: integers from digits, booleans from
  true/false (any case), lists from repeated parameters. Empty values (`?name=`) count as absent
  for fields that are not lists.
- Path ids are typed 0..2**53 in the document, the range `int_path` accepts.
- Business rules (a name in use, a file that does not exist...) stay in kqi_services/domain; the
  models carry the types and the cheap, stateless limits (lengths, ranges), so the document says them.
- Model class names are the schema names in the document's components/schemas: they must be
  unique over the whole API (the generator refuses two different models of one name).
"""
from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

#: the largest id a path or a body may name (JavaScript's safe integers)
MAX_ID = 2**53


class ApiModel(BaseModel):
    """The base of every request and response model of the API."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True, protected_namespaces=())


# ------------------------------------------------------------------------ shared field types
#: an object id (a path id, a foreign key in a body or an answer)
Id = Annotated[int, Field(ge=0, le=MAX_ID)]

#: a name that must hold something besides blanks, no NUL characters (the domain strips it)
NAME_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=256, pattern=NAME_PATTERN)]


NO_NUL_PATTERN = r"^[^\x00]*$"


def Required(max_length: int | None = None):  # noqa: N802 (a type)
    """A string that must hold something besides blanks, without NUL characters (the domain strips it)."""
    return Annotated[str, Field(min_length=1, max_length=max_length, pattern=NAME_PATTERN)]


def Text(max_length: int | None = None, min_length: int | None = None):  # noqa: N802 (a type)
    """A string without NUL characters (the domain refuses them; PostgreSQL cannot store them)."""
    return Annotated[str, Field(max_length=max_length, min_length=min_length, pattern=NO_NUL_PATTERN)]


def _no_timezone_schema() -> dict:
    return {"type": "string",
            "description": "A UTC time in ISO 8601 without an offset, e.g. 2026-01-31T12:34:56.789012."}


#: a time the service writes (naive UTC, ISO 8601)
Timestamp = Annotated[datetime, WithJsonSchema(_no_timezone_schema())]


def _query_bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise ValueError("must be true or false")
    return value


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # (a bool is an int in Python: Literal[0, 1] would take false and true)
        raise ValueError("must be a whole number, not true or false")
    return value


def int_choice(*values: int) -> Any:
    """A whole number that is one of `values` (true and false are not 0 and 1)."""
    return Annotated[Literal[values], BeforeValidator(_not_a_bool)]


#: a boolean query parameter: true or false (any case)
QueryBool = Annotated[bool, BeforeValidator(_query_bool)]


# (empty counts as absent in a query, so both take "")
NUMBER_FILTER_PATTERN = r"^$|^\s*(<=|>=|<|>|=)?\s*[0-9]+\s*$"
DATE_FILTER_PATTERN = (r"^$|^\s*(<=|>=|<|>)?\s*[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                       r"(T([01][0-9]|2[0-3])(:[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?)?\s*$")
#: a list route's id filter: a number, optionally after <, <=, >, >= or =
NumberFilter = Annotated[str, Field(pattern=NUMBER_FILTER_PATTERN)]
#: a list route's time filter: a day or a prefix of a time, optionally after <, <=, > or >=
DateFilter = Annotated[str, Field(pattern=DATE_FILTER_PATTERN)]


class Paging(ApiModel):
    """KAMONOHASHI's paging query: perPage, page (from 1), withTotal."""

    perPage: int | None = Field(None, ge=1, le=MAX_ID)
    """Items per page (at most 1000 are sent). Without it, the data, dataset, job, preprocessing,
    notebook and user lists answer page `page` of 1000 (as KAMONOHASHI's controllers); the small
    catalogs (nodes, git servers, registries, ...) and a tenant's members, every item."""
    page: int = Field(1, ge=1, le=MAX_ID)
    """Page number, from 1."""
    withTotal: QueryBool = False
    """When true, the total number of items is sent in the X-Total-Count header."""


# ---------------------------------------------------------------------------- contract
@dataclass(frozen=True)
class Contract:
    """What one handler method reads and answers."""

    body: Any = None  # an ApiModel class, list[Model] or a union of those
    body_required: bool = True
    query: type[ApiModel] | None = None
    response: Any = None
    status: int = 200
    paged: bool = False
    content_type: str = "application/json"
    errors: tuple[int, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_list(self) -> bool:
        return get_origin(self.response) is list


def contract(*, body: Any = None, query: type[ApiModel] | None = None,
             response: Any = None, status: int = 200, paged: bool = False, body_required: bool = True,
             content_type: str = "application/json", errors: tuple[int, ...] = (),
             headers: dict[str, str] | None = None):
    """Declare a handler method's request body model, query model, response type and status.

    `body` is a model, `list[Model]` or a union of those (`list[Model] | Model`: a JSON list or one
    object, told apart by the JSON's shape). `response` is a model, `list[Model]`, a plain type (`str`, `list[str]`, `dict[str, Any]`) or
    None with status 204. `errors` names the 4xx/5xx statuses besides those every route has
    (400 for bad input, 401, 403, 404 for a path id). `headers` documents response headers
    ({name: description}).
    """
    declared = declare(body=body, query=query, response=response, status=status, paged=paged,
                       body_required=body_required, content_type=content_type, errors=errors, headers=headers)

    def mark(func):
        func.__kqi_contract__ = declared
        return func

    return mark


def _body_type_ok(body: Any) -> bool:
    """A body type a contract takes: an ApiModel class, list[...] of one, or a union of those."""
    if isinstance(body, type) and issubclass(body, ApiModel):
        return True
    if get_origin(body) is list:
        return len(get_args(body)) == 1 and _body_type_ok(get_args(body)[0])
    if get_origin(body) in (typing.Union, types.UnionType):
        return all(a is not type(None) and _body_type_ok(a) for a in get_args(body))
    return False


def declare(*, body: Any = None, query: type[ApiModel] | None = None,
            response: Any = None, status: int = 200, paged: bool = False, body_required: bool = True,
            content_type: str = "application/json", errors: tuple[int, ...] = (),
            headers: dict[str, str] | None = None) -> Contract:
    """The Contract `contract(...)` attaches, for a class's `kqi_contracts` (a method it inherits
    from a library class, e.g. a WebSocket's GET answered with 101)."""
    if body is not None and not _body_type_ok(body):
        raise TypeError(f"contract body must be an ApiModel, list[ApiModel] or a union of those, not {body!r}")
    if query is not None and not (isinstance(query, type) and issubclass(query, ApiModel)):
        raise TypeError(f"contract query must be an ApiModel, not {query!r}")
    if response is None and status not in (101, 204) and content_type == "application/json":
        raise TypeError("a contract without a response model answers 204 (or 101): say status=204")
    return Contract(body=body, body_required=body_required, query=query, response=response, status=status,
                    paged=paged, content_type=content_type, errors=tuple(errors), headers=dict(headers or {}))


def contract_of(handler: type, method: str) -> Contract | None:
    """The method's contract: the handler class's `kqi_contracts` override ({"GET": Contract}), which
    a subclass sharing its parent's methods uses for an answer of its own, else the method's own."""
    overrides = getattr(handler, "kqi_contracts", None) or {}
    if method.upper() in overrides:
        return overrides[method.upper()]
    func = getattr(handler, method.lower(), None)
    return getattr(func, "__kqi_contract__", None)


def answering(handler: type, method: str, response: Any) -> Contract:
    """The inherited contract of `handler.<method>` with another response type (for `kqi_contracts`)."""
    inherited = contract_of(handler, method)
    if inherited is None:
        raise TypeError(f"{handler.__name__}.{method.lower()} has no contract to vary")
    return replace(inherited, response=response)


# -------------------------------------------------------------------------- validation
class InputError(ValueError):
    """Input that does not fit the contract: a 400 with per-field messages."""

    def __init__(self, detail: str, errors: dict[str, list[str]]):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


def _is_union_tag(part: str) -> bool:
    """pydantic names the member of a union that failed in the error's location (`int`,
    `constrained-str`, `function-after[...]`): not a field."""
    return any(c in part for c in "-[(") or part in ("int", "str", "float", "bool", "list", "dict", "none")


def _field_name(loc: tuple, where: str) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and _is_union_tag(part):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or where


#: pydantic's error types in the words the domain's own checks use (domain/validation.py)
MESSAGES = {
    "missing": "is required",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_long": "must have at most {max_length} characters",
    "string_too_short": "must have at least {min_length} characters",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
}


#: what a pattern means, for its error message (a group module adds its own with `pattern_message`)
PATTERN_MESSAGES = {NAME_PATTERN: "must not be blank nor hold NUL characters",
                    NO_NUL_PATTERN: "must not contain NUL characters",
                    NUMBER_FILTER_PATTERN: "must be a number, optionally after <, <=, >, >= or =",
                    DATE_FILTER_PATTERN: "must be a date such as 2026-11-26, optionally after <, <=, > or >="}


def pattern_message(pattern: str, message: str) -> str:
    """Name the rule of a `pattern=` for people; returns the pattern (for Field(pattern=...))."""
    PATTERN_MESSAGES[pattern] = message
    return pattern


def _plain(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _message(error: dict) -> str:
    ctx = {k: _plain(v) for k, v in (error.get("ctx") or {}).items()}
    if error["type"] == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if error["type"] in MESSAGES:
        try:
            return MESSAGES[error["type"]].format(**ctx)
        except (KeyError, IndexError):
            return error["msg"]
    if error["type"] == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_MESSAGES:
        return PATTERN_MESSAGES[ctx["pattern"]]
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error") or error["msg"]).removeprefix("Value error, ")
    return error["msg"]


def input_error(e: ValidationError, where: str) -> InputError:
    """Per-field messages: the exact place (`files[0].fileName`, `containerImage.tag`) and, for a place
    inside a field, also the field itself with the place in the message (`files`: "[0].fileName: ...")
    so that a form can mark the field it shows."""
    precise: dict[str, list[str]] = {}
    for err in e.errors(include_url=False):
        messages = precise.setdefault(_field_name(err["loc"], where), [])
        if _message(err) not in messages:
            messages.append(_message(err))
    errors = {name: list(msgs) for name, msgs in precise.items()}
    for name, msgs in precise.items():
        top = re.split(r"[.\[]", name, maxsplit=1)[0]
        if top and top != name:  # (a list body's `[0].id` has no field above it)
            rest = name[len(top):].lstrip(".")
            errors.setdefault(top, []).extend(f"{rest}: {m}" for m in msgs if f"{rest}: {m}" not in errors[top])
    listed = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in precise.items())
    what = "body" if where == "body" else "query string"
    return InputError(f"The request {what} is invalid: {listed}", errors)


def _body_members(body: Any) -> list:
    """The members of a body type's union (the type itself when it is none)."""
    if get_origin(body) in (typing.Union, types.UnionType):
        return [m for a in get_args(body) for m in _body_members(a)]
    return [body]


def _body_shape(body: Any) -> str:
    """What a body type asks for, in words (for the error of a body of another JSON shape)."""
    if isinstance(body, type):
        return "a JSON object"
    shapes = []
    for member in _body_members(body):
        item = get_args(member)[0] if get_origin(member) is list else member
        fields = "{" + ", ".join(item.model_fields) + "}"
        shapes.append(f"a JSON list of {fields} objects" if item is not member else f"one {fields} object")
    return " or ".join(dict.fromkeys(shapes))


#: TypeAdapters of the declared body and response types, made once each
_adapters: dict[Any, TypeAdapter] = {}


def _adapter(typ: Any) -> TypeAdapter:
    adapter = _adapters.get(typ)
    if adapter is None:
        adapter = _adapters[typ] = TypeAdapter(typ)
    return adapter


def validate_body(model: Any, raw: bytes, required: bool = True) -> Any:
    """The body as the contract's body type (strict JSON): a model instance, or for `list[Model]` a
    list of them; None when it may be and is left out.

    For a union (`list[Model] | Model`) the JSON's shape picks the member (a list or an object), so
    an error names the fields of that member only (`[0].id` in a list, `id` in an object)."""
    if not raw or not raw.strip():
        if required:
            raise InputError(f"The request needs {_body_shape(model)} as its body.", {"body": ["is required"]})
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"The body is not valid JSON: {e}", {"body": ["is not valid JSON"]})
    kind = list if isinstance(parsed, list) else dict if isinstance(parsed, dict) else None
    fitting = [m for m in _body_members(model) if (get_origin(m) is list) == (kind is list) and kind is not None]
    if not fitting:
        shape = _body_shape(model)
        raise InputError(f"The body must be {shape}.", {"body": [f"must be {shape}"]})
    try:
        if len(fitting) == 1 and isinstance(fitting[0], type):
            return fitting[0].model_validate_json(raw, strict=True)
        target = fitting[0] if len(fitting) == 1 else typing.Union[tuple(fitting)]
        return _adapter(target).validate_json(raw, strict=True)
    except ValidationError as e:
        raise input_error(e, "body")


def body_data(value: Any) -> Any:
    """A validated body as plain JSON data: a model as a dict of the fields that were sent (their
    JSON values), a list as a list of such dicts; None stays None."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, list):
        return [body_data(item) for item in value]
    return value


def _is_list_field(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(get_origin(a) is list for a in get_args(annotation))


def query_values(model: type[ApiModel], arguments: dict[str, list[bytes]]) -> dict[str, Any]:
    """Tornado's query arguments as the input of `model`: lists for list fields, else the last value.

    A name given with its first letter upper-cased (`Name`, as some clients write) counts as the
    field's own name; values that are empty count as absent for fields that are not lists."""
    fields = model.model_fields
    values: dict[str, Any] = {}
    for raw_name, raw_values in arguments.items():
        name = raw_name
        if name not in fields and name[:1].lower() + name[1:] in fields:
            name = name[:1].lower() + name[1:]
        if name not in fields:
            continue
        try:
            decoded = [v.decode("utf-8") if isinstance(v, bytes) else v for v in raw_values]
        except UnicodeDecodeError:
            raise InputError(f"The query parameter {raw_name} is not valid UTF-8.", {raw_name: ["is not UTF-8"]})
        if _is_list_field(fields[name].annotation):
            values.setdefault(name, []).extend(decoded)
        else:
            decoded = [v for v in decoded if v != ""]
            if decoded:
                values[name] = decoded[-1]
    return values


def validate_query(model: type[ApiModel], arguments: dict[str, list[bytes]]) -> ApiModel:
    try:
        return model.model_validate(query_values(model, arguments))
    except ValidationError as e:
        raise input_error(e, "query")


# ------------------------------------------------------------------------ responses


def response_problems(declared: Contract, text: str | bytes) -> list[str]:
    """What is wrong with a JSON answer for its declared response type (empty when it fits).

    The answer is checked as sent (strict JSON: an integer is not a float, a string not a number)."""
    if declared.response is None or declared.content_type != "application/json":
        return []
    adapter = _adapter(declared.response)
    try:
        adapter.validate_json(text, strict=True)
    except ValidationError as e:
        return [f"{_field_name(err['loc'], 'response')}: {err['msg']}" for err in e.errors(include_url=False)]
    return []
