"""The validation report: per table rows in / kept / quarantined against the threshold, and for each failed
expectation its column, count and sample values; as JSON and as Markdown (also the text of the failure)."""

from __future__ import annotations

from typing import Any


def build_report(stages: dict[str, list[dict[str, Any]]], max_bad_fraction: float) -> dict[str, Any]:
    """``stages``: check summaries (em3.validation.engine) by stage name, e.g. ``{"ingest": [...], "validate":
    [...]}``."""
    tables = []
    for stage, summaries in stages.items():
        for summary in summaries:
            if summary["rows_in"] != summary["rows_kept"] + summary["rows_quarantined"]:
                raise ValueError(f"{stage}/{summary['table']}: rows in != rows kept + rows quarantined")
            bad = summary["rows_quarantined"] / summary["rows_in"] if summary["rows_in"] else 0.0
            tables.append({"stage": stage, **summary, "bad_fraction": bad, "passed": bad <= max_bad_fraction})
    return {
        "passed": all(t["passed"] for t in tables),
        "max_bad_fraction": max_bad_fraction,
        "tables": tables,
    }


def failure_message(report: dict[str, Any]) -> str:
    over = ", ".join(f"{t['stage']}/{t['table']} {t['bad_fraction']:.2%}" for t in report["tables"] if not t["passed"])
    return (
        f"data validation failed: more than {report['max_bad_fraction']:.2%} of the rows were quarantined in "
        f"{over}\n\n{render_markdown(report)}"
    )


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Data validation: {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        f"A table fails when more than {report['max_bad_fraction']:.2%} of its rows are quarantined. "
        "Quarantined rows, with a `reason` each: `quarantine/<table>.parquet` in the data folder (ingest), "
        "`quarantine/<table>.parquet` next to this report (validate).",
        "",
        "| stage | table | rows in | kept | quarantined | bad | status |",
        "|---|---|--:|--:|--:|--:|---|",
        *(
            f"| {t['stage']} | {t['table']} | {t['rows_in']} | {t['rows_kept']} | {t['rows_quarantined']} | "
            f"{t['bad_fraction']:.2%} | {'ok' if t['passed'] else 'FAILED'} |"
            for t in report["tables"]
        ),
    ]
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


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
