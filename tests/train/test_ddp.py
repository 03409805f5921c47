"""Data-parallel training: epoch shards, the DDP preconditions, and real ``torchrun`` runs with 2 CPU processes
(gloo) against 1 process: the same update for the same effective batch, replicas in sync, rank 0 alone writing,
and the same validation AUC."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from em3.config import Config, ConfigError
from em3.train import train
from em3.train.distributed import Distributed
from em3.train.launch import train_here
from em3.train.trainer import evaluate
from tests.conftest import with_updates
from tests.pipelines.test_pipeline import compile_in_subprocess

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.parametrize(("n_rows", "world"), [(10, 2), (11, 2), (13, 4), (3, 4)])
def test_shards_split_an_epoch_into_equal_interleaved_parts(n_rows, world):
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(n_rows))
    shards = [Distributed(rank=rank, world_size=world).shard(order) for rank in range(world)]
    per_rank = math.ceil(n_rows / world)
    assert [len(shard) for shard in shards] == [per_rank] * world, "every rank takes as many steps"
    interleaved = torch.stack(shards, dim=1).flatten()  # batch k of all ranks together = rows k·B·W … of the order
    assert torch.equal(interleaved[:n_rows], order)
    assert torch.equal(interleaved[n_rows:], order[: per_rank * world - n_rows]), "padding repeats the first rows"
    assert torch.equal(Distributed().shard(order), order)


def test_a_mid_epoch_checkpoint_resumes_only_with_its_world_size():
    two = Distributed(rank=0, world_size=2)
    loop = {"batch": 5, "world_size": 1}
    with pytest.raises(ConfigError, match=r"written mid-epoch by 1 process\(es\); resume it with --nproc_per_node 1"):
        two.check_world_size(loop)
    at_epoch_end = {"batch": 0}  # written by an older version: 1 process
    two.check_world_size(at_epoch_end)
    assert at_epoch_end["world_size"] == 2


@pytest.mark.parametrize(
    ("variant", "backbone", "history_mode"),
    [
        ("id_only", "din", "lora"),
        ("two_stage", "dcn", "lora"),
        ("em3", "din", "lora"),
        ("em3", "dcn", "frozen"),
        ("em3", "din", "full"),
    ],
)
def test_every_parameter_gets_a_gradient(small_config, small_data, tmp_path, variant, backbone, history_mode):
    """DDP runs without find_unused_parameters: a trainable parameter left out of a step would hang it."""
    model = {"variant": variant, "backbone": backbone, "history_mode": history_mode}
    cfg = with_updates(small_config, output_dir=tmp_path, model=model, train={"max_steps": 1})
    trained = train(cfg, small_data).model
    unused = [name for name, p in trained.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


def torchrun(config: Config, out: Path, *script: str) -> None:
    config_file = out / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        *script,
        str(config_file),
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_take_the_one_process_step(small_config, small_data, tmp_path):
    """Without dropout, modality dropout (both random per process), CIC, co-engagement and neighbourhood keeping (whose
    negatives or neighbours are the batch) a step on 2 × 32 rows is the step on 64 rows: the replicas stay identical
    and match one process, validation split over the ranks gives one process's metrics, and only rank 0 writes.
    (Rank 0 alone finishes the saved model, filling unseen items' IDs: off here.) The history's fusions come from
    the catalogue cache, which fuses every item at the same steps in any number of processes: the read-through cache
    fuses an item when *this* process first reads it after a refresh, so ranks reading different rows hold fusions
    of different ages (each within the bound), and a sharded run is not the one-process run to rounding."""
    model = {
        "dropout": 0.0,
        "modality_dropout": 0.0,
        "cic_weight": 0.0,
        "coengagement_weight": 0.0,
        "neighbourhood_weight": 0.0,
        "unseen_ids_from_content": False,
        "content_cache": "catalogue",
        "content_cache_every": 50,
    }
    base = with_updates(small_config, model=model, train={"max_steps": 12})
    single = with_updates(base, output_dir=tmp_path / "one", train={"batch_size": 64})
    one = train(single, small_data).model

    two = with_updates(base, output_dir=tmp_path / "two", train={"batch_size": 32})
    torchrun(two, tmp_path, str(WORKER))
    rank0, rank1 = (torch.load(tmp_path / f"weights_rank{rank}.pt", weights_only=True) for rank in (0, 1))
    reference = one.state_dict()
    assert rank0.keys() == rank1.keys() == reference.keys()
    # The two runs sum the same gradients in a different order, so they differ by float32 rounding (relative ~1e-7)
    # whatever the CPU. Adam divides by the gradient's running scale, so one step moves each parameter by about lr
    # (3e-3) in the direction of its gradient's sign: a relative rounding difference changes a step by about the same
    # relative amount, and 12 steps stay far below 1 % of one step (seen: ≤ 0.03 %, 8e-7). A parameter without a true
    # gradient would step by ~lr in the direction of rounding noise, which differs between runs and between CPUs
    # (seen: 4e-4 = 13 % of a step, before em3.layers dropped the attention biases that softmax ignores); the
    # layers' float64 test (tests/layers/test_true_gradients.py) keeps such parameters out. Hence 1 % of one step.
    one_step = base.train.lr
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"replicas differ in {name}"  # same all-reduced gradient
        torch.testing.assert_close(rank0[name], reference[name], rtol=0, atol=0.01 * one_step, msg=name)
    valid = [(tmp_path / f"valid_rank{rank}.json").read_text() for rank in (0, 1)]
    assert valid[0] == valid[1], "every rank sees the same metrics, hence takes the same decisions"
    valid = json.loads(valid[0])
    expected = evaluate(one, small_data.valid, small_data, single)
    assert valid["auc"] == pytest.approx(expected["auc"], abs=1e-4) and 0.52 < expected["auc"] < 1  # 12 steps learnt
    assert valid["logloss"] == pytest.approx(expected["logloss"], abs=1e-4)
    assert not (tmp_path / "rank1_output").exists(), "rank 1 wrote files"
    metrics = json.loads((tmp_path / "two" / "metrics" / "train.json").read_text())
    assert metrics["steps"] == 12 and (tmp_path / "two" / "model" / "model.safetensors").is_file()
    state = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)
    assert state["loop"]["world_size"] == 2


@pytest.mark.slow
def test_two_processes_reach_the_auc_of_one(small_config, small_data, tmp_path, capfd):
    """The whole default model (dropout, modality dropout, CIC) for 5 epochs, batch 128 in 1 process vs 64 per rank
    × 2 through ``torchrun`` (the pipeline's launcher): the best validation AUCs agree within 0.01. The two runs
    draw different random streams, so they differ like two seeds: −0.0066 to +0.0021 over seeds 0–4 with today's
    default model (standard deviation 0.0035; docs/distributed.md); 0.01 is about three of those."""
    cfg = with_updates(small_config, train={"epochs": 5})
    one = train(with_updates(cfg, output_dir=tmp_path / "one"), small_data).metrics
    two = train_here(with_updates(cfg, output_dir=tmp_path / "two", train={"batch_size": 64}), nproc=2)
    best = [max(epoch["auc"] for epoch in run["valid_history"]) for run in (one, two)]
    assert abs(best[1] - best[0]) <= 0.01, best
    assert two["steps"] == one["steps"] == 5 * math.ceil(len(small_data.train) / 128)
    logged = capfd.readouterr()
    assert logged.out.count("epoch 0: valid auc") == 2, "one line per run: rank 0 alone logs"


def test_pipeline_train_tasks_get_the_gpus_they_train_on(tmp_path):
    """``EM3_TRAIN_GPUS`` at compile time: the task asks for that many GPUs (and CPU and memory per GPU) and its
    component trains with one process per visible GPU (em3.train.launch.train_here)."""
    text = compile_in_subprocess(tmp_path / "p.yaml", EM3_TRAIN_GPUS="4")
    container = next(yaml.safe_load_all(text))["deploymentSpec"]["executors"]["exec-train"]["container"]
    resources = container["resources"]
    accelerator = resources["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "4")
    assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("16", "64Gi")
    assert "result = train_here(cfg)" in container["command"][-1]
