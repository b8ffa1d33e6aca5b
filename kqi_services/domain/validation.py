"""Input checks shared by the API: each collects per-field messages, then fails once.

A `Fields` wraps a JSON body. Reading a field checks its type and rules and records a
message on failure; `fields.done()` raises ValidationError (a 400 with every message)
when anything was wrong, so the user sees all problems at once and nothing is changed.
"""
from __future__ import annotations

import re
from typing import Any


class ValidationError(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        first = next(iter(errors.items()))
        super().__init__(f"{first[0]}: {first[1][0]}" + (" (and more)" if len(errors) > 1 else ""))


class ConflictError(ValueError):
    """A request that clashes with the current state (HTTP 409)."""


class NotFoundError(LookupError):
    """An object that does not exist for this caller (HTTP 404)."""


_MISSING = object()
#: every whole number the platform stores (ids, gpus, ports) is a 32-bit INTEGER column
DB_MAX_INT = 2**31 - 1


class Fields:
    def __init__(self, body: dict[str, Any]):
        self.body = body
        self.errors: dict[str, list[str]] = {}

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def has(self, name: str) -> bool:
        return name in self.body

    def str(self, name, *, required=False, max_length=None, pattern=None, pattern_help=None,
            default=None, allow_empty=False):
        value = self.body.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(name, "is required")
            return default
        if not isinstance(value, str):
            self.error(name, "must be a string")
            return default
        value = value.strip()
        if not value and not allow_empty:
            if required:
                self.error(name, "must not be empty")
            return default
        if max_length is not None and len(value) > max_length:
            self.error(name, f"must have at most {max_length} characters")
        if pattern is not None and value and not re.fullmatch(pattern, value):
            self.error(name, pattern_help or f"must match {pattern}")
        if "\x00" in value:
            self.error(name, "must not contain NUL characters")
        return value

    def int(self, name, *, required=False, minimum=None, maximum=None, default=None):
        value = self.body.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(name, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, "must be a whole number")
            return default
        if minimum is not None and value < minimum:
            self.error(name, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            self.error(name, f"must be at most {maximum}")
        elif value > DB_MAX_INT:  # not stored, nor looked up (PostgreSQL refuses it: a 500)
            self.error(name, f"must be at most {DB_MAX_INT}")
            return default
        return value

    def number(self, name, *, required=False, minimum=None, maximum=None, default=None):
        value = self.body.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(name, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(name, "must be a number")
            return default
        if value != value or value in (float("inf"), float("-inf")):
            self.error(name, "must be a finite number")
            return default
        if minimum is not None and value < minimum:
            self.error(name, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            self.error(name, f"must be at most {maximum}")
        return value

    def bool(self, name, *, default=None):
        value = self.body.get(name, _MISSING)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, bool):
            self.error(name, "must be true or false")
            return default
        return value

    def int_list(self, name, *, required=False, default=None):
        value = self.body.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(name, "is required")
            return default if default is not None else []
        if not isinstance(value, list):
            self.error(name, "must be a list of whole numbers")
            return []
        # the official CLI sends some id lists as strings ("-pid 3"): accept digit strings
        value = [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in value]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.error(name, "must be a list of whole numbers")
            return []
        if len(set(value)) != len(value):
            self.error(name, "must not repeat an id")
        if any(v > DB_MAX_INT for v in value):
            self.error(name, f"must hold numbers of at most {DB_MAX_INT}")
            return []
        return list(value)

    def done(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)
