import json
import math

import pytest
import torch

from em3.train import train
from em3.train.checkpoint import load_checkpoint
from em3.train.optim import make_optimizer
from tests.conftest import with_updates


@pytest.mark.parametrize(
    ("variant", "cache", "updates"),
    [("em3", "catalogue", "dense"), ("em3", "read", "rows"), ("two_stage", "catalogue", "dense")],
)
def test_n_steps_then_resume_n_equals_2n_steps(small_config, small_data, tmp_path, variant, cache, updates):
    """Across an epoch boundary and with dropout on: the weights must be identical. Bitwise equality is the right
    test here on any CPU: both runs do the same operations in the same order in one process (one thread), so they
    round alike; it compares a machine with itself, never with numbers from another machine."""
    steps_per_epoch = math.ceil(len(small_data.train) / small_config.train.batch_size)
    n = steps_per_epoch - 3  # the resumed half crosses the end of epoch 0 (and its validation)
    cache_every = 4 if n % 4 else 5  # not a divisor of n: the resumed run must start from the checkpoint's cache
    base = with_updates(
        small_config,
        model={
            "variant": variant,
            "dropout": 0.2,
            "content_cache_every": cache_every,
            "content_cache": cache,
            "content_cache_items": 300,
        },
        train={"epochs": 3, "checkpoint_every": 11, "id_table_updates": updates},
    )
    straight = with_updates(base, output_dir=tmp_path / "straight", train={"max_steps": 2 * n})
    train(straight, small_data)

    split = with_updates(base, output_dir=tmp_path / "split", train={"max_steps": n})
    first = train(split, small_data)
    assert first.metrics["steps"] == n and first.metrics["stopped_by"] == "max_steps"
    resumed = train(with_updates(split, train={"max_steps": 2 * n}), small_data, resume=True)
    assert resumed.metrics["steps"] == 2 * n

    states = []
    for run in ("straight", "split"):
        state = torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)
        assert state["loop"]["step"] == 2 * n
        states.append(state["model"])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    history = [
        json.loads((tmp_path / run / "metrics" / "train.json").read_text())["valid_history"]
        for run in ("straight", "split")
    ]
    assert history[0] == history[1] and len(history[0]) == 1  # the epoch-end validation happened once, identically


def test_resume_without_a_checkpoint_says_what_to_do(small_config, small_data, tmp_path):
    cfg = with_updates(small_config, output_dir=tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="run without --resume first"):
        train(cfg, small_data, resume=True)


def test_checkpoints_load_with_weights_only(small_config, small_data, tmp_path):
    cfg = with_updates(small_config, output_dir=tmp_path / "run", train={"max_steps": 3})
    result = train(cfg, small_data)
    optimizer = make_optimizer(result.model, cfg.train)
    loop = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", result.model, optimizer)
    assert loop["step"] == 3


def test_a_fresh_run_that_fails_leaves_no_earlier_or_partial_model(small_config, small_data, tmp_path, monkeypatch):
    import em3.train.trainer as trainer

    cfg = with_updates(small_config, output_dir=tmp_path / "run", train={"max_steps": 12, "checkpoint_every": 5})
    train(cfg, small_data)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    steps = []

    def failing_step(*args):
        if len(steps) == 7:
            raise RuntimeError("node lost")
        steps.append(1)
        return optimisation_step(*args)

    optimisation_step = trainer.optimisation_step
    monkeypatch.setattr(trainer, "optimisation_step", failing_step)
    with pytest.raises(RuntimeError, match="node lost"):
        train(cfg, small_data)
    assert not (tmp_path / "run" / "model").exists()  # neither the previous run's model nor a partial one
    assert not (tmp_path / "run" / "metrics" / "train.json").exists()
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["loop"]["step"] == 5
