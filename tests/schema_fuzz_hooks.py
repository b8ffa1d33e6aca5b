"""schemathesis hooks of tests/test_schema_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

The fuzzer learns names and ids from the answers it gets (a user list names the administrator
who runs it) and then sends them to every route. Some of those would end a run's session and
leave the rest of it testing nothing but 401s: the administrator resetting its own password
through `PUT /admin/users/{name}/password` (a password change revokes every token of the user,
as it must) and replacing its own tenants, deleting or re-pointing its own tenant, or pointing
its tenant's storage endpoint somewhere that does not answer (every store route then answers 503,
as it must). The tenant user's run and the administrator's run go at the same time on one
platform, so the same holds for the other run's account and tenant: requests of the admin user
routes about a kept account go to a user that does not exist instead, and a PUT or DELETE of a
kept tenant or of the kept storage endpoint to an id that does not exist; everything else is sent
as generated.

KQI_FUZZ_KEEP_USERS and KQI_FUZZ_KEEP_TENANTS name the kept accounts and tenants (comma
separated), KQI_FUZZ_KEEP_STORAGE the storage endpoint.
"""
from __future__ import annotations

import os

import schemathesis


def _listed(variable: str) -> set[str]:
    return {item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()}


KEPT_USERS = _listed("KQI_FUZZ_KEEP_USERS")
KEPT_TENANTS = _listed("KQI_FUZZ_KEEP_TENANTS")
KEPT_STORAGE = _listed("KQI_FUZZ_KEEP_STORAGE")
ABSENT_ID = 2**31 - 1


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if not params:
        return
    path = case.operation.path
    if path.startswith("/admin/users/{name}") and str(params.get("name")) in KEPT_USERS:
        params["name"] = f"{params['name']}-someone-else"
    if case.method.upper() in ("PUT", "DELETE"):
        for kept, route in ((KEPT_TENANTS, "/admin/tenants/{id}"), (KEPT_STORAGE, "/admin/storage/endpoints/{id}")):
            if path == route and str(params.get("id")) in kept:
                params["id"] = ABSENT_ID
