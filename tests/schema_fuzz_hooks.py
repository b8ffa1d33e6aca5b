"""schemathesis hooks of tests/test_schema_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

The fuzzer learns names and ids from the answers it gets (a user list names the administrator
who runs it) and then sends them to every route. Two of those would end the run's own session
and leave the rest of it testing nothing but 401s: the administrator resetting its own password
through `PUT /admin/users/{name}/password` (a password change revokes every token of the user,
as it must) and replacing its own tenants, deleting or re-pointing its own tenant, or pointing
its tenant's storage endpoint somewhere that does not answer (every store route then answers 503,
as it must). So requests of the admin user routes about the run's own account go to a user that
does not exist instead, and a PUT or DELETE of the run's own tenant or of its storage endpoint to
an id that does not exist; everything else is sent as generated.
"""
from __future__ import annotations

import os

import schemathesis

SELF = os.environ.get("KQI_FUZZ_SELF", "")
TENANT = os.environ.get("KQI_FUZZ_TENANT", "")
STORAGE = os.environ.get("KQI_FUZZ_STORAGE", "")
ABSENT_ID = 2**31 - 1


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if not params:
        return
    path = case.operation.path
    if SELF and path.startswith("/admin/users/{name}") and str(params.get("name")) == SELF:
        params["name"] = f"{SELF}-someone-else"
    if case.method.upper() in ("PUT", "DELETE"):
        for own, route in ((TENANT, "/admin/tenants/{id}"), (STORAGE, "/admin/storage/endpoints/{id}")):
            if own and path == route and str(params.get("id")) == own:
                params["id"] = ABSENT_ID
