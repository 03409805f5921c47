"""The learning-rate schedule: linear warm-up, then constant or cosine decay, as a pure function of the step."""

import math

import pytest
import torch

from em3.config import TrainConfig
from em3.train import train
from em3.train.optim import set_learning_rate
from tests.conftest import with_updates


def schedule(cfg: TrainConfig, total: int) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    return [set_learning_rate(optimizer, cfg, step, total) for step in range(total)]


def test_warm_up_rises_linearly_then_cosine_decays_to_the_floor():
    cfg = TrainConfig(lr=1e-2, warmup_steps=4, lr_schedule="cosine", min_lr_ratio=0.1)
    lrs = schedule(cfg, 104)
    assert lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert lrs[54] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))  # half-way: 0.55 lr
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False)), "decays monotonically after warm-up"
    assert lrs[-1] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100))))


def test_constant_without_warm_up_is_plain_lr():
    assert schedule(TrainConfig(lr=3e-3), 5) == [3e-3] * 5


def test_training_follows_the_schedule(small_config, small_data, tmp_path):
    cfg = with_updates(small_config, output_dir=tmp_path, train={"max_steps": 7, "warmup_steps": 10, "lr": 1e-2})
    train(cfg, small_data)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    lrs = [group["lr"] for group in state["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([1e-2 * 7 / 10] * len(lrs))  # the 7th step (index 6) ran at 7/10 of lr
