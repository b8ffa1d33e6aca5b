"""The lab extension's TypeScript unit tests (jest, as JupyterLab's extension template sets it up),
run from pytest so that the project's one test command covers them.

They need labextension/node_modules, which `bash setup.sh` installs with the extension's build
(jlpm from the venv's jupyter_builder); without it this test fails and says so.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
LABEXT = os.path.join(os.path.dirname(HERE), "labextension")


def jlpm() -> str:
    found = os.path.join(os.path.dirname(sys.executable), "jlpm")
    return found if os.path.exists(found) else (shutil.which("jlpm") or "jlpm")


def test_jest_suites_pass(tmp_path):
    if not os.path.isdir(os.path.join(LABEXT, "node_modules", "jest")):
        pytest.fail("labextension/node_modules is missing: run `bash setup.sh --test` (it installs and builds the extension)")
    report = tmp_path / "jest.json"
    env = {**os.environ, "CI": "true", "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([jlpm(), "jest", "--ci", "--json", f"--outputFile={report}"], cwd=LABEXT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert report.exists(), f"jest wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(report.read_text())
    failures = [
        f"{os.path.relpath(suite['name'], LABEXT)}: {test['fullName']}\n" + "\n".join(test.get("failureMessages") or [])[:2000]
        for suite in result["testResults"] for test in suite["assertionResults"] if test["status"] != "passed"
    ]
    broken = [f"{os.path.relpath(s['name'], LABEXT)}: {s.get('message', '')[:2000]}"
              for s in result["testResults"] if s["status"] != "passed" and not s["assertionResults"]]
    assert not failures and not broken, "\n\n".join(failures + broken)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every suite ran: the labels, the request building, the list models, the log follower, the panels
    suites = {os.path.basename(s["name"]) for s in result["testResults"]}
    assert {"i18n.spec.ts", "api.spec.ts", "model.spec.ts", "logfollower.spec.ts", "panels.spec.tsx"} <= suites, suites
    assert result["numPassedTests"] >= 30, result["numPassedTests"]
