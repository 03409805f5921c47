"""The expectation suites as Great Expectations' own suite files, read at run time: ``<suites dir>/raw/<table>.json``
(ingest's checks of the input files) and ``<suites dir>/canonical/<table>.json`` (validate's checks of the tables),
each as ``ExpectationSuite.to_json_dict()`` writes it. A changed file changes what the stages check, with no code
change. The suites dir is ``ingest.suites_dir``, by default the repository's ``data_validation/`` (shipped in the
wheel as ``em3/validation/data_validation``).

Besides GX's own fields, em3 reads:
- ``{"$PARAMETER": name}`` in kwargs: a GX suite parameter, filled from the ingest settings (``suite_parameters``);
  ``{name}`` in an expectation's ``description`` (the reason given for a quarantined row) likewise;
- ``meta.input_column``: the input column a failing row is reported under when ``kwargs.column`` is a helper column
  that em3 computes for what GX has no expectation for (an id is known, repeated, an image decodes);
- ``meta.optional: true``: the column may be absent from the table, and the expectation then does not run;
- ``meta.for_each``: the name of a list of columns (``FOR_EACH``) that em3 fills per table; the expectation runs
  once per column, with ``{column}`` in ``kwargs.column`` and ``meta.input_column`` standing for it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from em3.config import ConfigError, IngestConfig
from em3.validation.engine import Rule

SHIPPED = Path(__file__).parent / "data_validation"  # a link to data_validation/ in a checkout, a copy in a wheel
STAGES = ("raw", "canonical")
PARAMETER = "$PARAMETER"
COLUMN = "{column}"
FOR_EACH = ("numeric_user_columns",)


@dataclass(frozen=True)
class Suite:
    """One table's rules as a suite file states them, and the suite parameters they name (GX substitutes them)."""

    rules: tuple[Rule, ...]
    parameters: dict[str, Any]


def suites_dir(cfg: IngestConfig) -> Path:
    return Path(cfg.suites_dir) if cfg.suites_dir else SHIPPED


def suite_parameters(cfg: IngestConfig) -> dict[str, Any]:
    """What suite files may name: ``{"$PARAMETER": name}`` in kwargs, ``{name}`` in descriptions."""
    return {
        "earliest_ts": pd.Timestamp(cfg.min_date) if cfg.min_date else None,  # None: no floor
        "latest_ts": pd.Timestamp(cfg.max_date) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1),
        "date_range": f"from {cfg.min_date} to {cfg.max_date}" if cfg.min_date else f"up to {cfg.max_date}",
        "min_date": cfg.min_date,
        "max_date": cfg.max_date,
        "max_text_chars": cfg.max_text_chars,
        "valid_start": cfg.valid_start,
        "test_start": cfg.test_start,
    }


def load_suite(
    cfg: IngestConfig,
    stage: str,
    table: str,
    columns: Collection[str],
    for_each: Mapping[str, Sequence[str]] | None = None,
) -> Suite:
    """The rules of ``<suites dir>/<stage>/<table>.json`` for a table with ``columns`` (the checked frame's, helper
    columns included); a missing or malformed file is a one-line ConfigError naming it."""
    path = suites_dir(cfg) / stage / f"{table}.json"
    document = _read(path, stage, table, cfg)
    parameters = suite_parameters(cfg)
    rules = []
    for number, entry in enumerate(document["expectations"], 1):
        where = f"{path}: expectation {number}"
        rules += _rules(entry, where, parameters, columns, {**dict.fromkeys(FOR_EACH, ()), **(for_each or {})})
    used = {value[PARAMETER] for r in rules for value in r.kwargs.values() if _is_parameter(value)}
    return Suite(tuple(rules), {name: parameters[name] for name in sorted(used)})


def _read(path: Path, stage: str, table: str, cfg: IngestConfig) -> dict[str, Any]:
    expected = f"the Great Expectations suite {stage}.{table} (a JSON object: name, expectations)"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        folder = f"ingest.suites_dir {cfg.suites_dir}" if cfg.suites_dir else "the suites shipped with em3"
        raise ConfigError(f"{path}: suite file not found; expected {expected} in {folder}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc}); expected {expected}") from None
    if not isinstance(document, dict) or not isinstance(document.get("expectations"), list):
        raise ConfigError(f"{path}: expected {expected} with a list of expectations")
    if document.get("name") != f"{stage}.{table}":
        raise ConfigError(f"{path}: suite name {document.get('name')!r}; expected '{stage}.{table}'")
    return document


def _rules(
    entry: Any,
    where: str,
    parameters: Mapping[str, Any],
    columns: Collection[str],
    lists: Mapping[str, Sequence[str]],
) -> list[Rule]:
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        expectation = ExpectationConfiguration(**entry).to_domain_obj()  # GX checks the type and its kwargs
    except Exception as exc:  # GX raises several types (unknown type, pydantic errors, TypeError); all one line
        message = " ".join(str(exc).split())
        raise ConfigError(f"{where}: not a valid Great Expectations expectation ({message})") from None
    if not isinstance(expectation, ColumnMapExpectation):
        raise ConfigError(
            f"{where}: {entry['type']} is not a column-map expectation (expect_column_values_...); "
            "only those name the failing rows that em3 quarantines"
        )
    kwargs = {key: value for key, value in entry["kwargs"].items() if key != "column"}
    if unknown := [v[PARAMETER] for v in kwargs.values() if _is_parameter(v) and v[PARAMETER] not in parameters]:
        raise ConfigError(f"{where}: unknown suite parameter(s) {unknown}; expected one of {sorted(parameters)}")
    meta = entry.get("meta") or {}
    try:
        expect = entry["description"].format_map(parameters) if entry.get("description") else json.dumps(kwargs)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{where}: description {entry['description']!r} cannot be filled in ({type(exc).__name__}: {exc}); "
            f"it may name {sorted(parameters)} as {{name}}, and a brace is written {{{{ or }}}}"
        ) from None
    names: Sequence[str | None] = [None]
    if "for_each" in meta:
        if meta["for_each"] not in lists:
            raise ConfigError(f"{where}: meta.for_each {meta['for_each']!r}; expected one of {sorted(lists)}")
        names = lists[meta["for_each"]]
    rules = []
    for name in names:
        on = _column(entry["kwargs"]["column"], name)
        column = _column(meta.get("input_column", on), name)
        if on not in columns:
            if meta.get("optional"):
                continue
            raise ConfigError(
                f"{where}: column {on!r} is not in the table (columns: {', '.join(columns)}); "
                'add "optional": true to its meta if the column may be absent'
            )
        rules.append(Rule(column, expect, entry["type"], kwargs, None if on == column else on))
    return rules


def _column(template: str, name: str | None) -> str:
    return template if name is None else template.replace(COLUMN, name)


def _is_parameter(value: Any) -> bool:
    return isinstance(value, dict) and PARAMETER in value
