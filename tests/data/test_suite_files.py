"""The suites as Great Expectations suite files (data_validation/): what ships is GX's own format and is what the
stages run; an edited file changes what ingest and validate quarantine, with no code change; a missing or
malformed file is one line naming it; the wheel (and so the component image) carries the files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import great_expectations as gx
import pytest

import em3.validation.suites as suites
from em3.config import ConfigError, IngestConfig, ValidateConfig
from em3.validation import run_validate
from em3.validation.suite_file import SHIPPED, load_suite
from tests.data.conftest import ingest, quarantined, read
from tests.data.test_native import NATIVE, TEXT_ONLY, nineties_log, write_native

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "raw": {"articles", "customers", "transactions", "items", "impressions", "users", "texts", "images"},
    "canonical": {"interactions", "items", "users"},
}
SUITES = {(stage, table) for stage, tables in TABLES.items() for table in tables}
USERS = [["user_id", "age", "income"], ["u1", "24", "3.5"], ["u2", "", "7"]]


def suite_json(folder: Path, stage: str, table: str) -> dict[str, Any]:
    return json.loads((folder / stage / f"{table}.json").read_text())


def edit_suite(folder: Path, stage: str, table: str, edit) -> None:
    document = suite_json(folder, stage, table)
    edit(document["expectations"])
    (folder / stage / f"{table}.json").write_text(json.dumps(document, indent=2))


@pytest.fixture
def suites_copy(tmp_path: Path) -> Path:
    """A copy of the shipped suites that a test may edit (ingest.suites_dir)."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "suites"))


def test_shipped_suites_are_great_expectations_suite_files() -> None:
    assert (ROOT / "data_validation").resolve() == SHIPPED.resolve()
    for stage, tables in TABLES.items():
        assert {p.stem for p in (SHIPPED / stage).glob("*.json")} == tables
        for table in tables:
            document = suite_json(SHIPPED, stage, table)
            suite = gx.ExpectationSuite(**document)
            assert suite.name == f"{stage}.{table}" and len(suite.expectations) == len(document["expectations"]) > 0
            assert suite.to_json_dict() == document  # GX's own writer gives the file back unchanged


def expected_rules(document: dict, columns: list[str], numeric: list[str]) -> list[tuple]:
    """(type, column checked, column reported, kwargs) of each expectation of a suite file that runs on a table
    with ``columns``, as data_validation/README.md describes the file."""
    rules = []
    for entry in document["expectations"]:
        meta, kwargs = entry["meta"], {k: v for k, v in entry["kwargs"].items() if k != "column"}
        for name in numeric if meta.get("for_each") == "numeric_user_columns" else [None]:
            on, column = entry["kwargs"]["column"], meta.get("input_column", entry["kwargs"]["column"])
            if name is not None:
                on, column = on.replace("{column}", name), column.replace("{column}", name)
            if on in columns or not meta.get("optional"):
                rules.append((entry["type"], on, column, kwargs))
    return rules


def test_the_stages_run_the_shipped_suites(hm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every suite file runs (H&M and native ingest, validate), each expectation as the file states it."""
    ran: list[tuple[str, str, list[str], list[tuple], dict]] = []
    load_suite_, check_table = suites.load_suite, suites.check_table

    def loading(cfg, stage, table, columns, for_each=None):
        ran.append((stage, table, list(columns)))
        return load_suite_(cfg, stage, table, columns, for_each)

    def checking(table, rows, checked, rules, kind="rows", parameters=None):
        assert ran[-1][1] == table and len(ran[-1]) == 3
        ran[-1] += ([(r.expectation, r.on or r.column, r.column, r.kwargs) for r in rules], parameters)
        assert not any("{" in r.expect for r in rules), "descriptions are filled in"
        return check_table(table, rows, checked, rules, kind, parameters)

    monkeypatch.setattr(suites, "load_suite", loading)
    monkeypatch.setattr(suites, "check_table", checking)
    ingest(hm_dir, tmp_path / "hm", numeric_user_columns=["FN"])
    run_validate(ValidateConfig(), tmp_path / "hm")
    native = write_native(tmp_path / "native", TEXT_ONLY, nineties_log(), USERS)
    ingest(native, tmp_path / "nat", **NATIVE, numeric_user_columns=["income"])
    run_validate(ValidateConfig(), tmp_path / "nat")

    assert {(stage, table) for stage, table, *_ in ran} == SUITES
    for stage, table, columns, rules, parameters in ran:
        numeric = [c for c in ("FN", "income") if f"{c}_number" in columns]
        assert rules == expected_rules(suite_json(SHIPPED, stage, table), columns, numeric), (stage, table)
        named = {v["$PARAMETER"] for *_, kwargs in rules for v in kwargs.values() if isinstance(v, dict)}
        assert set(parameters) == named
    by_table = {(stage, table): rules for stage, table, _, rules, _ in ran}
    assert ("expect_column_values_to_be_in_set", "FN_number", "FN", {"value_set": [True]}) in by_table[
        ("raw", "customers")
    ]  # meta.for_each: one expectation per numeric user column
    assert [r[1] for r in by_table[("raw", "impressions")]] == [
        "user_id",
        "item_id",
        "item_id_known",
        "ts",
        "ts",
        "label",
    ]  # optional columns absent: not run


def test_an_edited_raw_suite_changes_what_ingest_quarantines(hm_dir: Path, tmp_path: Path, suites_copy: Path) -> None:
    def channel_one_only(expectations: list[dict]) -> None:
        (channel,) = [e for e in expectations if e["kwargs"]["column"] == "sales_channel_id"]
        channel["kwargs"]["regex"], channel["description"] = "^1$", "sales channel 1 only"

    shipped = ingest(hm_dir, tmp_path / "before")
    assert shipped["params"]["suites_dir"] is None
    assert not (tmp_path / "before" / "quarantine" / "transactions.parquet").exists()
    edit_suite(suites_copy, "raw", "transactions", channel_one_only)
    manifest = ingest(hm_dir, tmp_path / "after", suites_dir=str(suites_copy))
    bad = quarantined(tmp_path / "after", "transactions")
    assert len(bad) == 63 and set(bad["sales_channel_id"]) == {"2"}  # customers 1, 3, 5: 7 months x 3 rows
    reason = "expect_column_values_to_match_regex(sales_channel_id): sales channel 1 only, got '2'"
    assert set(bad["reason"]) == {reason}
    assert set(read(tmp_path / "after", "interactions")["sales_channel_id"]) == {1}
    assert manifest["params"]["suites_dir"] == str(suites_copy)


def test_an_edited_canonical_suite_changes_what_validate_quarantines(
    hm_dir: Path, tmp_path: Path, suites_copy: Path
) -> None:
    def age_at_most_22(expectations: list[dict]) -> None:
        (age,) = [e for e in expectations if e["kwargs"]["column"] == "age"]
        age["kwargs"]["max_value"], age["description"] = 22, "empty or between 0 and 22"

    ingest(hm_dir, tmp_path / "data", suites_dir=str(suites_copy))
    assert run_validate(ValidateConfig(), tmp_path / "data")["passed"]
    edit_suite(suites_copy, "canonical", "users", age_at_most_22)  # after ingest: validate reads the file when it runs
    report = run_validate(ValidateConfig(max_bad_fraction=1.0), tmp_path / "data")
    (users,) = [t for t in report["tables"] if (t["stage"], t["table"]) == ("validate", "users")]
    assert users["rows_quarantined"] == 2 and users["failures"][0]["sample"] == ["24.0", "25.0"]
    bad = read(tmp_path / "data" / "validation" / "quarantine", "users")
    assert bad["age"].tolist() == [24.0, 25.0]
    assert bad["reason"].tolist() == [
        f"expect_column_values_to_be_between(age): empty or between 0 and 22, got {age}" for age in (24.0, 25.0)
    ]


BROKEN = {
    "not found": (lambda path: path.unlink(), r"suite file not found; expected the Great Expectations suite"),
    "not JSON": (lambda path: path.write_text("{"), r"not a readable JSON file \(.*\); expected the Great"),
    "no list": (lambda path: path.write_text('{"name": "raw.articles"}'), r"with a list of expectations$"),
    "other suite": (
        lambda path: path.write_text(path.read_text().replace('"raw.articles"', '"raw.customers"')),
        r"suite name 'raw.customers'; expected 'raw.articles'$",
    ),
}
BROKEN_EXPECTATION = {
    "unknown type": (
        {"type": "expect_column_values_to_be_articles", "kwargs": {"column": "article_id"}},
        r"expectation 4: not a valid Great Expectations expectation \(.*expect_column_values_to_be_articles",
    ),
    "bad argument": (
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "article_id", "regexp": "x"}},
        r"expectation 4: not a valid Great Expectations expectation \(.*regex",
    ),
    "table expectation": (
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        r"expectation 4: expect_table_row_count_to_be_between is not a column-map expectation",
    ),
    "unknown parameter": (
        {
            "type": "expect_column_value_lengths_to_be_between",
            "kwargs": {"column": "article_id", "max_value": {"$PARAMETER": "max_id"}},
        },
        r"expectation 4: unknown suite parameter\(s\) \['max_id'\]; expected one of \['date_range', ",
    ),
    "absent column": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "colour"}},
        r"expectation 4: column 'colour' is not in the table \(columns: article_id, prod_name, .*optional",
    ),
    "stray brace": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "prod_name"}, "description": "{x}"},
        r"expectation 4: description '\{x\}' cannot be filled in \(KeyError: 'x'\); it may name \['date_range', ",
    ),
}


@pytest.mark.parametrize("damage", BROKEN)
def test_a_missing_or_malformed_suite_file_is_one_line_naming_it(suites_copy: Path, damage: str) -> None:
    path = suites_copy / "raw" / "articles.json"
    spoil, message = BROKEN[damage]
    spoil(path)
    with pytest.raises(ConfigError, match=message) as failure:
        load_suite(IngestConfig(suites_dir=str(suites_copy)), "raw", "articles", ["article_id"])
    assert str(failure.value).startswith(f"{path}: ") and "\n" not in str(failure.value)


@pytest.mark.parametrize("damage", BROKEN_EXPECTATION)
def test_a_malformed_expectation_is_one_line_naming_the_file_and_the_expectation(
    suites_copy: Path, damage: str
) -> None:
    entry, message = BROKEN_EXPECTATION[damage]
    edit_suite(suites_copy, "raw", "articles", lambda expectations: expectations.append(entry))
    columns = ["article_id", "prod_name", "detail_desc", "article_id_repeated", "article_id_conflicting"]
    with pytest.raises(ConfigError, match=message) as failure:
        load_suite(IngestConfig(suites_dir=str(suites_copy)), "raw", "articles", columns)
    assert str(failure.value).startswith(f"{suites_copy / 'raw' / 'articles.json'}: ")
    assert "\n" not in str(failure.value)


def test_ingest_stops_on_a_missing_suite_before_writing(hm_dir: Path, tmp_path: Path, suites_copy: Path) -> None:
    (suites_copy / "raw" / "transactions.json").unlink()
    with pytest.raises(ConfigError, match=r"transactions.json: suite file not found; .* ingest.suites_dir"):
        ingest(hm_dir, tmp_path / "out", suites_dir=str(suites_copy))
    assert not (tmp_path / "out").exists()


def test_the_wheel_built_from_the_image_context_carries_the_suites(tmp_path: Path) -> None:
    """The Dockerfile's build context (.dockerignore lets in data_validation/), built as the Dockerfile
    does, gives a wheel whose em3 finds the suite files without the repository."""
    assert "!data_validation/" in (ROOT / ".dockerignore").read_text().splitlines()
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        assert "COPY data_validation ./data_validation\nCOPY em3 ./em3\n" in (ROOT / dockerfile).read_text()
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context)
    shutil.copytree(ROOT / "em3", context / "em3", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for stage in TABLES:
        (context / "data_validation" / stage).mkdir(parents=True)
        for path in (ROOT / "data_validation" / stage).glob("*.json"):
            shutil.copy(path, context / "data_validation" / stage)
    build = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"
    done = subprocess.run([sys.executable, "-c", build], cwd=context, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wheel = context / "dist" / done.stdout.split()[-1]
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("em3/validation/data_validation/")}
        assert shipped == {f"em3/validation/data_validation/{stage}/{table}.json" for stage, table in SUITES}
        for name in shipped:
            assert archive.read(name) == (ROOT / name.replace("em3/validation/", "")).read_bytes()
        archive.extractall(tmp_path / "site")
    probe = (
        "import em3; from em3.config import IngestConfig; from em3.validation.suite_file import load_suite;"
        "print(em3.__file__, len(load_suite(IngestConfig(), 'raw', 'articles', "
        "['article_id', 'article_id_repeated', 'article_id_conflicting']).rules))"
    )
    path = f"{tmp_path / 'site'}:{sysconfig.get_paths()['purelib']}"  # -S: no .pth files, so not the editable em3
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": path, "PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "site" / "em3" / "__init__.py"), "3"]
