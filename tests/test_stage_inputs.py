"""Stage guards (em3.validation.inputs): features and train refuse tables that failed validation, whose validation
is missing or stale, or that come from another source than ingest.source; --allow-unvalidated overrides loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from em3.cli import main
from em3.config import IngestConfig, ValidateConfig
from em3.data.token_store import TokenStore
from em3.ingest import run_ingest
from em3.validation import DataError, run_validate
from em3.validation.inputs import RECORD, check_stage_inputs, input_problems, manifest_digest
from tests.data.conftest import HM_SPLIT, write_tiny_hm

SOURCE = "data/raw"


def tables(root: Path, source: str = SOURCE, passed: bool | None = True, record: bool = True) -> tuple[Path, Path]:
    """A tables folder with a manifest naming ``source``, an items table whose items have neither image nor text
    (the features stage then loads no encoder), and, unless ``passed`` is None, a validation report."""
    tables_dir, validation_dir = root / "tables", root / "validation"
    tables_dir.mkdir(parents=True)
    (tables_dir / "manifest.json").write_text(json.dumps({"source": source, "rows": {}}))
    pd.DataFrame({"item_id": ["a", "b"], "text": ["", ""], "image_path": ["", ""]}).to_parquet(
        tables_dir / "items.parquet"
    )
    if passed is not None:
        validation_dir.mkdir()
        report = {"passed": passed, "tables": []}
        if record:
            report[RECORD] = {"manifest_sha256": manifest_digest(tables_dir), "source": source}
        (validation_dir / "report.json").write_text(json.dumps(report))
    return tables_dir, validation_dir


def test_validated_tables_of_the_configured_source_pass(tmp_path):
    tables_dir, validation_dir = tables(tmp_path)
    assert input_problems(tables_dir, validation_dir, SOURCE) == []
    assert input_problems(tables_dir, validation_dir, f"./{SOURCE}/") == [], "the same folder, spelled differently"
    check_stage_inputs("features", tables_dir, validation_dir, SOURCE, allow=False)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no_manifest", "manifest.json: not found"),
        ("other_source", "ingested from 'data/other', but ingest.source is 'data/raw'"),
        ("no_report", "no validation report"),
        ("unreadable_report", "unreadable validation report"),
        ("failed", "failed validation"),
        ("stale", "stale"),
        ("no_record", "stale"),
    ],
)
def test_each_problem_stops_the_stage_with_one_line_naming_it(tmp_path, case, expected):
    tables_dir, validation_dir = tables(
        tmp_path,
        source="data/other" if case == "other_source" else SOURCE,
        passed=None if case == "no_report" else case != "failed",
        record=case != "no_record",
    )
    if case == "no_manifest":
        (tables_dir / "manifest.json").unlink()
    if case == "unreadable_report":
        (validation_dir / "report.json").write_text("{not json")
    if case == "stale":  # ingest ran again after validate
        (tables_dir / "manifest.json").write_text(json.dumps({"source": SOURCE, "rows": {"items": 2}}))
    with pytest.raises(DataError) as error:
        check_stage_inputs("train", tables_dir, validation_dir, SOURCE, allow=False)
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert message.startswith("train refused:")
    # the override is suggested only where there are tables it could run on
    assert ("--allow-unvalidated" in message) == (case != "no_manifest")
    if case == "no_manifest":
        with pytest.raises(DataError, match="manifest.json: not found"):
            check_stage_inputs("train", tables_dir, validation_dir, SOURCE, allow=True)


def test_the_override_runs_the_stage_and_says_so_loudly_once(tmp_path, capsys):
    tables_dir, validation_dir = tables(tmp_path, passed=False, record=False)  # two problems: failed and stale
    check_stage_inputs("features", tables_dir, validation_dir, SOURCE, allow=True)
    err = capsys.readouterr().err
    assert err.startswith("WARNING: em3 features runs on unchecked inputs because of --allow-unvalidated")
    assert "failed validation" in err and "stale" in err
    assert err.count("WARNING") == 1 and len(err.splitlines()) == 1


def cli_args(root: Path, tables_dir: Path, validation_dir: Path, *extra: str) -> list[str]:
    settings = {
        "data.tables_dir": tables_dir,
        "data.validation_dir": validation_dir,
        "data.store_dir": root / "store",
        "ingest.source": SOURCE,
        "features.progress": "false",
        "data.source": "tables",
        "output_dir": root / "run",
        "train.progress": "false",
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")] + list(extra)


@pytest.mark.parametrize("stage", ["features", "train"])
def test_cli_features_and_train_refuse_failed_validation_unless_allowed(tmp_path, capsys, stage):
    tables_dir, validation_dir = tables(tmp_path, passed=False)
    assert main([stage, *cli_args(tmp_path, tables_dir, validation_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"em3 {stage}: error: {stage} refused:") and "failed validation" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "store").exists() and not (tmp_path / "run").exists(), "nothing may run"
    if stage == "features":  # allowed: the stage runs (items without content: no encoder is loaded)
        assert main([stage, *cli_args(tmp_path, tables_dir, validation_dir, "--allow-unvalidated")]) == 0
        assert "WARNING: em3 features runs on unchecked inputs" in capsys.readouterr().err
        assert TokenStore.load(tmp_path / "store").item_ids == ["a", "b"]


def test_validate_records_the_tables_it_checked_and_refuses_another_source(tmp_path):
    """The real chain on a tiny H&M source: ingest → validate → the guard passes; another configured source is
    refused by validate and by the guard; ingesting again makes the report stale."""
    raw = write_tiny_hm(tmp_path / "raw")
    cfg = IngestConfig(source=str(raw), negatives_per_positive=2, **HM_SPLIT)
    tables_dir, validation_dir = tmp_path / "tables", tmp_path / "validation"
    run_ingest(cfg, tables_dir)
    report = run_validate(ValidateConfig(), tables_dir, validation_dir, str(raw))
    assert report[RECORD] == {"manifest_sha256": manifest_digest(tables_dir), "source": str(raw)}
    assert input_problems(tables_dir, validation_dir, str(raw)) == []

    with pytest.raises(DataError, match="ingested from .*, but ingest.source is 'elsewhere'"):
        run_validate(ValidateConfig(), tables_dir, validation_dir, "elsewhere")
    assert input_problems(tables_dir, validation_dir, str(raw)) == [], "a refused validate leaves the report alone"
    (problem,) = input_problems(tables_dir, validation_dir, "elsewhere")
    assert "but ingest.source is 'elsewhere'" in problem

    run_ingest(cfg.model_copy(update={"seed": 1}), tables_dir)  # new tables (another negative sample)
    assert any("stale" in p for p in input_problems(tables_dir, validation_dir, str(raw)))
