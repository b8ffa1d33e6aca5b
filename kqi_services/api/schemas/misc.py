"""Models of the routes that belong to no group (/version), and the check of bodies that are JSON lists."""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from ...domain.validation import ValidationError
from .core import ApiModel, input_error

#: the largest id the database holds (its id columns are 32-bit integers)
DB_MAX_ID = 2**31 - 1

#: a reference in a body to a row of the database (a tenant, git server, registry, storage endpoint):
#: 1..2**31-1 (ids start at 1), so an id the database cannot hold is a 400 naming the field, not a
#: database error
RowId = Annotated[int, Field(ge=1, le=DB_MAX_ID)]

#: a whole number the database keeps in an integer column (a GPU count): 0..2**31-1
Count = Annotated[int, Field(ge=0, le=DB_MAX_ID)]


class VersionOutput(ApiModel):
    """GET /version"""

    version: str = Field(description="The platform's version (the kqi-hub package).")
    messages: list[str] = Field(description="Notices for the users (none so far).")


# ------------------------------------------------------------- bodies that are JSON lists
def items_body(model: type[ApiModel], body: Any, *, what: str, allow_object: bool = False,
               prefix: str = "") -> tuple[list[dict], bool]:
    """A JSON body that is a list of `model` objects (or, with allow_object, one such object), each
    checked as a contract's body is (strict JSON types, the model's limits).

    Returns the items with the fields that were sent (unknown ones dropped unless the model
    forbids them) and whether the body was a list. Raises ValidationError (a 400) naming the item
    and field: `[0].id`, or `<prefix>[0].id`; a body of another shape is an error of `body`.
    """
    if allow_object and isinstance(body, dict):
        items, was_list = [body], False
    elif isinstance(body, list) and all(isinstance(item, dict) for item in body):
        items, was_list = body, True
    else:
        shape = f"a list of {what} objects" + (" (or one such object)" if allow_object else "")
        raise ValidationError({"body": [f"must be {shape}"]})
    errors: dict[str, list[str]] = {}
    out = []
    for index, item in enumerate(items):
        try:
            checked = model.model_validate_json(json.dumps(item), strict=True)
        except PydanticValidationError as e:
            head = f"{prefix}[{index}]" if was_list else prefix
            for name, messages in input_error(e, "body").errors.items():
                key = f"{head}.{name}" if head and name != "body" else (head or name)
                errors.setdefault(key, []).extend(messages)
            continue
        out.append(checked.model_dump(mode="json", exclude_unset=True))
    if errors:
        raise ValidationError(errors)
    return out, was_list
