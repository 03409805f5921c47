"""The training loop: AdamW, gradient clipping, early stopping on validation AUC, exact resume, bf16 on CUDA.

Outputs under ``cfg.output_dir``: ``checkpoints/last.pt`` (resume point) and ``checkpoints/best.safetensors`` (the
best weights so far) during training; at the end ``model/`` (best weights as safetensors, the config, the data
shapes; written as a whole) and then ``metrics/train.json`` (validation history and test metrics).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model
from tqdm.auto import tqdm

from em3.atomic import write_json
from em3.config import Config, ConfigError, TrainConfig
from em3.data.content_similarity import similarity_scaling, split_similarity
from em3.data.dataset import Batch, RankingData, Split, batch_indices, epoch_order, make_batch
from em3.device import resolve_device
from em3.errors import DataError
from em3.metrics import ranking_metrics
from em3.models import ModelShapes, Ranker
from em3.models.io import save_model_dir, save_weights
from em3.models.item_tables import fill_unseen_item_ids
from em3.progress import progress_bar
from em3.train.checkpoint import load_checkpoint, save_checkpoint
from em3.train.data_source import data_line, training_data
from em3.train.distributed import SINGLE_PROCESS, Distributed, current
from em3.train.optim import Optimizer, clip_gradients, make_optimizer, set_learning_rate
from em3.train.warm_start import table_ids, warm_start

POSTFIX_EVERY = 20  # steps between loss read-outs on the progress bar


@dataclass
class TrainResult:
    model: Ranker
    metrics: dict


def model_shapes(data: RankingData) -> ModelShapes:
    store = data.store
    return ModelShapes(
        n_users=data.n_users,
        n_items=data.n_items,
        context_cardinalities=tuple(data.context_cardinalities),
        image_dim=store.image_dim,
        text_dim=store.text_dim,
        pooled_dim=store.pooled_dim,
        numeric_dim=data.numeric_dim,
    )


def autocast_for(device: torch.device, bf16: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and bf16 else nullcontext()


@torch.no_grad()
def predict(model: Ranker, split: Split, data: RankingData, batch_size: int, bf16: bool = True) -> np.ndarray:
    """Click logits for every row of ``split``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits = []
    model.refresh_content_cache(data.store)
    for index in batch_indices(torch.arange(len(split)), batch_size):
        batch = make_batch(split, index, data.store, model.prediction_inputs).to(device)
        with autocast_for(device, bf16):
            logits.append(model(batch)[0].float().cpu())
    model.train(was_training)
    return torch.cat(logits).numpy() if logits else np.zeros(0, dtype=np.float32)


def evaluate(
    model: Ranker, split: Split, data: RankingData, cfg: Config, ctx: Distributed = SINGLE_PROCESS
) -> dict[str, float]:
    """Ranking metrics on ``split``; under DDP (``ctx``) each rank predicts a share of the rows."""

    def predict_rows(rows: slice) -> np.ndarray:
        return predict(model, split.rows(rows), data, cfg.train.batch_size, cfg.train.bf16)  # views, no copy

    logits = ctx.gather_rows(predict_rows, len(split))
    return ranking_metrics(split.user.numpy(), split.label.numpy(), logits, split.cold.numpy())


def optimisation_step(
    model: Ranker, optimizer: Optimizer, batch: Batch, tc: TrainConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """Forward, backward, gradient clipping and one optimiser step; returns the losses (not applied if not finite)."""
    with autocast_for(device, tc.bf16):
        _, losses = model(batch)
    if torch.isfinite(losses["loss"]):
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        clip_gradients(model.parameters(), tc.grad_clip)
        optimizer.step()
    return losses


def train(cfg: Config, data: RankingData, resume: bool = False, test: bool = True) -> TrainResult:
    """Train ``cfg.model`` on ``data``; with ``resume`` continue exactly from ``checkpoints/last.pt``; ``test=False``
    leaves the test split untouched (hyper-parameter search).
    Under ``torchrun`` (em3.train.distributed) every process trains a shard; rank 0 alone writes and reports."""
    for name in ("train", "valid"):
        if len(getattr(data, name)) == 0:
            raise DataError(f"the {name} split is empty: check the split dates (ingest.valid_start, ingest.test_start)")
    cfg = cfg.model_copy(update={"model": cfg.model.with_objective_weights()})  # saved as trained
    out = Path(cfg.output_dir)
    checkpoint, best_weights = out / "checkpoints" / "last.pt", out / "checkpoints" / "best.safetensors"
    ctx = current()
    source = training_data(cfg)
    if ctx.is_main:
        print(data_line(cfg, source), flush=True)
    torch.manual_seed(cfg.seed)
    device = ctx.device(resolve_device(cfg.train.device, "train.device"))
    shapes = model_shapes(data)
    model = Ranker(cfg.model, shapes).to(device)
    started_from, trained = None, seen_in_training(data)  # trained: the item rows whose ID training learned
    if cfg.train.init_from and not resume:
        started_from, learned_before = warm_start(model, data, cfg)
        trained |= learned_before  # a warm start's window may not show items its model learned
    if model.use_similarity:
        model.set_similarity_scaling(*similarity_scaling(split_similarity(data.store, data.train)))
    optimizer = make_optimizer(model, cfg.train)
    loop = {
        "step": 0,
        "epoch": 0,
        "batch": 0,
        "best_auc": -math.inf,
        "best_epoch": None,  # -1: the warm-started weights, before any training
        "bad_epochs": 0,
        "history": [],
        "stopped_by": None,
        "warm_start": started_from,  # in the checkpoint: a resumed run still says where it began
        "trained_items": torch.from_numpy(trained),  # in the checkpoint: a resumed run fills what this one would
    }
    if resume:
        if not checkpoint.exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint}; run without --resume first")
        loop.update(load_checkpoint(checkpoint, model, optimizer))  # a key older checkpoints lack keeps its start
        model.resume_content_cache(data.store)
        if loop["stopped_by"] == "max_steps":
            loop["stopped_by"] = None  # continue up to the (new) step budget
    elif ctx.is_main:  # a fresh run never reports an earlier run's weights or metrics
        best_weights.unlink(missing_ok=True)
        (out / "metrics" / "train.json").unlink(missing_ok=True)
        shutil.rmtree(out / "model", ignore_errors=True)
    ctx.check_world_size(loop)
    if ctx.world_size > 1 and cfg.train.id_table_updates == "rows":
        raise ConfigError(
            "train.id_table_updates: rows gives the ID tables sparse gradients, which DistributedDataParallel "
            "over NCCL cannot all-reduce; use dense under torchrun"
        )
    ctx.seed_rank(cfg.seed)
    step_model = ctx.wrap(model)
    if started_from is not None:  # a daily run never ends worse on validation than the model it started from
        _validate(model, data, cfg, loop, best_weights, ctx, epoch=-1)

    tc = cfg.train
    steps_per_epoch = math.ceil(ctx.shard_rows(len(data.train)) / tc.batch_size)
    total = min(tc.epochs * steps_per_epoch, tc.max_steps or math.inf)
    show = tc.progress and ctx.is_main
    bar = progress_bar(total=total, initial=loop["step"], desc=cfg.name, unit="step", disable=not show)
    started = time.perf_counter()
    model.train()
    while loop["stopped_by"] is None:
        order = ctx.shard(epoch_order(len(data.train), cfg.seed, loop["epoch"]))
        for index in batch_indices(order, tc.batch_size, loop["batch"]):
            if tc.max_steps and loop["step"] >= tc.max_steps:
                loop["stopped_by"] = "max_steps"
                break
            if model.content_cache_every and loop["step"] % model.content_cache_every == 0:
                model.refresh_content_cache(data.store)
            batch = make_batch(data.train, index, data.store, model.content_inputs).to(device)
            set_learning_rate(optimizer, tc, loop["step"], total)
            losses = optimisation_step(step_model, optimizer, batch, tc, device)
            if not torch.isfinite(losses["loss"]):
                loss, step = losses["loss"].item(), loop["step"]
                raise FloatingPointError(f"{cfg.name}: loss is {loss} at step {step}; lower train.lr or check inputs")
            loop["step"] += 1
            loop["batch"] += 1
            bar.update()
            if loop["step"] % POSTFIX_EVERY == 0:  # .item() waits for the GPU: not on every step
                bar.set_postfix({name: f"{value.item():.4f}" for name, value in losses.items()}, refresh=False)
            if loop["step"] % tc.checkpoint_every == 0 and ctx.is_main:
                save_checkpoint(checkpoint, model, optimizer, loop)
        else:
            _end_epoch(model, data, cfg, loop, best_weights, ctx)
        if ctx.is_main:
            save_checkpoint(checkpoint, model, optimizer, loop)
    bar.close()
    if not ctx.is_main:  # the replicas hold rank 0's weights; rank 0 reports
        return TrainResult(model=model, metrics={})

    if best_weights.exists():  # else stopped before the first validation: the current weights are the model
        load_model(model, str(best_weights), device=str(device))
    model.eval()  # trained: the fill and the evaluations below read it as served
    trained = loop["trained_items"].numpy()
    if cfg.model.unseen_ids_from_content:
        fill_unseen_item_ids(model, data.store, trained)
    # whole or not at all; metrics/train.json marks the run done
    save_model_dir(out / "model", model, cfg, shapes, table_ids(data, trained))
    metrics = {
        "name": cfg.name,
        "seed": cfg.seed,
        "variant": cfg.model.variant,
        "backbone": cfg.model.backbone,
        "steps": loop["step"],
        "best_epoch": loop["best_epoch"],
        "stopped_by": loop["stopped_by"],
        "train_seconds": round(time.perf_counter() - started, 2),
        "warm_start": loop.get("warm_start"),
        "parameters": model.parameter_counts(),
        "data": source,
        "inputs": {**data.inputs, "modalities": data.store.modalities},
        "valid_history": loop["history"],
        "valid": evaluate(model, data.valid, data, cfg),
        "test": evaluate(model, data.test, data, cfg) if test else None,
    }
    write_json(out / "metrics" / "train.json", metrics)
    return TrainResult(model=model, metrics=metrics)


def seen_in_training(data: RankingData) -> np.ndarray:
    """(n_items,) True for the item rows that some training row shows as its target."""
    return np.bincount(data.train.item.numpy(), minlength=data.n_items) > 0


@contextmanager
def as_reported(model: Ranker, data: RankingData, cfg: Config, trained: np.ndarray) -> Iterator[None]:
    """The model as training will report it: with ``model.unseen_ids_from_content``, the items whose ID no training
    learned (``trained`` False) get their ID from their content (``fill_unseen_item_ids``), as after training;
    afterwards the ID table and the map are restored, so that training goes on exactly as without the pass.
    Validation reads the model this way, so the epoch it chooses is the model it reports (one rule for choice and
    report)."""
    if not (cfg.model.unseen_ids_from_content and model.uses_content):
        yield
        return
    saved = model.item_embed.weight.detach().clone(), model.content_to_id.clone()
    was_training = model.training
    model.eval()
    fill_unseen_item_ids(model, data.store, trained)
    model.train(was_training)
    try:
        yield
    finally:
        with torch.no_grad():
            model.item_embed.weight.copy_(saved[0])
            model.content_to_id.copy_(saved[1])


def _validate(
    model: Ranker, data: RankingData, cfg: Config, loop: dict, best_weights: Path, ctx: Distributed, epoch: int
) -> None:
    """Validate the model as it would be reported (``as_reported``) and keep the best weights; ``epoch`` -1 is the
    warm-started model before training (every rank gets the same metrics, hence takes the same decisions; rank 0
    logs and saves)."""
    with as_reported(model, data, cfg, loop["trained_items"].numpy()):
        valid = evaluate(model, data.valid, data, cfg, ctx)
    loop["history"].append({"epoch": epoch, "step": loop["step"], **valid})
    if ctx.is_main:
        when = "warm start" if epoch < 0 else f"epoch {epoch}"
        tqdm.write(f"{cfg.name} {when}: valid auc {valid['auc']:.4f} gauc {valid['gauc']:.4f}")
    if valid["auc"] > loop["best_auc"]:
        loop.update(best_auc=valid["auc"], best_epoch=epoch, bad_epochs=0)
        if ctx.is_main:
            save_weights(model, best_weights)
    else:
        loop["bad_epochs"] += 1


def _end_epoch(model: Ranker, data: RankingData, cfg: Config, loop: dict, best_weights: Path, ctx: Distributed) -> None:
    """Validate (``_validate``), decide on early stopping, and move the loop to the next epoch."""
    _validate(model, data, cfg, loop, best_weights, ctx, loop["epoch"])
    loop["epoch"] += 1
    loop["batch"] = 0
    if loop["bad_epochs"] >= cfg.train.patience:
        loop["stopped_by"] = "early_stopping"
    elif loop["epoch"] >= cfg.train.epochs:
        loop["stopped_by"] = "epochs"
