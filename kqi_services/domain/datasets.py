"""Datasets (the guide's データセット管理): data assigned to the training / validation / testing
areas, or to one area when flat. A dataset that a job uses is locked: its entries cannot
change (name and memo can), and copying it is the way to derive a new one.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Tenant
from ..db.models_data import Data, DataSet, DataSetEntry, DataType
from .data import apply_date, apply_number, contains, data_index, file_output, optional_name
from .paging import Page, PageRequest, fetch_page
from .validation import ConflictError, Fields, NotFoundError, ValidationError
from . import ids
from .ids import next_display_id

FLAT_TYPE = "training"  # flat datasets keep their data under this type, as KAMONOHASHI does

#: functions (db, dataset) -> reason or None; the job modules register theirs, e.g.
#: "used by training 12". A dataset with any reason is locked.
LOCK_CHECKS: list[Callable[[Session, DataSet], str | None]] = []


def dataset_lock_reasons(db: Session, dataset: DataSet) -> list[str]:
    return [r for r in (check(db, dataset) for check in LOCK_CHECKS) if r]


def data_types(db: Session) -> list[DataType]:
    return list(db.scalars(select(DataType).order_by(DataType.sort_order)).all())


def dataset_index(d: DataSet) -> dict:
    return {
        "id": d.id,
        "displayId": d.display_id,
        "name": d.name,
        "memo": d.memo,
        "isFlat": d.is_flat,
        "createdBy": d.created_by,
        "createdAt": d.created_at,
        "modifiedBy": d.modified_by,
        "modifiedAt": d.modified_at,
    }


class DataSetManager:
    def __init__(self, db: Session, tenant: Tenant):
        self.db = db
        self.tenant = tenant

    def get(self, dataset_id: int) -> DataSet:
        dataset = self.db.get(DataSet, dataset_id)
        if dataset is None or dataset.tenant_id != self.tenant.id:
            raise NotFoundError(f"No dataset has the id {dataset_id} in this tenant.")
        return dataset

    def search(self, args: dict) -> list[DataSet]:
        return self.search_page(args, None).rows

    def search_page(self, args: dict, request: PageRequest | None) -> Page:
        """One page of the datasets that match the list filters, newest first."""
        return fetch_page(self.db, self.filtered(args), [DataSet.id.desc()], request)

    def filtered(self, args: dict):
        q = select(DataSet).where(DataSet.tenant_id == self.tenant.id)
        if args.get("id"):
            q = apply_number(q, DataSet.id, args["id"], "id")
        if args.get("name"):
            q = q.where(contains(self.db, DataSet.name, args["name"]))
        if args.get("memo"):
            q = q.where(contains(self.db, DataSet.memo, args["memo"]))
        if args.get("createdAt"):
            q = apply_date(q, DataSet.created_at, args["createdAt"], "createdAt")
        return q

    def details(self, dataset: DataSet) -> dict:
        out = dataset_index(dataset)
        types = data_types(self.db)
        if dataset.is_flat:
            out["entries"] = {}
            out["flatEntries"] = [data_index(e.data) for e in dataset.entries]
        else:
            out["entries"] = {t.name: [data_index(e.data) for e in dataset.entries if e.data_type_id == t.id]
                              for t in types}
            out["flatEntries"] = []
        reasons = dataset_lock_reasons(self.db, dataset)
        out["isLocked"] = bool(reasons)
        out["lockReasons"] = reasons  # KQI addition
        return out

    # ------------------------------------------------------------------ entries
    def _read_entries(self, body: dict, is_flat: bool) -> list[tuple[Data, DataType]]:
        types = {t.name: t for t in data_types(self.db)}
        pairs: list[tuple[int, str]] = []
        errors: dict[str, list[str]] = {}
        if is_flat:
            flat = body.get("flatEntries")
            if flat is None and isinstance(body.get("entries"), dict):
                # a flat dataset may also be sent with its data under one area
                flat = [e for items in body["entries"].values() for e in (items or [])]
            if not isinstance(flat, list):
                raise ValidationError({"flatEntries": ["must be a list of {id} for a flat dataset"]})
            for item in flat:
                pairs.append((item.get("id") if isinstance(item, dict) else None, FLAT_TYPE))
        else:
            entries = body.get("entries")
            if not isinstance(entries, dict):
                raise ValidationError({"entries": ["must be an object {training: [{id}], testing: [...], "
                                                   "validation: [...]}"]})
            for type_name, items in entries.items():
                if type_name not in types:
                    errors.setdefault("entries", []).append(
                        f"unknown area {type_name!r}; the areas are " + ", ".join(types))
                    continue
                if not isinstance(items, list):
                    errors.setdefault("entries", []).append(f"{type_name} must be a list of {{id}}")
                    continue
                for item in items:
                    pairs.append((item.get("id") if isinstance(item, dict) else None, type_name))
        if any(not isinstance(i, int) or isinstance(i, bool) for i, _ in pairs):
            errors.setdefault("entries", []).append("every entry needs a whole-number id")
        if errors:
            raise ValidationError(errors)
        ids = [i for i, _ in pairs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValidationError({"entries": ["a data may be in a dataset once: repeated ids " +
                                               ", ".join(map(str, duplicates))]})
        if not pairs:
            raise ValidationError({"entries": ["a dataset needs at least one data"]})
        found = {d.id: d for d in self.db.scalars(
            select(Data).where(Data.id.in_(ids), Data.tenant_id == self.tenant.id)).all()}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError("No data in this tenant has the id(s) " + ", ".join(map(str, missing)) + ".")
        return [(found[i], types[t]) for i, t in pairs]

    def create(self, body: dict, actor: str) -> DataSet:
        f = Fields(body)
        name = f.str("name", required=True, max_length=256)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        is_flat = f.bool("isFlat", default=False)
        f.done()
        entries = self._read_entries(body, is_flat)
        display_id = next_display_id(self.db, self.tenant.id, ids.DATASET)
        dataset = DataSet(tenant_id=self.tenant.id, display_id=display_id, name=name, memo=memo, is_flat=is_flat,
                          created_by=actor, modified_by=actor)
        dataset.entries = [DataSetEntry(data=d, data_type=t) for d, t in entries]
        self.db.add(dataset)
        self.db.commit()
        return dataset

    def update_entries(self, dataset: DataSet, body: dict, actor: str) -> DataSet:
        reasons = dataset_lock_reasons(self.db, dataset)
        if reasons:
            raise ConflictError(f"The dataset {dataset.name} is locked ({'; '.join(reasons)}): its data cannot "
                                "change. Copy it to make a changed one; name and memo stay editable.")
        f = Fields(body)
        name = optional_name(f)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        is_flat = f.bool("isFlat", default=dataset.is_flat)
        f.done()
        entries = self._read_entries(body, is_flat)
        if name is not None:
            dataset.name = name
        if memo is not None:
            dataset.memo = memo
        dataset.is_flat = is_flat
        # keep the rows of data that stay (a new row for the same data would clash with the
        # old one on (dataset, data) before the old one is deleted)
        existing = {e.data_id: e for e in dataset.entries}
        kept = []
        for d, t in entries:
            entry = existing.get(d.id)
            if entry is None:
                entry = DataSetEntry(data=d, data_type=t)
            else:
                entry.data_type = t
            kept.append(entry)
        dataset.entries = kept
        dataset.modified_by = actor
        self.db.commit()
        return dataset

    def update_meta(self, dataset: DataSet, body: dict, actor: str) -> DataSet:
        f = Fields(body)
        name = optional_name(f)
        memo = f.str("memo", max_length=4096, allow_empty=True)
        f.done()
        if name is not None:
            dataset.name = name
        if memo is not None:
            dataset.memo = memo
        dataset.modified_by = actor
        self.db.commit()
        return dataset

    def delete(self, dataset: DataSet) -> None:
        reasons = dataset_lock_reasons(self.db, dataset)
        if reasons:
            raise ConflictError(f"The dataset {dataset.name} is locked ({'; '.join(reasons)}) and cannot be deleted.")
        self.db.delete(dataset)
        self.db.commit()

    def copy(self, dataset: DataSet, body: dict, actor: str) -> DataSet:
        f = Fields(body)
        name = f.str("name", max_length=256, default=f"{dataset.name} (copy)"[:256])
        memo = f.str("memo", max_length=4096, allow_empty=True, default=dataset.memo)
        f.done()
        display_id = next_display_id(self.db, self.tenant.id, ids.DATASET)
        new = DataSet(tenant_id=self.tenant.id, display_id=display_id, name=name, memo=memo,
                      is_flat=dataset.is_flat, created_by=actor, modified_by=actor)
        new.entries = [DataSetEntry(data_id=e.data_id, data_type_id=e.data_type_id) for e in dataset.entries]
        self.db.add(new)
        self.db.commit()
        return new

    # ------------------------------------------------------------------ files
    def path_pairs(self, dataset: DataSet) -> list[dict]:
        """Where each file goes under /kqi/input and where it is stored, as the job runtime needs."""
        pairs = []
        for entry in dataset.entries:
            for f in entry.data.files:
                data_path = (f"{entry.data_id}/{f.file_name}" if dataset.is_flat
                             else f"{entry.data_type.name}/{entry.data_id}/{f.file_name}")
                pairs.append({"dataPath": data_path, "storedPath": f.stored_path})
        return pairs

    def files(self, dataset: DataSet, url_for=None) -> dict:
        out = dataset_index(dataset)

        def files_of(entry):
            return [file_output(f, url_for(f) if url_for else None) for f in entry.data.files]

        if dataset.is_flat:
            out["entries"] = []
            out["flatEntries"] = [x for e in dataset.entries for x in files_of(e)]
        else:
            out["entries"] = [
                {"type": t.name, "files": [x for e in dataset.entries if e.data_type_id == t.id for x in files_of(e)]}
                for t in data_types(self.db)
            ]
            out["flatEntries"] = []
        return out
