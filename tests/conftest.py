"""Shared fixtures: the real H&M sample (read in place), a small synthetic log and configs that train in seconds."""

import os
from pathlib import Path

import pytest
import torch

from em3.config import Config, parse_config
from em3.data.synthetic_tokens import generate_synthetic

torch.set_num_threads(1)  # tiny models: one thread per test process is faster, and `make test` runs two processes

HM_SAMPLE = Path(os.environ.get("EM3_HM_SAMPLE", Path(__file__).resolve().parents[2] / "shared" / "data" / "hm_sample"))

SMALL_MODEL = {  # a ranker that trains in seconds
    "embed_dim": 16,
    "mlp_hidden": [32],
    "attention_hidden": [16],
    "fqformer": {"d_model": 16, "n_heads": 2},
    "cic_dim": 16,
}
SMALL = {
    "data": {
        "synthetic": {"n_users": 400, "n_items": 800, "impressions_per_user": 50, "n_days": 20},
        "valid_days": 3,
        "test_days": 4,
        "max_history": 10,
    },
    "model": SMALL_MODEL,
    "train": {"batch_size": 128, "epochs": 2, "progress": False, "checkpoint_every": 10},
}


@pytest.fixture(scope="session")
def small_config() -> Config:
    return parse_config(SMALL, "tests/conftest.py")


@pytest.fixture(scope="session")
def small_data(small_config):
    return generate_synthetic(small_config.data, small_config.seed)


def with_updates(cfg: Config, **sections) -> Config:
    """Copy of ``cfg`` with top-level fields or section fields replaced: with_updates(cfg, model={"variant": ...})."""
    update = {}
    for key, value in sections.items():
        current = getattr(cfg, key)
        update[key] = current.model_copy(update=value) if isinstance(value, dict) else value
    return cfg.model_copy(update=update)


@pytest.fixture(scope="session")
def hm_sample() -> Path:
    """The real H&M sample, read in place (never copied into the repository)."""
    if not (HM_SAMPLE / "articles.csv").is_file():
        pytest.skip(f"the H&M sample is not at {HM_SAMPLE} (set EM3_HM_SAMPLE; it lives outside the repository)")
    return HM_SAMPLE


def wait_until_up(url: str, process, log: Path, what: str, timeout: float = 120) -> None:
    """Poll ``url`` until it answers; fail with the end of ``log`` if ``process`` exits or ``timeout`` passes."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{what} not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process_group(process) -> None:
    """Stop a server started with ``start_new_session=True`` and its children (uvicorn workers): TERM, then KILL."""
    import os
    import signal
    import subprocess

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
