"""Data (the guide's データ管理): a name, a memo, tags and any number of files of any format."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import distinct, false, func, literal_column, select, true, union
from sqlalchemy import table as sql_table, text as text_sql
from sqlalchemy.orm import Session, selectinload

from ..db.models import Tenant
from ..db.models_data import Data, DataFile, DataSet, DataSetEntry, DataTag
from ..db.models_preprocessing import PreprocessHistory, PreprocessHistoryOutput, Preprocessing
from ..storage.base import ObjectStore
from ..storage.factory import tenant_key
from .paging import Page, PageRequest, fetch_page, grouped
from .uploads import Uploads, check_file_name
from .validation import DB_MAX_INT, ConflictError, Fields, NotFoundError, ValidationError
from . import ids
from .ids import next_display_id

MAX_FILES_PER_DATA = 10000
MAX_TAG_LENGTH = 128


# ------------------------------------------------------------------------- searching
_NUMBER_FILTER = re.compile(r"^\s*(<=|>=|<|>|=)?\s*(\d+)\s*$")


def number_filter(value: str, field: str):
    """'12' or '>=12' style filters of the list routes → (operator, number)."""
    m = _NUMBER_FILTER.match(value or "")
    if not m:
        raise ValidationError({field: ["must be a number, optionally after <, <=, >, >= or ="]})
    return m.group(1) or "=", int(m.group(2))


def date_filter(value: str, field: str):
    """'2026-11-26', '>2026-11-01' or '<=2026-11-30T12:00' → (operator, datetime or date prefix)."""
    m = re.match(r"^\s*(<=|>=|<|>)?\s*(\S+)\s*$", value or "")
    if not m:
        raise ValidationError({field: ["must be a date such as 2026-11-26, optionally after <, <=, > or >="]})
    op, text = m.group(1), m.group(2)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError({field: ["must be a date such as 2026-11-26 or 2026-11-26T10:00"]})
    return op, text, when


#: the largest id the database holds (32-bit INTEGER columns): a larger number names no row
DB_MAX_ID = DB_MAX_INT


def apply_number(query, column, value, field):
    op, number = number_filter(value, field)
    if number > DB_MAX_ID:  # no id is that large (and PostgreSQL refuses it as an integer)
        return query.where(true() if op in ("<", "<=") else false())
    return query.where({"=": column == number, "<": column < number, "<=": column <= number,
                        ">": column > number, ">=": column >= number}[op])


def apply_date(query, column, value, field):
    op, text, when = date_filter(value, field)
    if op is None:
        # a day (or a longer prefix such as 2026-11-26T10) selects everything within it
        return query.where(_date_prefix(column, text))
    return query.where({"<": column < when, "<=": column <= when, ">": column > when, ">=": column >= when}[op])


def _date_prefix(column, text):
    start = datetime.fromisoformat(text)
    if len(text) <= 10:
        end = start + timedelta(days=1)
    elif len(text) <= 13:
        end = start + timedelta(hours=1)
    elif len(text) <= 16:
        end = start + timedelta(minutes=1)
    else:
        end = start + timedelta(seconds=1)
    return (column >= start) & (column < end)


def like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(db: Session, column, text: str):
    """`column` holds `text` (SearchString: any part, ASCII case ignored; %, _ and \\ as written).
    ILIKE on PostgreSQL (served by the pg_trgm indexes of migration 0009). On SQLite a plain LIKE:
    SQLite's LIKE ignores ASCII case already and its lower() folds ASCII only, so it matches the
    same rows as the lower(x) LIKE lower(y) SQLAlchemy makes of ILIKE there, at half the cost;
    where migration 0012 made a trigram index for the column, a selective search is narrowed to
    its candidates first (trigram_candidates)."""
    if db.get_bind().dialect.name == "sqlite":
        condition = column.like(like(text), escape="\\")
        candidates = trigram_candidates(db, column, text)
        return condition if candidates is None else candidates & condition
    return column.ilike(like(text), escape="\\")


#: a trigram search with more candidates than this is left to the LIKE over the rows in id order
#: (a page of a common word finds its 50 rows early; thousands of look-ups by id cost more)
TRIGRAM_MAX_CANDIDATES = 1000
_trigram_tables: dict[str, dict[str, frozenset]] = {}


def trigram_candidates(db: Session, column, text: str):
    """`<table>.id IN (the rows of <table>_fts whose column holds text)`, or None where that does
    not serve: no such index (SQLite builds without FTS5's trigram tokenizer, a database before
    migration 0012), a search of fewer than 3 characters (no trigram), or one that matches more than
    TRIGRAM_MAX_CANDIDATES rows (asked with a LIMIT, a few hundred microseconds). The index is a
    superset of the LIKE's rows (it folds case over all of Unicode, the LIKE over ASCII only):
    the caller keeps the LIKE."""
    if len(text) < 3:
        return None
    col = getattr(column, "property", None)
    col = col.columns[0] if col is not None else column
    table_name = getattr(col.table, "name", None)
    bind = db.get_bind()
    url = str(bind.url)
    tables = _trigram_tables.get(url)
    if tables is None:  # (read once per database: FTS table → its columns)
        names = db.scalars(text_sql(
            "select name from sqlite_master where type = 'table' and name like '%\\_fts' escape '\\'")).all()
        tables = {name: frozenset(row[1] for row in db.execute(text_sql(f'pragma table_info("{name}")')))
                  for name in names}
        _trigram_tables[url] = tables
    fts = f"{table_name}_fts"
    if col.name not in tables.get(fts, ()):
        return None
    match = f'{col.name} : "' + text.replace('"', '""') + '"'
    found = select(literal_column("rowid")).select_from(sql_table(fts)).where(
        literal_column(fts).op("MATCH")(match))
    many = db.scalar(select(func.count()).select_from(found.limit(TRIGRAM_MAX_CANDIDATES + 1).subquery()))
    if many > TRIGRAM_MAX_CANDIDATES:
        return None
    return col.table.c.id.in_(found)


def tag_condition(id_column, link_id_column, link_name_column, value: str):
    """A row (`id_column`) has the tag `value`: the tag as written, or, as the SDK sends several
    tags as one csv value (`kqi training list --tag a --tag b` asks `tag=a,b`), every tag of the
    list. `link_*` are the tag table's row-id and name columns."""
    as_written = select(link_id_column).where(link_name_column == value)
    parts = list(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    if not parts or parts == [value]:
        return id_column.in_(as_written)
    # one IN over one set (rows tagged as written, or with every part): the database reads the
    # tag index once for it, where an OR of INs made PostgreSQL scan the tenant's rows
    every = (select(link_id_column).where(link_name_column.in_(parts)).group_by(link_id_column)
             .having(func.count(distinct(link_name_column)) == len(parts)))
    return id_column.in_(union(as_written, every))


# --------------------------------------------------------------------------- outputs
def _data_view(d, tags: list[str], parent_name: str | None) -> dict:
    """KAMONOHASHI's index of a data; `d` is a Data or a row of INDEX_COLUMNS."""
    return {
        "id": d.id,
        "displayId": d.display_id,
        "name": d.name,
        "memo": d.memo,
        "isRaw": d.parent_data_id is None,
        "parentDataId": d.parent_data_id,
        "parentDataName": parent_name,
        "tags": tags,
        "createdBy": d.created_by,
        "displayNameCreatedBy": d.created_by,
        "createdAt": d.created_at,
        "modifiedBy": d.modified_by,
        "modifiedAt": d.modified_at,
    }


def data_index(d: Data) -> dict:
    return _data_view(d, d.tag_names, d.parent.name if d.parent is not None else None)


#: the columns of a data that its index shows (a list reads only these)
INDEX_COLUMNS = (Data.id, Data.display_id, Data.name, Data.memo, Data.parent_data_id, Data.created_by,
                 Data.created_at, Data.modified_by, Data.modified_at)


def data_indexes(db: Session, rows) -> list[dict]:
    """The index of each of a page's data (rows of INDEX_COLUMNS or Data, as committed): their tags
    and parents' names read in one query each, as plain rows, whatever the page size."""
    ids_ = [d.id for d in rows]
    if not ids_:
        return []
    tags = grouped(db.execute(select(DataTag.data_id, DataTag.name).where(DataTag.data_id.in_(ids_))
                              .order_by(DataTag.data_id, DataTag.name)))
    parent_ids = {d.parent_data_id for d in rows if d.parent_data_id is not None}
    parents = dict(db.execute(select(Data.id, Data.name).where(Data.id.in_(parent_ids))).all()) if parent_ids else {}
    return [_data_view(d, tags.get(d.id, []), parents.get(d.parent_data_id)) for d in rows]


def file_output(f: DataFile, url: str | None = None) -> dict:
    return {
        "id": f.data_id,
        "fileId": f.id,
        "key": f.file_name,
        "fileName": f.file_name,
        "fileSize": f.size,
        "url": url,
        # KQI addition: the content hash (null until computed, right after upload)
        "sha256": f.sha256,
    }


# --------------------------------------------------------------------------- rules
def optional_name(f: Fields, max_length: int = 256):
    """A name that an edit may leave out (null) but not blank out."""
    name = f.str("name", max_length=max_length)
    if name is None and isinstance(f.body.get("name"), str):
        f.error("name", "must not be empty")
    return name


def read_tags(f: Fields, field: str = "tags"):
    tags = f.body.get(field)
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        f.error(field, "must be a list of strings")
        return None
    cleaned = []
    for tag in tags:
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            f.error(field, f"each tag has 1 to {MAX_TAG_LENGTH} characters and no NUL")
        elif tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def replace_tags(rows: list, names: list[str], make) -> list:
    """The tag rows for `names`: existing rows kept (no delete + re-insert), new ones made."""
    kept = [row for row in rows if row.name in names]
    have = {row.name for row in kept}
    return kept + [make(name=name) for name in names if name not in have]


class DataManager:
    def __init__(self, db: Session, tenant: Tenant, store: ObjectStore | None = None):
        self.db = db
        self.tenant = tenant
        self.store = store

    def get(self, data_id: int) -> Data:
        data = self.db.get(Data, data_id)
        if data is None or data.tenant_id != self.tenant.id:
            raise NotFoundError(f"No data has the id {data_id} in this tenant.")
        return data

    def search(self, args: dict) -> list[Data]:
        """Every data that matches the list filters, newest first."""
        return self.search_page(args, None).rows

    def search_page(self, args: dict, request: PageRequest | None, columns=()) -> Page:
        """One page of the data that match the list filters (newest first): Data objects with their
        tags and parents, or rows of `columns` alone (INDEX_COLUMNS: show them with data_indexes)."""
        if columns:
            return fetch_page(self.db, self.filtered(args), [Data.id.desc()], request, columns=columns)
        return fetch_page(self.db, self.filtered(args), [Data.id.desc()], request,
                          [selectinload(Data.tags), selectinload(Data.parent)])

    def filtered(self, args: dict):
        """The SELECT of the data matching the list route's filters (id, name, memo, createdBy,
        createdAt, tags): KAMONOHASHI's SearchLong / SearchString / SearchTime forms."""
        q = select(Data).where(Data.tenant_id == self.tenant.id)
        if args.get("id"):
            q = apply_number(q, Data.id, args["id"], "id")
        if args.get("name"):
            q = q.where(contains(self.db, Data.name, args["name"]))
        if args.get("memo"):
            q = q.where(contains(self.db, Data.memo, args["memo"]))
        if args.get("createdBy"):
            q = q.where(contains(self.db, Data.created_by, args["createdBy"]))
        if args.get("createdAt"):
            q = apply_date(q, Data.created_at, args["createdAt"], "createdAt")
        for value in args.get("tags") or []:
            q = q.where(tag_condition(Data.id, DataTag.data_id, DataTag.name, value))
        return q

    def create(self, body: dict, actor: str, parent: Data | None = None) -> Data:
        f = Fields(body)
        name = f.str("name", required=True, max_length=256)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        tags = read_tags(f) or []
        f.done()
        display_id = next_display_id(self.db, self.tenant.id, ids.DATA)
        data = Data(tenant_id=self.tenant.id, display_id=display_id, name=name, memo=memo,
                    parent_data_id=parent.id if parent else None, created_by=actor, modified_by=actor)
        data.tags = [DataTag(name=t) for t in tags]
        self.db.add(data)
        self.db.commit()
        return data

    def update(self, data: Data, body: dict, actor: str) -> Data:
        f = Fields(body)
        name = optional_name(f)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        tags = read_tags(f)
        f.done()
        if name is not None:
            data.name = name
        if memo is not None:
            data.memo = memo
        if tags is not None:
            data.tags = replace_tags(data.tags, tags, DataTag)
        data.modified_by = actor
        self.db.commit()
        return data

    def datasets_using(self, data: Data) -> list[DataSet]:
        return list(self.db.scalars(
            select(DataSet).join(DataSetEntry).where(DataSetEntry.data_id == data.id).order_by(DataSet.id)
        ).unique().all())

    def preprocessings_using(self, data: Data) -> list[tuple[Preprocessing, str]]:
        """(preprocessing, "input" or "output") of every preprocessing history that reads or wrote `data`."""
        found = self.db.execute(
            select(Preprocessing, PreprocessHistory.input_data_id)
            .join(PreprocessHistory, PreprocessHistory.preprocess_id == Preprocessing.id)
            .outerjoin(PreprocessHistoryOutput, PreprocessHistoryOutput.history_id == PreprocessHistory.id)
            .where((PreprocessHistory.input_data_id == data.id) | (PreprocessHistoryOutput.data_id == data.id))
            .order_by(Preprocessing.id)
        ).all()
        return list(dict.fromkeys((p, "input" if input_id == data.id else "output") for p, input_id in found))

    def delete(self, data: Data) -> None:
        users = self.datasets_using(data)
        if users:
            names = ", ".join(f"{d.name} (id {d.id})" for d in users)
            raise ConflictError(f"The data {data.name} is used by the dataset(s) {names}: remove it from them first.")
        runs = self.preprocessings_using(data)
        if runs:
            names = ", ".join(f"{p.name} (id {p.id}, as its {role})" for p, role in runs)
            raise ConflictError(f"The data {data.name} belongs to a history of the preprocessing(s) {names}:"
                                " delete that history first.")
        keys = [tenant_key(self.tenant, f.stored_path) for f in data.files]
        self.db.delete(data)
        self.db.commit()
        for key in keys:
            self.store.delete(key)

    def check_editable(self, data: Data) -> None:
        from .datasets import dataset_lock_reasons

        for dataset in self.datasets_using(data):
            reasons = dataset_lock_reasons(self.db, dataset)
            if reasons:
                raise ConflictError(f"The data {data.name} is in the locked dataset {dataset.name} "
                                    f"({'; '.join(reasons)}): its files cannot change.")

    def add_files(self, data: Data, body: dict, actor: str, hasher=None) -> list[DataFile]:
        files = body.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(x, dict) for x in files):
            raise ValidationError({"files": ["must be a non-empty list of {fileName, storedPath}"]})
        self.check_editable(data)
        if len(data.files) + len(files) > MAX_FILES_PER_DATA:
            raise ValidationError({"files": [f"a data may hold at most {MAX_FILES_PER_DATA} files"]})
        names = {f.file_name for f in data.files}
        uploads = Uploads(self.db, self.store, self.tenant)
        added = []
        try:
            for i, item in enumerate(files):
                name = check_file_name(item.get("fileName"), f"files[{i}].fileName")
                stored_path = item.get("storedPath")
                if not isinstance(stored_path, str) or not stored_path:
                    raise ValidationError({f"files[{i}].storedPath": ["is required"]})
                if name in names:
                    raise ConflictError(f"The data {data.name} has a file named {name} already.")
                upload = uploads.claim(stored_path, "Data", f"files[{i}].storedPath")
                names.add(name)
                new = DataFile(data_id=data.id, file_name=name, stored_path=stored_path, size=upload.size or 0,
                               created_by=actor)
                self.db.add(new)
                added.append(new)
            data.modified_by = actor
            self.db.commit()
        except Exception:
            self.db.rollback()
            raise
        if hasher is not None:
            for new in added:
                hasher(self.tenant, new.stored_path)
        return added

    def delete_file(self, data: Data, file_id: int) -> None:
        self.check_editable(data)
        target = next((f for f in data.files if f.id == file_id), None)
        if target is None:
            raise NotFoundError(f"The data {data.name} has no file with the id {file_id}.")
        key = tenant_key(self.tenant, target.stored_path)
        data.files.remove(target)
        self.db.commit()
        self.store.delete(key)
