"""Lay the lab extension out for a notebook container that lacks it (stdlib only):

    python -m kqi_labextension.install <dest>

writes <dest>/python/kqi_labextension (the package, without byte code) and, when the front-end
is built, <dest>/share/jupyter/labextensions/kqi-labextension. The notebook then runs with
PYTHONPATH=<dest>/python and JUPYTER_PATH=<dest>/share/jupyter (spawner/base.py lab_env). On
Kubernetes an init container of the hub's image runs this into an emptyDir (spawner/kube.py).
"""
from __future__ import annotations

import os
import shutil
import sys

PACKAGE = os.path.dirname(os.path.abspath(__file__))
FRONTEND = os.path.join("share", "jupyter", "labextensions", "kqi-labextension")


def install(dest: str) -> list[str]:
    """Copy the package (and its front-end) under `dest`; the folders written."""
    written = []
    target = os.path.join(dest, "python", "kqi_labextension")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "labextension"))
    written.append(target)
    frontend = os.path.join(PACKAGE, "labextension")
    if os.path.isfile(os.path.join(frontend, "package.json")):
        target = os.path.join(dest, FRONTEND)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(frontend, target)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m kqi_labextension.install <dest>", file=sys.stderr)
        return 2
    for path in install(argv[1]):
        print(f"kqi_labextension: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
