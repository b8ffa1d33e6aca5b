"""Schema fuzzing: schemathesis against the live OpenAPI document of a real KQI Hub.

Two runs per database backend, on a platform of this module's own (the fuzzer creates, changes
and deletes users, tenants, endpoints and data, so the session's shared platform stays out of
it), at the same time: one as a user of one tenant (a hub token, the tenant chosen by
X-KQI-Tenant), one as the system administrator. (Each run waits on the platform's answer to every
request and the platform on the run's next one, so two at once keep both of the machine's cores
busy where one left each half idle.) Every schemathesis check is on and every phase runs (examples, coverage,
fuzzing, stateful): the examples and coverage phases first (a fixed set of cases for every
operation), then fuzzing and stateful sequences for a time budget (KQI_FUZZ_SECONDS, default 30),
at most KQI_FUZZ_EXAMPLES (default 30) examples per operation and phase.

What must hold: no server error (5xx) and no answer that breaks the document (its status code,
content type, headers or body schema), no 405 without `Allow`, no deleted object still served
and no request without valid credentials accepted, no schemathesis error. The
heuristic checks about which inputs an API should take (schema-valid request refused,
schema-violating request accepted, a required header left out) are run and their counts printed but
do not fail the test: a business rule (a name already taken, a tenant that does not exist) is
not a schema violation.

Excluded operations: none (see EXCLUDED); tests/schema_fuzz_hooks.py only keeps both runs'
accounts, tenants and storage endpoint out of the routes that would end a session (a password
reset) or break a store (an endpoint pointed at nothing: 503s). The platform caches a token's
identity for 5 s (KQI_HUB_AUTH_CACHE_SECONDS, the service's default; the shared test platforms ask
the hub on every request so tests of revocation see it at once): asking the hub about the same
two tokens on every request took about a quarter of the fuzzing's processor time. What
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
from concurrent.futures import ThreadPoolExecutor

import pytest

from .platform import VENV_BIN, new_platform, remove_tree, tenant_user, user_hub_token

SCHEMATHESIS = os.path.join(VENV_BIN, "schemathesis")
#: keeps the run's own account and tenant out of the routes that would end its session
HOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema_fuzz_hooks.py")
FUZZ_SECONDS = int(os.environ.get("KQI_FUZZ_SECONDS", "30"))
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
    # the service's default cache of a token's identity (tests/platform.py turns it off): the two
    # runs' tokens are never revoked (the hooks keep their accounts out of the password routes)
    env = {"KQI_NOTEBOOK_IMAGE": ABSENT_IMAGE, "KQI_HUB_AUTH_CACHE_SECONDS": "5"}
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


#: every run goes in two stages: the examples and coverage phases (a fixed set of cases per
#: operation, so every operation is tested however loaded the machine), then fuzzing and stateful
#: sequences for the time budget
STAGES = [("coverage", "examples,coverage", None), ("fuzzing", "fuzzing,stateful", FUZZ_SECONDS)]


def run_schemathesis(platform, token: str, tenant_id: int, label: str, work: str, kept: dict[str, str],
                     phases: str, max_time: int | None) -> dict:
    """One schemathesis run with every check; its JSON report, with its console output under
    "console" and its wall time under "seconds". `kept`: the hooks' KQI_FUZZ_KEEP_* variables."""
    report_path = os.path.join(work, f"{label}.json")
    args = [
        SCHEMATHESIS, "run", f"{platform.api_url}/openapi.json",
        "--checks", "all", "--phases", phases, "--max-examples", str(FUZZ_EXAMPLES),
        "--workers", "1", "--request-timeout", "30", "--generation-database", "none",
        "--header", f"Authorization: Bearer {token}", "--header", f"X-KQI-Tenant: {tenant_id}",
        "--report", "json", "--report-json-path", report_path,
        "--no-color", "--output-sanitize", "true",
    ]
    if max_time is not None:
        args += ["--max-time", str(max_time)]
    for operation in EXCLUDED:
        args += ["--exclude-name", operation]  # schemathesis names an operation "METHOD /path"
    started = time.monotonic()
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "SCHEMATHESIS_HOOKS": HOOKS, **kept}
    result = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=FUZZ_SECONDS * 4 + 600,
                            env=env)
    seconds = time.monotonic() - started
    assert os.path.exists(report_path), (
        f"schemathesis wrote no report (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    report["console"] = result.stdout + result.stderr
    report["seconds"] = seconds
    return report


def merged(reports: list[dict]) -> dict:
    """The stages' reports as one: counts added, failures of the same check put together; the
    operations are the coverage stage's (which tests each one)."""
    failures: dict[str, dict] = {}
    for report in reports:
        for f in report["failures"]:
            into = failures.setdefault(f["code"], {**f, "count": 0, "operations": []})
            into["count"] += f["count"]
            into["operations"] += [op for op in f["operations"] if op not in into["operations"]]
    return {
        "seed": [r.get("seed") for r in reports],
        "seconds": sum(r["seconds"] for r in reports),
        "operations": {**reports[0]["operations"],
                       "errored": sum(r["operations"]["errored"] for r in reports)},
        "test_cases": {key: sum(r["test_cases"][key] for r in reports)
                       for key in ("generated", "with_failures")},
        "phases": {name: phase for r in reports for name, phase in r["phases"].items()
                   if phase["status"] != "skip"},
        "failures": list(failures.values()),
        "errors": [e for r in reports for e in r["errors"]],
        "console": "\n".join(r["console"] for r in reports),
    }


def figures(report: dict, label: str) -> dict:
    ops, cases = report["operations"], report["test_cases"]
    return {
        "run": label,
        "seeds": report.get("seed"),
        "seconds": round(report["seconds"], 1),
        "operations": {"selected": ops["selected"], "tested": ops["tested"], "errored": ops["errored"]},
        "testCases": cases["generated"],
        "withFailures": cases["with_failures"],
        "phases": {name: phase["status"] for name, phase in report["phases"].items()},
        "failuresByCheck": {f"{f['code']} {f['title']}": f["count"] for f in report["failures"]},
        "errors": len(report["errors"]),
    }


def service_tracebacks(platform, limit: int = 6) -> str:
    """The last tracebacks in the platform's log (where a 500's cause is)."""
    try:
        with open(platform.log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith("Traceback") or lines[i].startswith("Uncaught exception"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t", "Traceback", "The above", "During"))
                                      or not lines[j].strip()):
                j += 1
            blocks.append("\n".join(lines[i:min(j + 1, i + 80)]))
            i = j
        else:
            i += 1
    return "\n\n".join(blocks[-limit:])


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
        ("tenant-user", user_token, user.tenant["id"]),
        ("admin", admin_token, 1),
    ]
    # both runs at once: neither may end the other's session or remove its tenant or store
    kept = {"KQI_FUZZ_KEEP_USERS": f"admin,{user.name}", "KQI_FUZZ_KEEP_TENANTS": f"1,{user.tenant['id']}",
            "KQI_FUZZ_KEEP_STORAGE": "1"}

    def run(label: str, token: str, tenant_id: int) -> dict:
        return merged([run_schemathesis(plat, token, tenant_id, f"{label}-{stage}", str(tmp_path), kept,
                                        phases, max_time)
                       for stage, phases, max_time in STAGES])

    with ThreadPoolExecutor(len(runs)) as pool:
        futures = [pool.submit(run, *spec) for spec in runs]
        reports = [future.result() for future in futures]
    results = []
    for (label, token, tenant_id), report in zip(runs, reports):
        # the run's own sign-in still works at its end (else most of it tested only 401s)
        r = plat.api("GET", "/account", token, headers={"X-KQI-Tenant": str(tenant_id)})
        assert r.status_code == 200 and r.json()["selectedTenant"]["id"] == tenant_id, (label, r.text)
        results.append((label, report, figures(report, label)))

    with open(os.path.join(artifacts_dir, f"schema-fuzz-{db_backend}.json"), "w", encoding="utf-8") as f:
        json.dump([fig for _, _, fig in results], f, indent=1)
    with capsys.disabled():
        for _, _, fig in results:
            print(f"\nschema fuzzing ({db_backend}, {fig['run']}): {fig['operations']['tested']} operations, "
                  f"{fig['testCases']} test cases in {fig['seconds']} s, seeds {fig['seeds']}; failures by check: "
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
        problems.append("--- the service's last tracebacks:\n" + service_tracebacks(plat))
        pytest.fail("\n\n".join(problems), pytrace=False)
