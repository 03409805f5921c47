"""em3 bench quality's worker processes stop when the benchmark process is killed alone (they used to train on as
orphans, holding a core, until killed by hand)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from em3.bench.quality import _worker_init


def report_and_wait(path):
    open(path, "w").write(str(os.getpid()))
    time.sleep(300)


if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),))
    pool.submit(report_and_wait, sys.argv[1]).result()
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_a_worker_stops_when_the_benchmark_process_is_killed(tmp_path):
    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=tmp_path, env=env)
    worker = None
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            assert parent.poll() is None, "the parent died before its worker started"
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        assert alive(worker)
        parent.kill()  # the benchmark process alone, as `kill PID` does
        parent.wait(10)
        deadline = time.monotonic() + 20  # the worker looks for its parent every 2 s
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker), "the worker trains on as an orphan"
    finally:
        parent.kill()
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)
