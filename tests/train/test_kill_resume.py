"""`em3 train` killed with SIGKILL at a random step, then `--resume`: the same final metrics as a run that was never
interrupted, and the kill leaves no complete-looking partial output."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from em3.train import train
from tests.conftest import SMALL, with_updates

CHECKPOINT_EVERY = 7
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as the in-process reference (tests/conftest.py)


def em3_train(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "em3", "train", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ONE_THREAD},
    )


def checkpoint_writes(path: Path, process: subprocess.Popen, wanted: int, timeout: float = 240) -> int:
    """Wait until ``path`` has been (re)written ``wanted`` times, polling; returns how many writes were seen."""
    seen, last, deadline = 0, None, time.monotonic() + timeout
    while seen < wanted and process.poll() is None and time.monotonic() < deadline:
        try:
            stat = path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None and (stat.st_ino, stat.st_mtime_ns) != last:  # each write is a new file renamed in
            seen, last = seen + 1, (stat.st_ino, stat.st_mtime_ns)
        time.sleep(0.002)
    return seen


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_metrics_of_an_uninterrupted_run(small_config, small_data, tmp_path):
    settings = {"epochs": 2, "checkpoint_every": CHECKPOINT_EVERY, "progress": False}
    reference = train(
        with_updates(small_config, name="kill", output_dir=tmp_path / "straight", train=settings), small_data
    ).metrics
    writes = reference["steps"] // CHECKPOINT_EVERY + reference["valid_history"][-1]["epoch"] + 1

    out = tmp_path / "killed"
    config = tmp_path / "kill.yaml"
    config.write_text(
        yaml.safe_dump({**SMALL, "name": "kill", "output_dir": str(out), "train": {**SMALL["train"], **settings}})
    )
    rng = random.Random()
    wanted, delay = rng.randint(1, writes * 3 // 4), rng.uniform(0, 0.1)  # a random point, well before the end
    process = em3_train(config)
    seen = checkpoint_writes(out / "checkpoints" / "last.pt", process, wanted)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    where = f"killed after checkpoint write {seen} of about {writes}, +{delay:.3f} s"
    assert seen == wanted and process.returncode == -signal.SIGKILL, f"{where}; exit {process.returncode}"

    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)  # whole, never half-written
    assert 0 < state["loop"]["step"] < reference["steps"], where
    assert not (out / "metrics" / "train.json").exists(), where  # no result of a run that did not finish
    assert not (out / "model").exists(), where  # the model directory appears only when training finished
    weights = out / "checkpoints" / "best.safetensors"
    if weights.exists():  # the best weights so far (an epoch ended before the kill): a whole file
        assert state["loop"]["best_epoch"] >= 0 and load_file(weights).keys(), where
    left = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {"checkpoints/last.pt", "checkpoints/best.safetensors"}
    assert all(name in expected or Path(name).name.startswith(".") for name in left), (where, left)

    resumed = em3_train(config, "--resume")
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    metrics = json.loads((out / "metrics" / "train.json").read_text())
    assert metrics["steps"] == reference["steps"], where
    for split in ("valid", "test"):
        assert metrics[split] == reference[split], (where, split)  # every metric, exactly: AUC, GAUC, logloss, ...
    assert metrics["valid_history"] == reference["valid_history"], where
