"""Laying a dataset out under /kqi/input, as every job and notebook sees it.

    /kqi/input/<type>/<dataId>/<file>    (training / validation / testing)
    /kqi/input/<dataId>/<file>           (flat datasets)

Two creation methods, as in the guide: `symlink` makes each file a link into the data
mount (`/kqi/raw`, the tenant's folder of a local object store, read-only), and `copy`
gives the job its own copies — read from the data mount when there is one, otherwise
streamed from the object store. Stdlib only: the job runtime imports this file as is.
"""
from __future__ import annotations

import os
import shutil
from typing import Callable, Iterable, Iterator

SYMLINK = "symlink"
COPY = "copy"


class LayoutError(ValueError):
    pass


def safe_relative(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise LayoutError(f"unsafe path in the dataset: {path!r}")
    return path


def lay_out(
    pairs: Iterable[dict],
    input_dir: str,
    method: str,
    *,
    raw_dir: str | None = None,
    link_target_dir: str | None = None,
    open_stored: Callable[[str], Iterator[bytes]] | None = None,
) -> int:
    """Create the files of `pairs` ({dataPath, storedPath}) under `input_dir`; returns the count.

    raw_dir:          where stored paths can be read on this machine (the data mount)
    link_target_dir:  where the data mount is seen by the job (e.g. /kqi/raw); symlinks point
                      there. Defaults to raw_dir.
    open_stored:      streams a stored path's bytes when there is no data mount (copy only)
    """
    if method not in (SYMLINK, COPY):
        raise LayoutError(f"the creation method is '{SYMLINK}' or '{COPY}', not {method!r}")
    if method == SYMLINK and raw_dir is None and link_target_dir is None:
        raise LayoutError("symlinks need a data mount; this store has none, use 'copy'")
    link_base = link_target_dir or raw_dir
    # every path is checked before anything is made: a bad pair leaves no half layout
    checked = [(safe_relative(pair["dataPath"]), safe_relative(pair["storedPath"])) for pair in pairs]
    count = 0
    os.makedirs(input_dir, exist_ok=True)
    for data_path, stored_path in checked:
        target = os.path.join(_make_parents(input_dir, data_path), data_path.rsplit("/", 1)[-1])
        if os.path.lexists(target):
            os.remove(target)
        if method == SYMLINK:
            os.symlink(os.path.join(link_base, *stored_path.split("/")), target)
        elif raw_dir is not None:
            shutil.copyfile(os.path.join(raw_dir, *stored_path.split("/")), target)
        elif open_stored is not None:
            with open(target, "wb") as out:
                for chunk in open_stored(stored_path):
                    out.write(chunk)
        else:
            raise LayoutError("copying needs a data mount or a way to read the object store")
        count += 1
    return count


def _make_parents(input_dir: str, data_path: str) -> str:
    """Make the folders of `data_path` under `input_dir`, never following a link out of it."""
    current = input_dir
    for part in data_path.split("/")[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise LayoutError(f"{data_path!r} leads out of the input folder through a link")
        if not os.path.isdir(current):
            os.mkdir(current)
    return current
