"""The validation report: per table rows in / kept / quarantined against its limit, for each failed expectation
its column, count and sample values, and the catalogue per modality; as JSON and as Markdown (also the text of
the failure).

Tables are of two kinds. ``rows``: a quarantined row is lost (purchases, impressions, catalogue or user rows);
the table fails past ``validation.max_bad_fraction`` or its own ``validation.table_max_bad_fraction``.
``modality``: a quarantined row only masks an item's photo or text (``images``, ``texts``), which the models
handle; such a table fails only past a limit of its own. Missing modalities over the whole catalogue are judged
by ``validation.max_missing_fraction`` (by default never: a catalogue without photos is valid). The drift of the
new day(s) against the days before them (em3.validation.drift) fails the report when a check set to ``fail`` is
over its limit; a ``warn`` check over its limit is recorded and shown.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from em3.config import ValidateConfig
from em3.html_page import html_page
from em3.validation.engine import ROWS
from em3.validation.modalities import MODALITIES, content_markdown


def build_report(
    stages: dict[str, list[dict[str, Any]]], cfg: ValidateConfig, catalogue: dict[str, Any], drift: dict[str, Any]
) -> dict[str, Any]:
    """``stages``: check summaries (em3.validation.engine) by stage name, e.g. ``{"ingest": [...], "validate":
    [...]}``; ``catalogue``: em3.validation.modalities.content_summary of the validated tables; ``drift``:
    em3.validation.drift's section."""
    tables = []
    for stage, summaries in stages.items():
        for summary in summaries:
            if summary["rows_in"] != summary["rows_kept"] + summary["rows_quarantined"]:
                raise ValueError(f"{stage}/{summary['table']}: rows in != rows kept + rows quarantined")
            kind = summary.get("kind", ROWS)
            limit = getattr(cfg.table_max_bad_fraction, summary["table"], None)
            if limit is None and kind == ROWS:
                limit = cfg.max_bad_fraction
            bad = summary["rows_quarantined"] / summary["rows_in"] if summary["rows_in"] else 0.0
            passed = limit is None or bad <= limit
            tables.append(
                {"stage": stage, **summary, "kind": kind, "bad_fraction": bad, "limit": limit, "passed": passed}
            )
    limits = cfg.max_missing_fraction.model_dump()
    missing = {
        modality: {
            "fraction": catalogue["missing_fraction"][modality],
            "limit": limits[modality],
            "passed": catalogue["missing_fraction"][modality] <= limits[modality],
        }
        for modality in MODALITIES
    }
    passed = all(t["passed"] for t in tables) and all(m["passed"] for m in missing.values()) and drift["passed"]
    return {
        "passed": passed,
        "max_bad_fraction": cfg.max_bad_fraction,
        "tables": tables,
        "catalogue": {**catalogue, "missing": missing},
        "drift": drift,
    }


def failure_message(report: dict[str, Any]) -> str:
    over = [
        f"{t['stage']}/{t['table']} quarantined {t['bad_fraction']:.2%} of its rows (limit {t['limit']:.2%})"
        for t in report["tables"]
        if not t["passed"]
    ]
    over += [
        f"{m['fraction']:.2%} of the items have no usable {modality} (limit {m['limit']:.2%})"
        for modality, m in report["catalogue"]["missing"].items()
        if not m["passed"]
    ]
    over += [f"drift: {_drift_line(c)}" for c in report["drift"]["checks"] if c["status"] == "fail"]
    return f"data validation failed: {'; '.join(over)}\n\n{render_markdown(report)}"


def render_markdown(report: dict[str, Any]) -> str:
    catalogue = report["catalogue"]
    lines = [
        f"# Data validation: {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        "A table of kind `rows` loses its quarantined rows and fails past its limit (default "
        f"{report['max_bad_fraction']:.2%}); in a table of kind `modality` a quarantined row only masks an item's "
        "photo or text (the item and its interactions stay), and it fails only past a limit set for it. "
        "Quarantined rows, with a `reason` each: `quarantine/<table>.parquet` in the data folder (ingest), "
        "`quarantine/<table>.parquet` next to this report (validate).",
        "",
        "| stage | table | kind | rows in | kept | quarantined | share | limit | status |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
        *(
            f"| {t['stage']} | {t['table']} | {t['kind']} | {t['rows_in']} | {t['rows_kept']} | "
            f"{t['rows_quarantined']} | {t['bad_fraction']:.2%} | {_limit(t['limit'])} | "
            f"{'ok' if t['passed'] else 'FAILED'} |"
            for t in report["tables"]
        ),
        "",
        "## Catalogue by modality",
        "",
        "An item without a usable photo or text keeps its interactions; the models mask what is missing.",
        "",
        *content_markdown(catalogue),
        "",
        *(
            f"- no usable {modality}: {m['fraction']:.2%} of the items (limit {_limit(m['limit'])}): "
            f"{'ok' if m['passed'] else 'FAILED'}"
            for modality, m in catalogue["missing"].items()
        ),
    ]
    lines += ["", *drift_markdown(report["drift"])]
    for t in report["tables"]:
        if t["failures"]:
            lines += [
                "",
                f"## {t['stage']} / {t['table']}",
                "",
                "| expectation | column | expected | rows | sample values |",
                "|---|---|---|--:|---|",
                *(
                    f"| {f['expectation']} | {f['column']} | {_cell(f['expect'])} | {f['count']} | "
                    f"{', '.join(_cell(repr(v)) for v in f['sample'])} |"
                    for f in t["failures"]
                ),
            ]
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any]) -> str:
    """The Markdown report as one HTML page (the Kubeflow UI's view); HTML in the data is escaped, not rendered."""
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    return html_page("EM3 data validation", markdown.render(render_markdown(report)))


def drift_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The drift checks' scores (``drift_<check>`` or ``drift_<check>_<column>`` for PSI) and counts, as metrics."""
    drift = report["drift"]
    metrics = {"drift_failures": drift["failures"], "drift_warnings": drift["warnings"]}
    for c in drift["checks"]:
        name = f"drift_{c['check']}" + (f"_{c['column']}" if c["check"] == "numeric_psi" else "")
        metrics[name] = c["score"]
    return metrics


def drift_markdown(drift: dict[str, Any]) -> list[str]:
    """The drift section as Markdown lines."""
    lines = ["## Drift of the new days against the days before them", ""]
    if "new_days" not in drift:
        return [*lines, drift["note"].capitalize() + "."]
    lines += [
        f"New day(s) {', '.join(drift['new_days'])} ({drift['new_rows']} rows) against "
        f"{', '.join(drift['reference_days'])} ({drift['reference_rows']} rows). Shares and the label rate are the "
        "means of the rows; the label rate's score is a ratio, a share's an absolute change, the others a PSI.",
        "",
    ]
    if not drift["judged"]:
        lines += [f"Not judged: fewer than {drift['min_rows']} rows on one side (validation.drift.min_rows).", ""]
    lines += [
        "| check | column | new | reference | score | limit | action | status |",
        "|---|---|--:|--:|--:|--:|---|---|",
        *(
            f"| {c['check']} | {c['column']} | {_value(c['new'])} | {_value(c['reference'])} | {_value(c['score'])} | "
            f"{c['limit']:.4g} | {c['action']} | {_status(c['status'])} |"
            for c in drift["checks"]
        ),
    ]
    return lines


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _status(status: str) -> str:
    return status.upper() if status in ("warn", "fail") else status


def _drift_line(check: dict[str, Any]) -> str:
    return (
        f"{check['check']} of {check['column']} is {check['score']:.4g} (new {check['new']:.4g}, reference "
        f"{check['reference']:.4g}; limit {check['limit']:.4g})"
    )


def _limit(limit: float | None) -> str:
    return "none" if limit is None else f"{limit:.2%}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
