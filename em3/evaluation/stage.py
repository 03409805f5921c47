"""The evaluate stage: every trained run on the same test split → DESIGN §2 metrics, plots and an HTML report.

Outputs under ``out_dir``: ``evaluate.json`` (metrics per model, relative change against the baseline variant on
the same backbone, AUC by item-popularity bucket; NaN written as null), ``plots/*.png`` and ``report.html``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from em3.atomic import finite_or_null, write_bytes, write_json
from em3.config import EvaluateConfig
from em3.data.content_similarity import unit_content
from em3.data.dataset import RankingData, Split
from em3.data.mapped import MappedRows
from em3.data.token_store import TokenStore
from em3.device import resolve_device
from em3.evaluation.html_report import render_report
from em3.evaluation.modality import auc_by_modality, item_modalities
from em3.evaluation.plots import calibration_plot, popularity_plot, roc_plot, similarity_plot
from em3.evaluation.similarity import behaviour_similarity, interaction_matrix, material_similarity, nonzero_rows
from em3.metrics import auc, ranking_metrics
from em3.models import Ranker
from em3.models.io import load_model_dir
from em3.models.item_tables import item_embedding_tables
from em3.train.trainer import predict

METRICS = (
    "auc",
    "gauc",
    "logloss",
    "cold_auc",
    "cold_gauc",
    "cold_logloss",
    "material_similarity",
    "behaviour_similarity",
    "behaviour_similarity_in_sample",
)
HELD_OUT, IN_SAMPLE = "behaviour_similarity", "behaviour_similarity_in_sample"


@dataclass
class BehaviourReference:
    """What behaviour similarity is measured against: the popular items and every item's user vector."""

    popular_items: np.ndarray  # (n_popular,) item rows
    interactions: sp.csr_array  # (n_rows, n_users) positive counts; items with a zero row are never neighbours


@dataclass
class SharedInputs:
    """What every model is evaluated against: the test split's items, slices and reference vectors."""

    cold_items: np.ndarray  # (n_cold,) items of cold test rows
    raw_content: MappedRows | np.ndarray  # (n_rows, D) float16 frozen content as unit vectors (DESIGN §2)
    behaviour: dict[str, BehaviourReference]  # HELD_OUT: the evaluated period's positives; IN_SAMPLE: training's
    bucket: np.ndarray  # (N,) item-popularity bucket of each test row
    bucket_labels: list[str]
    modality: np.ndarray  # (N,) which modalities each test row's item has (em3.evaluation.modality)


@dataclass
class ModelResult:
    """One run's test predictions and metrics."""

    run_dir: Path
    variant: str
    backbone: str
    seed: int
    metrics: dict[str, float]
    logits: np.ndarray  # (N,) test click logits
    material: np.ndarray  # (n_cold,) per cold item
    behaviour: np.ndarray | None  # (n_popular,) per popular item (held out); None without a content embedding
    auc_by_bucket: list[float]
    auc_by_modality: dict[str, dict[str, float]]


def run_evaluate(run_dirs: list[Path], data: RankingData, cfg: EvaluateConfig, out_dir: Path) -> dict:
    """Evaluate each run's ``model/`` on ``data.test``; write ``evaluate.json``, plots and ``report.html``.

    Models are named ``<variant>_<backbone>``, or by their run directory where several runs share that name.
    Returns what ``evaluate.json`` holds.
    """
    shared = shared_inputs(data, cfg)
    results = [evaluate_run(Path(run_dir), data, cfg, shared) for run_dir in run_dirs]
    named = dict(zip(model_names(results), results, strict=True))
    summary = summarise(named, shared, cfg)
    labels = data.test.label.numpy()
    plots = {
        "plots/roc.png": roc_plot({name: (labels, r.logits) for name, r in named.items()}),
        "plots/calibration.png": calibration_plot({name: (labels, _sigmoid(r.logits)) for name, r in named.items()}),
        "plots/auc_by_popularity.png": popularity_plot(shared.bucket_labels, summary["auc_by_popularity"]["models"]),
        "plots/similarity.png": similarity_plot(
            {name: r.material for name, r in named.items()},
            {name: r.behaviour for name, r in named.items()},
        ),
    }
    summary = finite_or_null(summary)
    for path, png in plots.items():
        write_bytes(out_dir / path, png)
    write_bytes(out_dir / "report.html", render_report(summary, plots).encode())
    write_json(out_dir / "evaluate.json", summary)
    return summary


def shared_inputs(data: RankingData, cfg: EvaluateConfig, split: Literal["test", "valid"] = "test") -> SharedInputs:
    """The inputs every model is scored against, from the evaluated ``split``; ``split="valid"`` chooses settings
    on similarity without reading the test split."""
    train, evaluated = data.train, getattr(data, split)
    bucket, bucket_labels = popularity_buckets(
        data.item_train_interactions[evaluated.item.numpy()], cfg.popularity_buckets
    )
    raw_content = unit_content(data.store)
    in_sample = positive_interactions(train, data, np.ones(data.n_items, dtype=bool))
    return SharedInputs(
        cold_items=np.setdiff1d(evaluated.item[evaluated.cold].numpy(), [0]),
        raw_content=raw_content,
        behaviour={
            HELD_OUT: held_out_reference(evaluated, data, nonzero_rows(raw_content), cfg.popular_quantile),
            IN_SAMPLE: BehaviourReference(  # the first definition, kept for one release (DESIGN §2)
                popular_items(data.item_train_interactions, cfg.popular_quantile, data.store.item_ids), in_sample
            ),
        },
        bucket=bucket,
        bucket_labels=bucket_labels,
        modality=item_modalities(data.store, evaluated.item.numpy()),
    )


def held_out_reference(rows: Split, data: RankingData, has_content: np.ndarray, quantile: float) -> BehaviourReference:
    """Behaviour similarity on interactions no model trained on (DESIGN §2): the user vectors of ``rows`` (the
    evaluated period's positives) of the items with content; the popular items are the top ``1 - quantile`` of those
    items by their positives, ties broken by item id."""
    interactions = positive_interactions(rows, data, has_content)
    counts = np.asarray(interactions.sum(axis=1)).ravel()
    return BehaviourReference(popular_items(counts, quantile, data.store.item_ids), interactions)


def positive_interactions(rows: Split, data: RankingData, items: np.ndarray) -> sp.csr_array:
    """Item × user counts of the positive ``rows`` whose item row is True in ``items`` (n_rows,)."""
    item, user = rows.item.numpy(), rows.user.numpy()
    kept = (rows.label.numpy() > 0) & items[item]
    return interaction_matrix(item[kept], user[kept], data.n_items, data.n_users)


def evaluate_run(run_dir: Path, data: RankingData, cfg: EvaluateConfig, shared: SharedInputs) -> ModelResult:
    """Test metrics, per-item similarities and AUC by popularity bucket of one run's model."""
    model, run_cfg = load_model_dir(run_dir / "model", device=str(resolve_device(cfg.device, "evaluate.device")))
    if (model.shapes.n_items, model.shapes.n_users) != (data.n_items, data.n_users):
        raise ValueError(
            f"{run_dir}: the model was trained on {model.shapes.n_items} item rows and {model.shapes.n_users} users, "
            f"the evaluation data has {data.n_items} and {data.n_users}; evaluate on the data it was trained on"
        )
    test = data.test
    labels = test.label.numpy()
    logits = predict(model, test, data, cfg.batch_size, run_cfg.train.bf16)
    metrics = ranking_metrics(test.user.numpy(), labels, logits, test.cold.numpy())
    similarity, material, behaviour = similarities(model, data.store, shared, cfg)
    metrics.update(similarity)
    in_bucket = [shared.bucket == b for b in range(len(shared.bucket_labels))]
    return ModelResult(
        run_dir=run_dir,
        variant=run_cfg.model.variant,
        backbone=run_cfg.model.backbone,
        seed=run_cfg.seed,
        metrics={name: metrics[name] for name in METRICS},
        logits=logits,
        material=material,
        behaviour=behaviour,
        auc_by_bucket=[auc(labels[rows], logits[rows]) for rows in in_bucket],
        auc_by_modality=auc_by_modality(labels, logits, shared.modality),
    )


def similarities(
    model: Ranker, store: TokenStore, shared: SharedInputs, cfg: EvaluateConfig
) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """Material and behaviour similarity (held out and in-sample) of a model's item embeddings (DESIGN §2), and the
    per-item scores of material and held-out behaviour similarity (None for a model without a content embedding)."""
    # content only where behaviour similarity reads it: the popular items and their candidate neighbours
    readable = np.unique(
        np.concatenate(
            [
                np.r_[ref.popular_items, np.flatnonzero(nonzero_rows(ref.interactions))]
                for ref in shared.behaviour.values()
            ]
        )
    )
    embeddings = item_embedding_tables(model, store, cfg.batch_size, content_rows=readable)
    k = cfg.k_neighbours
    material_mean, material = material_similarity(embeddings["id"], shared.raw_content, shared.cold_items, k)
    metrics, per_item = {"material_similarity": material_mean}, {}
    for name, ref in shared.behaviour.items():
        metrics[name], per_item[name] = math.nan, None
        if "content" in embeddings:
            metrics[name], per_item[name] = behaviour_similarity(
                embeddings["content"], ref.interactions, ref.popular_items, k
            )
    return metrics, material, per_item[HELD_OUT]


def summarise(named: dict[str, ModelResult], shared: SharedInputs, cfg: EvaluateConfig) -> dict:
    """The evaluate.json content (NaN still in it): metrics, baselines, relative changes, AUC by bucket.

    Each model is compared with the run of the baseline variant that has its backbone and seed (like with like);
    a model without exactly one such run gets no relative change."""
    candidates: dict[tuple[str, int], list[str]] = defaultdict(list)
    for name, result in named.items():
        if result.variant == cfg.baseline:
            candidates[result.backbone, result.seed].append(name)
    baselines = {  # model name -> name of the baseline run it is compared with
        name: candidates[r.backbone, r.seed][0]
        for name, r in named.items()
        if r.variant != cfg.baseline and len(candidates[r.backbone, r.seed]) == 1
    }
    buckets = [
        {"train_interactions": text, "rows": int((shared.bucket == b).sum())}
        for b, text in enumerate(shared.bucket_labels)
    ]
    return {
        "models": {
            name: {"variant": r.variant, "backbone": r.backbone, "seed": r.seed, "run_dir": str(r.run_dir), **r.metrics}
            for name, r in named.items()
        },
        "baseline": {"variant": cfg.baseline, "models": baselines},
        "relative_to_baseline": {
            name: relative_change(named[name].metrics, named[baseline].metrics) for name, baseline in baselines.items()
        },
        "auc_by_popularity": {"buckets": buckets, "models": {name: r.auc_by_bucket for name, r in named.items()}},
        "auc_by_modality": {name: r.auc_by_modality for name, r in named.items()},
        "similarity": {
            "k_neighbours": cfg.k_neighbours,
            "cold_items": len(shared.cold_items),
            "popular_items": len(shared.behaviour[HELD_OUT].popular_items),
            "popular_items_in_sample": len(shared.behaviour[IN_SAMPLE].popular_items),
        },
        "test_rows": len(shared.bucket),
    }


def popular_items(item_counts: np.ndarray, quantile: float, item_ids: Sequence[str]) -> np.ndarray:
    """Item rows of the popular items (DESIGN §2): among the items with at least one counted interaction, the top
    ``1 - quantile`` share (at least one item) by that count, ties broken by item id. ``item_counts`` (n_rows,) is
    indexed by item row (row 0 is padding), ``item_ids[i]`` is row ``i + 1``'s id. Returns sorted rows."""
    rows = np.flatnonzero(item_counts[1:] > 0) + 1
    n_popular = math.ceil(round(len(rows) * (1 - quantile), 9))  # round: 0.2 × 10 must not become 2.0000000004
    ranked = rows[np.lexsort((np.asarray(item_ids, dtype=object)[rows - 1], -item_counts[rows]))]
    return np.sort(ranked[:n_popular])


def popularity_buckets(row_counts: np.ndarray, n_buckets: int) -> tuple[np.ndarray, list[str]]:
    """Bucket each test row by its item's training interactions (quantile edges over rows, empty buckets dropped).

    Returns the bucket of each row (N,) and a label per bucket: the range of interactions it holds.
    """
    edges = np.unique(np.quantile(row_counts, np.linspace(0, 1, n_buckets + 1)[1:-1]))
    bucket = np.searchsorted(edges, row_counts, side="right")
    used, bucket = np.unique(bucket, return_inverse=True)
    labels = [f"{row_counts[bucket == b].min():g}–{row_counts[bucket == b].max():g}" for b in range(len(used))]
    return bucket, labels


def relative_change(metrics: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """(model − baseline) / |baseline| per metric; NaN where either is undefined or the baseline is 0."""
    return {
        name: (value - baseline[name]) / abs(baseline[name])
        if math.isfinite(value) and math.isfinite(baseline[name]) and baseline[name] != 0
        else math.nan
        for name, value in metrics.items()
    }


def model_names(results: list[ModelResult]) -> list[str]:
    """``<variant>_<backbone>`` per run; the run directory's name for runs that share one."""
    names = [f"{r.variant}_{r.backbone}" for r in results]
    names = [r.run_dir.name if names.count(name) > 1 else name for r, name in zip(results, names, strict=True)]
    if len(set(names)) < len(names):
        raise ValueError(f"cannot name the evaluated runs apart ({names}); give the run directories distinct names")
    return names


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logits.astype(np.float64)))
