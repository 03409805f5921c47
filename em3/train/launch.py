"""Training on every GPU of this machine: one ``torchrun`` process per GPU, or in-process on one GPU or the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from em3.config import Config


def gpu_processes(cfg: Config) -> int:
    """Processes to train ``cfg`` with here: the visible GPUs (unless ``train.device`` is cpu), at least 1."""
    import torch

    return max(torch.cuda.device_count(), 1) if cfg.train.device != "cpu" else 1


def train_here(cfg: Config, nproc: int | None = None, resume: bool = False) -> dict:
    """Train ``cfg`` with ``nproc`` data-parallel processes (default: one per visible GPU); returns the metrics
    (``metrics/train.json``). Several processes run ``em3 train`` under ``torchrun --standalone``."""
    nproc = nproc or gpu_processes(cfg)
    if nproc == 1:
        from em3.data.loading import load_data
        from em3.train import train

        return train(cfg, load_data(cfg), resume=resume).metrics
    with tempfile.TemporaryDirectory(prefix="em3-train-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "em3",
            "train",
            "--config",
            str(config),
            *(["--resume"] if resume else []),
        ]
        code = subprocess.run(command).returncode
    if code:
        raise RuntimeError(f"{cfg.name}: torchrun with {nproc} processes failed (exit {code}); see its log above")
    return json.loads((Path(cfg.output_dir) / "metrics" / "train.json").read_text())
