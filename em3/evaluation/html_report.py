"""The evaluation report: one self-contained HTML page (PNGs embedded as data URIs) with the metric tables."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape

from em3.html_page import html_page

HIGHER_IS_BETTER = {"logloss": False, "cold_logloss": False}

CAPTIONS = {
    "plots/roc.png": "ROC curves of every model on the test split.",
    "plots/calibration.png": "Calibration: observed click rate against predicted probability (10 equal-width bins).",
    "plots/auc_by_popularity.png": "Test AUC by the training interactions of the row's item (quantile buckets).",
    "plots/similarity.png": "Per-item material similarity (cold items) and held-out behaviour similarity (popular "
    "items of the test period).",
}


def render_report(summary: Mapping, plots: Mapping[str, bytes]) -> str:
    """HTML of ``summary`` (what evaluate.json holds; null = undefined) with ``plots`` (relative path -> PNG)."""
    models = summary["models"]
    metrics = [key for key in next(iter(models.values()), {}) if key not in ("variant", "backbone", "seed", "run_dir")]
    baseline = summary["baseline"]
    similarity = summary["similarity"]
    buckets = summary["auc_by_popularity"]["buckets"]
    sections = [
        "<h1>EM3 evaluation</h1>",
        f"<p>{summary['test_rows']:,} test rows; similarity over k = {similarity['k_neighbours']} neighbours, "
        f"{similarity['cold_items']:,} cold items, {similarity['popular_items']:,} popular items (behaviour "
        "similarity: the test period's positives, which no model trained on; <em>in-sample</em>: the first "
        f"definition, on training's positives and its {similarity['popular_items_in_sample']:,} popular items).</p>",
        "<h2>Test metrics</h2>",
        _table(
            ["model", "variant", "backbone", "seed", *metrics],
            [
                [
                    escape(name),
                    escape(m["variant"]),
                    escape(m["backbone"]),
                    escape(str(m["seed"])),
                    *(_metric(m, key) for key in metrics),
                ]
                for name, m in models.items()
            ],
        ),
        "<p>Behaviour similarity is n/a for models without a content embedding (<code>id_only</code>): it is "
        "measured in the content-embedding space. Material similarity uses the item-ID embeddings, which every "
        "model has.</p>",
        f"<h2>Relative change against <code>{escape(baseline['variant'])}</code></h2>",
        _relative_table(summary["relative_to_baseline"], metrics, baseline["models"]),
        "<h2>AUC by item popularity</h2>",
        _table(
            ["model", *(f"{b['train_interactions']} ({b['rows']:,} rows)" for b in buckets)],
            [[escape(name), *map(_number, values)] for name, values in summary["auc_by_popularity"]["models"].items()],
        ),
        "<h2>AUC by the modalities of the row's item</h2>",
        _modality_table(summary["auc_by_modality"]),
        "<h2>Plots</h2>",
        *(_figure(path, png) for path, png in plots.items()),
    ]
    return html_page("EM3 evaluation", "\n".join(sections))


def _modality_table(by_model: Mapping[str, Mapping[str, Mapping]]) -> str:
    first = next(iter(by_model.values()), {})  # every model is scored on the same rows
    slices = list(first)
    header = [f"{name} ({first[name]['rows']:,} rows)" for name in slices]  # _table escapes the header
    return _table(
        ["model", *header],
        [[escape(model), *(_number(per[name]["auc"]) for name in slices)] for model, per in by_model.items()],
    )


def _relative_table(relative: Mapping[str, Mapping[str, float | None]], metrics: list[str], baselines: Mapping) -> str:
    if not relative:
        return "<p>No model to compare: no run of the baseline variant with the same backbone and seed.</p>"
    rows = []
    for name, changes in relative.items():
        cells = []
        for key in metrics:
            change = changes[key]
            if change is None or change == 0:
                cells.append(_percent(change))
            else:
                better = (change > 0) == HIGHER_IS_BETTER.get(key, True)
                cells.append(f'<span class="{"better" if better else "worse"}">{_percent(change)}</span>')
        rows.append([escape(name), escape(baselines[name]), *cells])
    note = "Each model against the baseline run of the same backbone and seed. Lower logloss is better."
    return _table(["model", "against", *metrics], rows) + f"<p>{note}</p>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table: header texts are escaped here, row cells are HTML already."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    lines = ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(lines) + "\n</table>"


def _figure(path: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    caption = escape(CAPTIONS.get(path, ""))
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(path)}">'
        f'<figcaption>{caption} <a href="{escape(path)}">{escape(path)}</a></figcaption></figure>'
    )


def _metric(model: Mapping, key: str) -> str:
    if model[key] is None and key.startswith("behaviour_similarity") and model["variant"] == "id_only":
        return "n/a (no content embedding)"
    return _number(model[key])


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f} %"
