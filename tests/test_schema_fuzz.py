"""Schema fuzzing: schemathesis against the live OpenAPI document of a real KQI Hub.

Two runs per database backend, on a platform of this module's own (the fuzzer creates, changes
and deletes users, tenants, endpoints and data, so the session's shared platform stays out of
it): first as a user of one tenant (a hub token, the tenant chosen by X-KQI-Tenant), then as the
system administrator. Every schemathesis check is on and every phase runs (examples, coverage,
fuzzing, stateful), bounded by a time budget per run (KQI_FUZZ_SECONDS, default 60) and a
number of examples per operation (KQI_FUZZ_EXAMPLES, default 30).

What must hold: no server error (5xx) and no answer that breaks the document (its status code,
content type, headers or body schema), no 405 without `Allow`, no deleted object still served
and no request without valid credentials accepted, no schemathesis error. The
heuristic checks about which inputs an API should take (schema-valid request refused,
schema-violating request accepted, use after delete, ...) are run and their counts printed but
do not fail the test: a business rule (a name already taken, a tenant that does not exist) is
not a schema violation.

Excluded operations: none (see EXCLUDED); tests/schema_fuzz_hooks.py only keeps the run's own
account and tenant out of the routes that would end its session (its own password reset). What
would be long-lived is kept short instead: the platform's default notebook image is one that
does not exist, so a notebook the fuzzer starts fails at once instead of running a Jupyter
server for hours, and the module removes the platform's containers at the end.

The counts of each run (operations, test cases, failures by check, duration) are printed and
written to tests/artifacts/schema-fuzz-<backend>.json. A failing run shows schemathesis' own
report of each failure: the check, the answer and the request as a curl command (tokens
filtered out).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from .platform import VENV_BIN, new_platform, remove_tree, tenant_user, user_hub_token

SCHEMATHESIS = os.path.join(VENV_BIN, "schemathesis")
#: keeps the run's own account and tenant out of the routes that would end its session
HOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema_fuzz_hooks.py")
FUZZ_SECONDS = int(os.environ.get("KQI_FUZZ_SECONDS", "60"))
FUZZ_EXAMPLES = int(os.environ.get("KQI_FUZZ_EXAMPLES", "30"))

#: operations left out of the fuzzing, "METHOD /path" → why (none today; the shell routes are
#: WebSockets, which answer a plain GET at once, so they stay in)
EXCLUDED: dict[str, str] = {}

#: failures that break the contract: server errors, answers that do not fit the document, and the
#: stateful and access checks (a deleted object still served, a created one missing, no sign-in
#: or another user's object accepted)
CONTRACT_CODES = {
    "ST101": "server error",
    "ST102": "server error on an undeclared Content-Type",
    "ST103": "status code not in the document",
    "ST104": "no Content-Type",
    "ST105": "Content-Type not in the document",
    "ST106": "malformed Content-Type",
    "ST107": "required response header missing",
    "ST108": "response violates its schema",
    "ST109": "body is not valid JSON",
    "ST110": "body cannot be parsed",
    "ST111": "discriminator value matches no schema",
    "ST204": "undeclared method not answered 405 with Allow",
    "ST205": "Allow of OPTIONS differs from the document",
    "ST301": "resource still served after its DELETE",
    "ST302": "resource a POST created answers 404",
    "ST401": "request without valid credentials accepted",
    "ST402": "one user's object served to another",
}
ABSENT_IMAGE = "localhost/kqi-fuzz/no-such-notebook-image:none"


@pytest.fixture(scope="module")
def fuzz_platform(db_backend, request, tmp_path_factory):
    """A platform of this module's own on the run's database backend."""
    base = str(tmp_path_factory.mktemp(f"fuzz-{db_backend}"))
    env = {"KQI_NOTEBOOK_IMAGE": ABSENT_IMAGE}
    if db_backend == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:6]
        env["KQI_HUB_DB_URL"] = pg.create_database(f"hub_fuzz_{suffix}")
        env["KQI_DB_URL"] = pg.create_database(f"kqi_fuzz_{suffix}")
    plat = new_platform(base, env)
    plat.db_backend = db_backend
    plat.start()
    try:
        yield plat
    finally:
        plat.stop()
        _remove_containers(plat)
        remove_tree(base)


def _remove_containers(platform) -> None:
    """Every podman container of this platform (notebooks outlive the hub by design)."""
    from kqi_services.jobs.podman import platform_tag

    listed = subprocess.run(["podman", "ps", "--all", "--quiet", "--filter",
                             f"label=kqi.platform={platform_tag(platform.data_dir)}"],
                            capture_output=True, text=True)
    ids = listed.stdout.split()
    if ids:
        subprocess.run(["podman", "rm", "--force", "--time", "2", *ids], capture_output=True)


def run_schemathesis(platform, token: str, tenant_id: int, label: str, work: str, name: str) -> dict:
    """One bounded schemathesis run with every check; its JSON report, with its console output
    under "console" and its wall time under "seconds"."""
    report_path = os.path.join(work, f"{label}.json")
    args = [
        SCHEMATHESIS, "run", f"{platform.api_url}/openapi.json",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(FUZZ_EXAMPLES), "--max-time", str(FUZZ_SECONDS),
        "--workers", "1", "--request-timeout", "30", "--generation-database", "none",
        "--header", f"Authorization: Bearer {token}", "--header", f"X-KQI-Tenant: {tenant_id}",
        "--report", "json", "--report-json-path", report_path,
        "--no-color", "--output-sanitize", "true",
    ]
    for operation in EXCLUDED:
        args += ["--exclude-name", operation]  # schemathesis names an operation "METHOD /path"
    started = time.monotonic()
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "SCHEMATHESIS_HOOKS": HOOKS,
           "KQI_FUZZ_SELF": name, "KQI_FUZZ_TENANT": str(tenant_id)}
    result = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=FUZZ_SECONDS * 4 + 300,
                            env=env)
    seconds = time.monotonic() - started
    assert os.path.exists(report_path), (
        f"schemathesis wrote no report (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    report["console"] = result.stdout + result.stderr
    report["seconds"] = seconds
    return report


def figures(report: dict, label: str) -> dict:
    ops, cases = report["operations"], report["test_cases"]
    return {
        "run": label,
        "seed": report.get("seed"),
        "seconds": round(report["seconds"], 1),
        "operations": {"selected": ops["selected"], "tested": ops["tested"], "errored": ops["errored"]},
        "testCases": cases["generated"],
        "withFailures": cases["with_failures"],
        "phases": {name: phase["status"] for name, phase in report["phases"].items()},
        "failuresByCheck": {f"{f['code']} {f['title']}": f["count"] for f in report["failures"]},
        "errors": len(report["errors"]),
    }


def failure_sections(console: str, codes: set[str]) -> str:
    """The parts of schemathesis' console report about the failures with these codes (each with
    its answer and a curl command)."""
    if "FAILURES" not in console:
        return console[-6000:]
    body = console.split("FAILURES", 1)[1].split("=== SUMMARY", 1)[0]
    sections, current = [], []
    for line in body.splitlines():
        if line.startswith("___") and current:
            sections.append(current)
            current = []
        current.append(line)
    if current:
        sections.append(current)
    kept = ["\n".join(s) for s in sections if any(code in "\n".join(s) for code in codes)]
    return "\n".join(kept)[:20000]


def test_schema_fuzzing_as_tenant_user_and_admin(fuzz_platform, db_backend, tmp_path, capsys, artifacts_dir):
    plat = fuzz_platform
    user = tenant_user(plat)
    user_token = user_hub_token(plat, user.name, user.password)
    admin_token = plat.admin_hub_token()
    runs = [
        # the tenant user first: the administrator's run may delete that user or tenant
        ("tenant-user", user_token, user.tenant["id"], user.name),
        ("admin", admin_token, 1, "admin"),
    ]
    results = []
    for label, token, tenant_id, name in runs:
        report = run_schemathesis(plat, token, tenant_id, label, str(tmp_path), name)
        # the run's own sign-in still works at its end (else most of it tested only 401s)
        r = plat.api("GET", "/account", token, headers={"X-KQI-Tenant": str(tenant_id)})
        assert r.status_code == 200 and r.json()["selectedTenant"]["id"] == tenant_id, (label, r.text)
        results.append((label, report, figures(report, label)))

    with open(os.path.join(artifacts_dir, f"schema-fuzz-{db_backend}.json"), "w", encoding="utf-8") as f:
        json.dump([fig for _, _, fig in results], f, indent=1)
    with capsys.disabled():
        for _, _, fig in results:
            print(f"\nschema fuzzing ({db_backend}, {fig['run']}): {fig['operations']['tested']} operations, "
                  f"{fig['testCases']} test cases in {fig['seconds']} s, seed {fig['seed']}; failures by check: "
                  f"{fig['failuresByCheck'] or 'none'}; errors: {fig['errors']}")

    problems = []
    for label, report, fig in results:
        assert fig["operations"]["tested"] == fig["operations"]["selected"] > 100, fig
        broken = {f["code"]: f for f in report["failures"] if f["code"] in CONTRACT_CODES}
        if broken or report["errors"] or fig["operations"]["errored"]:
            lines = [f"--- {label}: " + "; ".join(
                f"{code} {CONTRACT_CODES[code]} x{f['count']} in {', '.join(f['operations'][:8])}"
                for code, f in sorted(broken.items()))]
            for error in report["errors"][:10]:
                lines.append(f"schemathesis error: {json.dumps(error)[:800]}")
            lines.append(failure_sections(report["console"], set(broken)))
            problems.append("\n".join(lines))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
