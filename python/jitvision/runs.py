"""Run folders that never overwrite each other: ``PROJECT/NAME``, then ``NAME2``, ``NAME3``, ...

The rule (the official YOLOv5 ``--project``/``--name``/``--exist-ok`` one, documented in docs/yolov5.md so that
other front ends can follow it): with ``exist_ok`` the folder is ``PROJECT/NAME`` whether or not it exists;
otherwise it is the first of ``PROJECT/NAME``, ``PROJECT/NAME2``, ``PROJECT/NAME3``, ... that does not exist yet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from jitvision.errors import OutputError

MAX_RUNS = 9999


def new_run_dir(project: Union[str, Path], name: str = "exp", exist_ok: bool = False) -> Path:
    """Create and return the run folder that the rule above picks (atomically: two runs never get the same)."""
    base = Path(project) / name
    try:
        if exist_ok:
            base.mkdir(parents=True, exist_ok=True)
            return base
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, MAX_RUNS + 1):
            candidate = base if n == 1 else Path(project) / f"{name}{n}"
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as e:
        raise OutputError(f"cannot create the run folder {base}: {e.strerror or e}") from None
    raise OutputError(f"{base.parent} already holds {name} .. {name}{MAX_RUNS}: pass another --name or --exist-ok")
