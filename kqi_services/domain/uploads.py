"""The multipart upload protocol of KAMONOHASHI's SDK, over any object store.

    GET  upload/parameter?fileName=&partSum=&type=  -> {uris, partsSum, uploadId, key, fileName, storedPath}
    PUT  each part to its URI                        -> ETag
    POST upload/complete {key, uploadId, partETags: ["1+<etag>", ...]}
    then register {fileName, storedPath} on the entity (data, training, ...)

Only a completed upload of the same tenant can be registered, once. Uploads that are
never completed, or completed but never registered, are removed after `expiry` seconds
(KqiService.upload_expiry_seconds, an hour by default).

No upload starts while the store's disk is under the reserve the platform keeps free
(base.SpaceReserve), nor one whose announced size (the optional fileSize) would cut into it.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Tenant, utcnow
from ..db.models_data import Upload
from ..storage.base import ObjectStore, SpaceReserve, StoreError
from ..storage.factory import tenant_key
from .validation import ConflictError, Fields, NotFoundError, ValidationError

MAX_PARTS = 10000
RESOURCE_TYPES = (
    "Data",
    "TrainingHistoryAttachedFiles",
    "InferenceHistoryAttachedFiles",
    "PreprocHistoryAttachedFiles",
    "NotebookHistoryAttachedFiles",
)


def check_file_name(name, field: str = "fileName") -> str:
    """A file name as stored: no path separators, no '..', no NUL, not empty, at most 255 bytes."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({field: ["a file name is required"]})
    if "/" in name or "\\" in name or "\x00" in name or ".." in name or name == ".":
        raise ValidationError({field: ["a file name may not contain '/', '\\', '..' or NUL, nor be '.'"]})
    if len(name.encode("utf-8")) > 255:
        raise ValidationError({field: ["a file name may have at most 255 bytes"]})
    if any(ord(c) < 32 for c in name):
        raise ValidationError({field: ["a file name may not contain control characters"]})
    return name


def parse_part_etags(values, allow_empty: bool = False) -> list[str]:
    """["1+<etag>", "2+<etag>", ...] → the ETags; empty only for an empty file (no parts)."""
    if not isinstance(values, list) or not (values or allow_empty) or not all(isinstance(v, str) for v in values):
        raise ValidationError({"partETags": ["must be a non-empty list of '<part number>+<ETag>' strings"]})
    etags = []
    for expected, value in enumerate(values, start=1):
        number, sep, etag = value.partition("+")
        if not sep or not number.isdigit() or int(number) != expected or not etag:
            raise ValidationError({"partETags": [f"entry {expected} must be '{expected}+<ETag>', not {value!r}"]})
        etags.append(etag)
    return etags


class Uploads:
    def __init__(self, db: Session, store: ObjectStore, tenant: Tenant):
        self.db = db
        self.store = store
        self.tenant = tenant

    def start(self, user: str, file_name, parts_sum, resource_type, base_url: str, url_expiry: int,
              reserve: SpaceReserve | None = None, file_size=None) -> dict:
        """Start an upload. `file_size`: the size the client announces (optional), refused up front
        when it would cut into `reserve`; without it the upload is refused only while the free
        space is under the reserve already."""
        errors = {}
        try:
            check_file_name(file_name)
        except ValidationError as e:
            errors.update(e.errors)
        if not isinstance(parts_sum, int) or not 0 <= parts_sum <= MAX_PARTS:
            errors["partSum"] = [f"must be a whole number from 0 (an empty file) to {MAX_PARTS}"]
        if resource_type not in RESOURCE_TYPES:
            errors["type"] = ["must be one of " + ", ".join(RESOURCE_TYPES)]
        if file_size is not None and (not isinstance(file_size, int) or isinstance(file_size, bool)
                                      or file_size < 0):
            errors["fileSize"] = ["must be the file's size in bytes, a whole number from 0"]
        if errors:
            raise ValidationError(errors)
        if reserve is not None:
            no_room = self.store.space_refusal(reserve, file_size)
            if no_room is not None:
                raise no_room
        stored_path = f"{resource_type}/{uuid.uuid4().hex}/{file_name}"
        key = tenant_key(self.tenant, stored_path)
        store_upload_id = self.store.start_upload(key)
        upload = Upload(tenant_id=self.tenant.id, user_name=user, store_upload_id=store_upload_id, key=key,
                        stored_path=stored_path, file_name=file_name, resource_type=resource_type,
                        parts_sum=parts_sum)
        try:
            self.db.add(upload)
            self.db.commit()
        except BaseException:  # e.g. the database's disk is full: no folder without its row
            self.db.rollback()
            self.store.abort_upload(key, store_upload_id)
            raise
        return {
            "uris": self.store.part_urls(key, store_upload_id, parts_sum, base_url, url_expiry),
            "partsSum": parts_sum,
            "uploadId": store_upload_id,
            "key": key,
            "fileName": file_name,
            "storedPath": stored_path,
        }

    def complete(self, body: dict) -> dict:
        f = Fields(body)
        key = f.str("key", required=True, max_length=2048)
        upload_id = f.str("uploadId", required=True, max_length=1024)
        f.done()
        upload = self.db.scalar(select(Upload).where(Upload.store_upload_id == upload_id,
                                                     Upload.tenant_id == self.tenant.id))
        etags = parse_part_etags(body.get("partETags"), allow_empty=upload is not None and upload.parts_sum == 0)
        if upload is None or upload.key != key:
            raise NotFoundError("No such upload in this tenant.")
        if upload.completed_at is not None:
            raise ConflictError("This upload is complete already.")
        if len(etags) != upload.parts_sum:
            self._drop(upload)
            raise ValidationError({"partETags": [f"the upload has {upload.parts_sum} parts, not {len(etags)}; "
                                                 "it was dropped, start again"]})
        try:
            size = self.store.complete_upload(key, upload_id, etags)
        except StoreError as e:
            if not e.client_error:
                raise
            self._drop(upload)
            raise ValidationError({"partETags": [f"{e}; the upload was dropped, start again"]})
        upload.completed_at = utcnow()
        upload.size = size
        self.db.commit()
        return {"key": key, "uploadId": upload_id, "partETags": body["partETags"]}

    def _drop(self, upload: Upload) -> None:
        self.store.abort_upload(upload.key, upload.store_upload_id)
        self.db.delete(upload)
        self.db.commit()

    def claim(self, stored_path: str, resource_type: str, field: str = "storedPath") -> Upload:
        """The completed, not yet registered upload of `stored_path`; marks it registered (no commit)."""
        upload = self.db.scalar(select(Upload).where(Upload.stored_path == stored_path,
                                                     Upload.tenant_id == self.tenant.id))
        if upload is None or upload.resource_type != resource_type:
            raise ValidationError({field: [f"{stored_path!r} is not an upload of this tenant"]})
        if upload.completed_at is None:
            raise ValidationError({field: [f"the upload of {stored_path!r} is not complete"]})
        if upload.registered:
            raise ConflictError(f"The file {stored_path} is registered already.")
        upload.registered = True
        return upload


def clean_expired_uploads(db: Session, store_for_tenant, expiry_seconds: float, log) -> int:
    """Drop uploads never completed, or completed but never registered, older than the expiry."""
    cutoff = utcnow() - timedelta(seconds=expiry_seconds)
    stale = db.scalars(select(Upload).where(Upload.registered.is_(False), Upload.created_at < cutoff)).all()
    for upload in stale:
        tenant = db.get(Tenant, upload.tenant_id)
        try:
            store = store_for_tenant(tenant)
            if upload.completed_at is None:
                store.abort_upload(upload.key, upload.store_upload_id)
            else:
                store.delete(upload.key)
        except StoreError as e:
            log.warning("Could not clean upload %s: %s", upload.stored_path, e)
            continue
        db.delete(upload)
    db.commit()
    return len(stale)


def clean_orphan_upload_folders(db: Session, local_stores, expiry_seconds: float) -> int:
    """Remove the part folders of local stores that no upload row owns (the row never got written,
    e.g. on a full disk, or was removed) once they are older than the expiry; returns how many."""
    known = set(db.scalars(select(Upload.store_upload_id)).all())
    removed = 0
    for store in local_stores:
        for upload_id in store.stale_uploads(expiry_seconds):
            if upload_id not in known:
                store.abort_upload("", upload_id)
                removed += 1
    return removed
