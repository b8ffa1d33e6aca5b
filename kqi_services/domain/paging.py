"""KAMONOHASHI's paging (perPage, page from 1, withTotal) done by the database: one place.

A list route builds its filtered SELECT, and `fetch_page` adds the order, LIMIT/OFFSET and
(when asked) a COUNT over the same filter. Lists that are small by nature (admin lists) page
a Python list with `page_of_list`, by the same rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .validation import DB_MAX_INT

#: the most rows one page holds, whatever perPage asks
MAX_PER_PAGE = 1000
#: from this OFFSET on, fetch_page finds a page's ids before reading its rows (a "deferred join")
DEFERRED_OFFSET = 500


@dataclass(frozen=True)
class PageRequest:
    """perPage (None: every row), page (from 1) and withTotal of a list request."""

    per_page: int | None = None
    page: int = 1
    with_total: bool = False

    def or_per_page(self, per_page: int = None) -> "PageRequest":
        """This request, with `per_page` (default MAX_PER_PAGE) when it named none: KAMONOHASHI's
        data, dataset, training, inference, preprocessing and notebook lists answer page `page` of
        1000 rows when perPage is left out (its controllers' `perPage ?? 1000`), never every row."""
        if self.per_page is not None:
            return self
        return PageRequest(MAX_PER_PAGE if per_page is None else per_page, self.page, self.with_total)

    @property
    def limit(self) -> int | None:
        return None if self.per_page is None else min(self.per_page, MAX_PER_PAGE)

    @property
    def offset(self) -> int:
        return 0 if self.per_page is None else (self.page - 1) * self.limit


@dataclass
class Page:
    """The rows of one page, and the number of rows of every page when withTotal asked for it."""

    rows: list = field(default_factory=list)
    total: int | None = None


def hold(db: Session, rows) -> list:
    """Keep `rows` (related rows read for a page in one query) for the session's life: its identity
    map holds rows weakly, and held, a later db.get of one of them reads nothing again."""
    rows = list(rows)
    db.info.setdefault("kqi_held_rows", []).extend(rows)
    return rows


def grouped(rows) -> dict:
    """{first column: [the rest of each row]} of `rows` (2 columns: the second's value; more: a tuple),
    in their order: a page's related rows (tags, parents) by the row they belong to."""
    out: dict = {}
    for key, *rest in rows:
        out.setdefault(key, []).append(rest[0] if len(rest) == 1 else tuple(rest))
    return out


def fetch_page(db: Session, query, order_by: Sequence[Any], request: PageRequest | None,
               options: Sequence[Any] = (), columns: Sequence[Any] = ()) -> Page:
    """One page of `query` (a filtered SELECT of one entity) in `order_by` order; `options` are
    loader options (selectinload...) that fetch related rows once per page, not once per row.
    With `columns`, the page is rows of those columns only (no ORM objects: a list that shows a
    few columns of each row costs a fraction of loading whole objects)."""
    request = request or PageRequest()
    total = None
    if request.with_total:
        counted = query.order_by(None).with_only_columns(*query.selected_columns[:1]).subquery()
        total = db.scalar(select(func.count()).select_from(counted))
    if request.offset > DB_MAX_INT:  # past any table's last row (and beyond an SQL OFFSET's range)
        return Page([], total)
    q = query.order_by(*order_by)
    if request.limit is not None:
        q = q.limit(request.limit).offset(request.offset)
        if request.offset >= DEFERRED_OFFSET:
            # a deep page: its ids first, from the list's index alone (the rows skipped are never
            # read from the table), then its rows by id
            entity = query.column_descriptions[0]["entity"]
            key = entity.__mapper__.primary_key[0]
            ids = query.with_only_columns(key).order_by(*order_by).limit(request.limit).offset(request.offset)
            q = select(entity).where(key.in_(ids)).order_by(*order_by)
    if columns:
        return Page(list(db.execute(q.with_only_columns(*columns)).all()), total)
    if options:
        q = q.options(*options)
    return Page(list(db.scalars(q).all()), total)


def page_of_list(items: list, request: PageRequest | None) -> Page:
    """The same paging over rows already in memory."""
    request = request or PageRequest()
    total = len(items) if request.with_total else None
    if request.limit is None:
        return Page(list(items), total)
    return Page(items[request.offset:request.offset + request.limit], total)
