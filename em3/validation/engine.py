"""Run a list of rules through Great Expectations and split a table into kept rows and quarantined rows.

A table is checked as two aligned frames: ``rows`` (the values as read, which go to the quarantine) and
``checked`` (the same rows parsed to types, plus helper columns for checks GX has no expectation for, such as
"the id is known"). Every rule is a GX column-map expectation; a row fails when it is in the expectation's
unexpected index list, and its ``reason`` names each failed expectation and column, what it expects and the value
it got. A raw table's rows carry their place in the source file (the index ``source_line`` or ``source_row``),
and so do its quarantined rows (a column of that name).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SAMPLE_VALUES = 5
SAMPLE_CHARS = 80


@dataclass(frozen=True)
class Rule:
    """One expectation: ``expectation`` (GX snake-case name) with ``kwargs`` on column ``on`` of the checked
    frame, reported as a rule about input column ``column`` that expects ``expect`` (in words)."""

    column: str
    expect: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    on: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.expectation}({self.column}): {self.expect}"


@dataclass
class Checked:
    """Outcome of checking a table: typed rows that passed, failing input rows (plus ``reason``), summary."""

    kept: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict[str, Any]


SOURCE_POSITIONS = ("source_line", "source_row")  # index names of raw tables: CSV line (header = 1), Parquet row
ROWS, MODALITY = "rows", "modality"  # table kinds: quarantined rows are lost, or only a modality is masked


def check_table(
    table: str,
    rows: pd.DataFrame,
    checked: pd.DataFrame,
    rules: Sequence[Rule],
    kind: str = ROWS,
    parameters: Mapping[str, Any] | None = None,
) -> Checked:
    """Apply ``rules`` to ``checked``; rows in = rows kept + rows quarantined (verified). ``kind``: ``rows`` when
    a quarantined row is lost, ``modality`` when it only masks an item's image or text (the item stays).
    ``parameters``: the values of the GX suite parameters (``{"$PARAMETER": name}``) that ``rules`` name."""
    if not rows.index.equals(checked.index) or not rows.index.is_unique:
        raise ValueError(f"{table}: rows and checked frames must share one unique index")
    failures, reasons = [], pd.Series("", index=rows.index, dtype=object)
    for rule, bad in zip(rules, _unexpected_indices(table, checked, rules, parameters or {}), strict=True):
        if not bad:
            continue
        values = rows[rule.column] if rule.column in rows else checked[rule.on or rule.column]
        reasons.loc[bad] += "; " + rule.reason + ", got " + values.loc[bad].map(_shown)
        sample = [_short(v) for v in pd.unique(values.loc[bad])[:SAMPLE_VALUES]]
        failures.append(
            {
                "expectation": rule.expectation,
                "column": rule.column,
                "expect": rule.expect,
                "count": len(bad),
                "sample": sample,
            }
        )
    failed = reasons != ""
    kept = checked.loc[~failed]
    quarantine = rows.loc[failed].assign(reason=reasons[failed].str.removeprefix("; "))
    if rows.index.name in SOURCE_POSITIONS:  # where the row is in its file (em3.ingest.raw)
        quarantine = quarantine.reset_index()
    if len(kept) + len(quarantine) != len(rows):
        raise RuntimeError(f"{table}: {len(rows)} rows in != {len(kept)} kept + {len(quarantine)} quarantined")
    summary = {
        "table": table,
        "kind": kind,
        "rows_in": len(rows),
        "rows_kept": len(kept),
        "rows_quarantined": len(quarantine),
        "failures": failures,
    }
    return Checked(kept, quarantine, summary)


def _shown(value: Any) -> str:
    """A failing value as a reason quotes it: its repr, shortened."""
    return _short(repr(value))


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _unexpected_indices(
    table: str, frame: pd.DataFrame, rules: Sequence[Rule], parameters: Mapping[str, Any]
) -> list[list[Any]]:
    """Index labels of the rows failing each rule, in rule order (one GX validation run per table)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = context.data_sources.add_pandas(table).add_dataframe_asset(table)
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=table,
            expectations=[
                ExpectationConfiguration(
                    type=r.expectation, kwargs={"column": r.on or r.column, **r.kwargs}
                ).to_domain_obj()
                for r in rules
            ],
        )
    )
    validation = gx.ValidationDefinition(
        name=table, data=batch.add_batch_definition_whole_dataframe(table), suite=suite
    )
    result = validation.run(
        batch_parameters={"dataframe": frame.reset_index(drop=True)},  # GX reports positions of a plain index
        expectation_parameters=dict(parameters),
        result_format={"result_format": "COMPLETE"},
    )
    indices = []
    for r, outcome in zip(rules, result.results, strict=True):
        config = outcome.expectation_config
        if (config.type, config.kwargs["column"]) != (r.expectation, r.on or r.column):
            raise RuntimeError(f"{table}: GX results out of order at {r.reason}")
        if outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"{table}: {r.reason} could not run: {outcome.exception_info['exception_message']}")
        indices.append(frame.index[outcome.result.get("unexpected_index_list") or []].tolist())
    return indices
