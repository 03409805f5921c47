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
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
    rules: tuple[tuple[str, str], ...] = ()  # (expectation, column) of every rule applied, in order


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
    return Checked(kept, quarantine, summary, tuple((rule.expectation, rule.column) for rule in rules))


class CheckedBatches:
    """One table checked batch by batch (``check_table`` on each): the summaries add up to the table's, failing
    rows go to one quarantine Parquet file as they come, and nothing of the kept rows is held."""

    def __init__(self, table: str, kind: str, quarantine_path: Path):
        counts = {"rows_in": 0, "rows_kept": 0, "rows_quarantined": 0}
        self.summary: dict[str, Any] = {"table": table, "kind": kind, **counts, "failures": []}
        self.quarantine_path = quarantine_path
        self._writer: pq.ParquetWriter | None = None

    def add(self, checked: Checked) -> None:
        for count in ("rows_in", "rows_kept", "rows_quarantined"):
            self.summary[count] += checked.summary[count]
        failures = {(f["expectation"], f["column"]): f for f in self.summary["failures"]}
        for failure in checked.summary["failures"]:
            known = failures.get((failure["expectation"], failure["column"]))
            if known is None:
                self.summary["failures"].append(dict(failure))
                continue
            known["count"] += failure["count"]
            known["sample"] = list(dict.fromkeys(known["sample"] + failure["sample"]))[:SAMPLE_VALUES]
        order = {rule: position for position, rule in enumerate(checked.rules)}  # as one check lists them
        self.summary["failures"].sort(key=lambda f: order.get((f["expectation"], f["column"]), len(order)))
        if len(checked.quarantine):
            if self._writer is None:
                self.quarantine_path.parent.mkdir(parents=True, exist_ok=True)
                schema = pa.Schema.from_pandas(checked.quarantine, preserve_index=False)
                self._writer = pq.ParquetWriter(self.quarantine_path, schema)
            self._writer.write_table(
                pa.Table.from_pandas(checked.quarantine, schema=self._writer.schema, preserve_index=False)
            )

    def close(self) -> dict[str, Any]:
        """Finish the quarantine file (none when no row failed); the table's summary."""
        if self._writer is not None:
            self._writer.close()
        return self.summary


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
    expectations = [(r.expectation, {"column": r.on or r.column, **r.kwargs}) for r in rules]
    results = run_expectations(table, frame.reset_index(drop=True), expectations, parameters, "COMPLETE")
    indices = []  # GX reports positions of the plain index it was given
    for r, outcome in zip(rules, results, strict=True):
        if outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"{table}: {r.reason} could not run: {outcome.exception_info['exception_message']}")
        indices.append(frame.index[outcome.result.get("unexpected_index_list") or []].tolist())
    return indices


def run_expectations(
    name: str,
    frame: pd.DataFrame,
    expectations: Sequence[tuple[str, dict[str, Any]]],
    parameters: Mapping[str, Any] | None = None,
    result_format: str = "SUMMARY",
) -> list[Any]:
    """GX results of ``expectations`` ((snake-case type, kwargs), in order) on ``frame``: one ephemeral context and
    one validation run; ``parameters``: values of the suite parameters (``{"$PARAMETER": name}``) they name."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = context.data_sources.add_pandas(name).add_dataframe_asset(name)
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=name,
            expectations=[
                ExpectationConfiguration(type=t, kwargs=kwargs).to_domain_obj() for t, kwargs in expectations
            ],
        )
    )
    validation = gx.ValidationDefinition(name=name, data=batch.add_batch_definition_whole_dataframe(name), suite=suite)
    result = validation.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=dict(parameters or {}),
        result_format={"result_format": result_format},
    )
    for (expected, kwargs), outcome in zip(expectations, result.results, strict=True):
        config = outcome.expectation_config
        if (config.type, config.kwargs.get("column")) != (expected, kwargs.get("column")):
            raise RuntimeError(f"{name}: GX results out of order at {expected}({kwargs.get('column')})")
    return list(result.results)
