"""Which object store serves a tenant: built from the tenant's storage endpoint row."""
from __future__ import annotations

import hashlib
import threading

from ..db.models import Storage, Tenant
from .base import ObjectStore, StoreError
from .local import DirectAddress, LocalObjectStore, UrlSigner
from .s3 import S3ObjectStore


class StoreFactory:
    """Makes (and caches, per endpoint and version) the store of a storage endpoint."""

    def __init__(self, secret_box, signing_key: str, route_prefix: str, direct: DirectAddress | None = None):
        """`direct`: where local stores hand their signed URLs out to (not through the proxy), if set."""
        self.secret_box = secret_box
        self.direct = direct
        self.signer = UrlSigner(hashlib.sha256(("kqi-store-urls:" + signing_key).encode()).digest())
        self.route_prefix = route_prefix
        self._cache: dict[tuple, ObjectStore] = {}
        self._lock = threading.Lock()

    def for_storage(self, storage: Storage) -> ObjectStore:
        version = (storage.id, storage.modified_at)
        with self._lock:
            store = self._cache.get(version)
            if store is None:
                store = self._make(storage)
                self._cache = {k: v for k, v in self._cache.items() if k[0] != storage.id}
                self._cache[version] = store
            return store

    def for_tenant(self, tenant: Tenant) -> ObjectStore:
        if tenant.storage is None:
            raise StoreError(f"The tenant {tenant.name} has no storage endpoint: ask an administrator to set one.",
                             client_error=True)
        return self.for_storage(tenant.storage)

    def _make(self, storage: Storage) -> ObjectStore:
        if storage.kind == "local":
            if not storage.server_url.startswith("file://"):
                raise StoreError(f"The local storage {storage.name} needs a file:// URL")
            return LocalObjectStore(storage.server_url[len("file://"):], self.signer, self.route_prefix, storage.id,
                                    direct=self.direct)
        if storage.kind == "s3":
            secret = self.secret_box.decrypt(storage.secret_key_encrypted) if storage.secret_key_encrypted else ""
            return S3ObjectStore(storage.server_url, storage.bucket or "kqi", storage.access_key or "", secret,
                                 region=storage.region, path_style=storage.path_style,
                                 public_endpoint_url=storage.public_url)
        raise StoreError(f"Unknown storage kind {storage.kind!r}")



def tenant_key(tenant: Tenant, stored_path: str) -> str:
    """The store key of a path below a tenant (each tenant has its own prefix)."""
    return f"{tenant.storage_path}/{stored_path}"
