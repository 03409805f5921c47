"""Progress bars that suit both a terminal and a log file (CI, DVC, Kubeflow): far fewer refreshes in logs."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(**kwargs: Any):
    """A ``tqdm`` bar; when stderr is not a terminal it refreshes at most every 30 s instead of 10 times a second."""
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 30.0)
    return tqdm(**kwargs)
