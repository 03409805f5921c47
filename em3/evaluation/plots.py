"""Evaluation plots as PNG bytes: ROC, calibration, AUC by item popularity, similarity distributions.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state) and rendered by the Agg canvas.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np


def roc_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """ROC curves of all models on one axes; ``curves`` maps a model to (labels, scores) of the same rows."""
    from em3.metrics import auc

    fig, ax = _figure()
    for name, (labels, scores) in curves.items():
        fpr, tpr = roc_points(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(labels, scores):.4f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the test split")
    return _png(fig, ax)


def calibration_plot(predictions: Mapping[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 10) -> bytes:
    """Reliability diagram: observed click rate against mean predicted probability, in equal-width bins."""
    fig, ax = _figure()
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (labels, probabilities) in predictions.items():
        bins = np.clip(np.digitize(probabilities, edges[1:-1]), 0, n_bins - 1)  # (N,)
        counts = np.bincount(bins, minlength=n_bins)
        used = counts > 0
        predicted = np.bincount(bins, weights=probabilities, minlength=n_bins)[used] / counts[used]
        observed = np.bincount(bins, weights=labels, minlength=n_bins)[used] / counts[used]
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed click rate", title="Calibration on the test split")
    return _png(fig, ax)


def popularity_plot(bucket_labels: list[str], auc_by_bucket: Mapping[str, list[float]]) -> bytes:
    """Test AUC per item-popularity bucket (grouped bars, one colour per model); NaN buckets are left empty."""
    fig, ax = _figure()
    positions = np.arange(len(bucket_labels))
    width = 0.8 / max(len(auc_by_bucket), 1)
    for offset, (name, values) in enumerate(auc_by_bucket.items()):
        heights = np.array([np.nan if value is None else value for value in values], dtype=float)
        ax.bar(positions + (offset - (len(auc_by_bucket) - 1) / 2) * width, heights, width, label=name)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(positions, bucket_labels)
    ax.set(xlabel="training interactions of the test row's item", ylabel="AUC", title="AUC by item popularity")
    return _png(fig, ax)


def similarity_plot(material: Mapping[str, np.ndarray], behaviour: Mapping[str, np.ndarray | None]) -> bytes:
    """Distributions of per-item material similarity (cold items) and behaviour similarity (popular items).

    Both map every model (in the same order) to its per-item scores; behaviour is None without a content embedding.
    """
    fig, axes = _figure(ncols=2, size=(12, 4.5))
    panels = (
        (axes[0], material, "material similarity of cold items"),
        (axes[1], behaviour, "behaviour similarity of popular items"),
    )
    for ax, values, title in panels:
        for colour, (name, per_item) in enumerate(values.items()):  # the same colour per model in both panels
            finite = per_item[np.isfinite(per_item)] if per_item is not None else []
            if len(finite):
                label = f"{name} (mean {finite.mean():.3f})"
                ax.hist(finite, bins=30, histtype="step", linewidth=1.5, color=f"C{colour}", label=label)
        ax.set(xlabel="mean cosine to the k nearest items", ylabel="items", title=title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no scores (e.g. no model with a content embedding)", ha="center", transform=ax.transAxes)
    return _png(fig)


def seed_spread_plot(aucs: Mapping[str, Mapping[str, Sequence[float]]], baseline: str) -> bytes:
    """Test AUC of each configuration per backbone over seeds (mean bar, one dot per seed), the baseline's mean as a
    dashed line: ``aucs[backbone][config]`` is the list of per-seed AUCs."""
    fig, axes = _figure(ncols=len(aucs), size=(6.5 * len(aucs), 5))
    for ax, (backbone, configs) in zip(np.atleast_1d(axes), aucs.items(), strict=True):
        names = list(configs)
        for i, name in enumerate(names):
            values = np.asarray(configs[name], dtype=float)
            ax.bar(i, np.nanmean(values), color="tab:orange" if name == baseline else "tab:blue", alpha=0.6)
            ax.plot(np.full(len(values), i), values, "k.", markersize=4)
        if baseline in configs:
            ax.axhline(np.nanmean(configs[baseline]), color="tab:orange", linestyle="--", linewidth=1)
        finite = np.concatenate([np.asarray(v, dtype=float) for v in configs.values()])
        finite = finite[np.isfinite(finite)]
        if len(finite):
            ax.set_ylim(finite.min() - 0.01, finite.max() + 0.01)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set(ylabel="test AUC", title=f"{backbone}: test AUC over seeds")
    return _png(fig)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score threshold, from (0, 0) to (1, 1)."""
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="stable")
    sorted_scores, sorted_labels = np.asarray(scores)[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(order) - 1]
    true_pos = np.cumsum(sorted_labels)[last_of_tie]
    false_pos = last_of_tie + 1 - true_pos
    tpr = np.r_[0, true_pos / max(labels.sum(), 1)]
    fpr = np.r_[0, false_pos / max((~labels).sum(), 1)]
    return fpr, tpr


def _figure(ncols: int = 1, size: tuple[float, float] = (6.5, 5)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(1, ncols)


def _png(fig, ax=None) -> bytes:
    """Add the legend (if ``ax``) and render the figure to PNG bytes (Agg)."""
    if ax is not None:
        ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
