"""The gate on the newest day (issue 24 point 4): the champion is scored on the candidate's test rows, its weights
carried over by id to the candidate's tables, and the gate compares the two there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from em3.data.loading import tables_data
from em3.registry.champion import champion_on_test
from em3.registry.registry import gate_champion_metrics, model_version
from em3.train import train
from em3.workflow import fetched_init, register_best
from tests.conftest import with_updates
from tests.registry.conftest import with_registry
from tests.train.conftest import write_tables


def tables_config(small_config, root, run, **data):
    """A small model trained on the tables at ``root`` into ``root / run`` (the tables are not validated here)."""
    tables = {"source": "tables", "tables_dir": root, "store_dir": root / "store", "allow_unvalidated": True}
    return with_updates(
        small_config,
        name=run,
        output_dir=root / run,
        data={**tables, "max_history": 4, "category_min_rows": 1, **data},
        train={"max_steps": 8, "batch_size": 32, "epochs": 2},
    )


@pytest.fixture(scope="module")
def days(small_config, tmp_path_factory):
    """A champion trained and registered on ten days; the same log grown to twelve days with new users and items."""
    users, items = [f"u{u}" for u in range(10)], [f"i{k}" for k in range(20)]
    first = write_tables(tmp_path_factory.mktemp("first"), users, items, 10, 0)
    users, items = [f"u{u}" for u in range(3, 14)], [f"i{k}" for k in range(4, 26)]
    later = write_tables(tmp_path_factory.mktemp("later"), users, items, 12, 5)
    registry = tmp_path_factory.mktemp("registry")
    champion_cfg = with_registry(tables_config(small_config, first, "champion"), registry, required_metrics=("auc",))
    train(champion_cfg, tables_data(champion_cfg.data))
    registered = register_best(champion_cfg, [first / "champion"], None, "day10")
    assert registered["alias"] == "champion" and "no champion yet" in registered["reason"]
    return first, later, registry, champion_cfg


def test_the_champion_rescored_on_its_own_test_rows_gives_its_registered_metrics(days) -> None:
    first, _, _, champion_cfg = days
    scores = champion_on_test(champion_cfg, tables_data(champion_cfg.data))
    registered = json.loads((first / "champion" / "metrics" / "train.json").read_text())["test"]
    assert scores["version"] == 1
    for metric in ("auc", "gauc", "logloss"):  # carried over by id to the same tables: the same model, the same rows
        assert scores["metrics"][metric] == pytest.approx(registered[metric], rel=1e-6, abs=1e-9), metric


def test_the_gate_compares_with_the_champion_scored_on_the_newest_day(days, small_config) -> None:
    _, later, registry, _ = days
    newest = {"split": "newest_days", "test_days": 1, "valid_days": 1}
    cfg = with_registry(tables_config(small_config, later, "challenger", **newest), registry, required_metrics=("auc",))
    train(cfg, tables_data(cfg.data))
    on_newest_day = champion_on_test(cfg, tables_data(cfg.data))["metrics"]["auc"]
    registered = register_best(cfg, [later / "challenger"], None, "day12")
    assert "[champion v1 scored on this run's test rows]" in registered["reason"]
    compared = re.search(r"champion's (\d\.\d{4})", registered["reason"]).group(1)
    assert compared == f"{on_newest_day:.4f}"
    version = model_version(f"models:/{registered['model']}/{registered['version']}", cfg.registry)
    assert gate_champion_metrics(version)["auc"] == pytest.approx(on_newest_day, rel=1e-12)  # the figure, as a tag

    own = with_updates(cfg, registry={**cfg.registry.model_dump(), "rescore_champion": False}, name="own")
    train(own.model_copy(update={"output_dir": later / "own"}), tables_data(own.data))
    again = register_best(own, [later / "own"], None, "day12")
    champion = again["reason"].rsplit("[", 1)[1]
    assert champion.startswith("champion v") and "own test metrics (not scored on this run's test rows)" in champion


def test_a_daily_run_warm_starts_from_the_registered_champion_or_from_scratch_before_there_is_one(days, capsys):
    _, _, _, champion_cfg = days
    warm = with_updates(champion_cfg, train={"init_from": "models:/em3@champion"})
    with fetched_init(warm) as fetched:
        assert (Path(fetched.train.init_from) / "ids.json").is_file()  # the champion's folder, downloaded
    assert not Path(fetched.train.init_from).exists(), "removed after the run"
    first = with_updates(champion_cfg, train={"init_from": "models:/nothing_yet@champion"})
    with fetched_init(first) as fetched:
        assert fetched.train.init_from is None
    said = capsys.readouterr().out
    assert "train.init_from models:/nothing_yet@champion" in said and "training from scratch" in said
    for progress in (True, False):  # MLflow's download bar follows train.progress
        with fetched_init(with_updates(warm, train={"progress": progress})):
            pass
        assert ("Downloading artifacts" in capsys.readouterr().err) == progress
