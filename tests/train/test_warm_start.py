"""Warm start (``train.init_from``) and the training windows of a daily run (``data.split: newest_days``,
``data.train_days``), issue 24 point 3: weights carried over by id, new items' IDs from content, new users neutral,
and a window that moves with the newest day while older days still feed the histories."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from em3.config import ConfigError, DataConfig
from em3.data.tables import load_tables
from em3.errors import DataError
from em3.models.io import IDS, load_model_dir
from em3.models.item_tables import item_embedding_tables
from em3.train.trainer import train
from em3.train.warm_start import warm_start
from em3.validation.contract import SplitRule, partition_path
from tests.conftest import with_updates
from tests.train.conftest import write_tables


@pytest.fixture(scope="module")
def champion(tmp_path_factory, small_config) -> tuple[Path, object]:
    """A small em3 model trained on ten days of users u0-u9 and items i0-i15 (i16-i19 in its catalogue, never shown:
    their IDs come from the content -> ID map, which is thereby fitted)."""
    users, items = [f"u{u}" for u in range(10)], [f"i{k}" for k in range(20)]
    root = write_tables(tmp_path_factory.mktemp("day1"), users, items, 10, 0, logged=16)
    data = load_tables(root, root / "store", max_history=4, category_min_rows=1)
    cfg = with_updates(small_config, output_dir=root / "run", train={"max_steps": 6, "batch_size": 32, "epochs": 3})
    train(cfg, data, test=False)
    return root / "run", cfg


def test_a_warm_start_carries_every_weight_over_by_id(champion, tmp_path) -> None:
    run, cfg = champion
    old, _ = load_model_dir(run / "model")
    old_ids = json.loads((run / "model" / IDS).read_text())
    assert old_ids["items"] == [f"i{k}" for k in range(20)]
    assert old_ids["context"]["user.club"] == ["bronze", "gold", "silver"]
    items = [f"i{k}" for k in (*range(19, 4, -1), 30, 31)]  # i0-i4 gone, the rest in another order, i30/i31 new
    users = [f"u{u}" for u in range(5, 13)]  # u10-u12 new
    root = write_tables(tmp_path, users, items, 10, 1)
    data = load_tables(root, root / "store", max_history=4, category_min_rows=1)
    model = type(old)(old.cfg, replace(old.shapes, n_items=data.n_items, n_users=data.n_users))
    summary, learned = warm_start(model, data, with_updates(cfg, train={"init_from": str(run)}))
    carried = {item for item, was in zip(data.store.item_ids, learned[1:], strict=True) if was}
    assert carried == set(old_ids["trained_items"]) & set(data.store.item_ids) and not learned[0]
    state, old_state = model.state_dict(), old.state_dict()

    old_row = {item: row + 1 for row, item in enumerate(old_ids["items"])}
    for row, item in enumerate(data.store.item_ids, start=1):
        if item in old_row:
            assert torch.equal(state["item_embed.weight"][row], old_state["item_embed.weight"][old_row[item]]), item
    new_rows = [row for row, item in enumerate(data.store.item_ids, start=1) if item not in old_row]
    assert len(new_rows) == 2 and summary["new_items_from_content"] == 2
    content = item_embedding_tables(old, data.store, 64, content_rows=np.array(new_rows))["content"][new_rows]
    expected = old.id_from_content(torch.from_numpy(content))  # the old model's map of the new items' content
    assert old.content_to_id.abs().sum() > 0, "the champion's map was fitted (it had unseen items)"
    torch.testing.assert_close(state["item_embed.weight"][new_rows], expected, rtol=1e-5, atol=1e-6)

    user_ids = list(data.user_ids)
    for index, user in enumerate(user_ids, start=1):
        if user in old_ids["users"]:
            old_index = old_ids["users"].index(user) + 1
            assert torch.equal(state["user_embed.weight"][index], old_state["user_embed.weight"][old_index])
        else:
            assert not state["user_embed.weight"][index].any(), f"new user {user} starts neutral (zero)"
    assert summary["user_embed"] == {"kept": 5, "new": 3} and summary["item_embed"] == {"kept": 15, "new": 2}
    for name, value in state.items():  # the rest is the champion's, as it was
        if not name.endswith("embed.weight") and "context_embed" not in name:
            assert torch.equal(value, old_state[name]), name


def test_a_warm_started_run_records_its_start_and_saves_its_ids(champion, tmp_path) -> None:
    run, cfg = champion
    root = write_tables(tmp_path, [f"u{u}" for u in range(5, 13)], [f"i{k}" for k in range(5, 25)], 10, 2)
    data = load_tables(root, root / "store", max_history=4, category_min_rows=1)
    settings = {"init_from": str(run), "max_steps": None, "epochs": 2}
    warm = with_updates(cfg, output_dir=tmp_path / "warm", train=settings)
    metrics = train(warm, data, test=False).metrics
    assert metrics["warm_start"]["init_from"] == str(run) and metrics["warm_start"]["item_embed"]["kept"] == 15
    saved = json.loads((tmp_path / "warm" / "model" / IDS).read_text())
    assert saved["items"] == [f"i{k}" for k in range(5, 25)] and saved["users"] == sorted(f"u{u}" for u in range(5, 13))
    start = metrics["valid_history"][0]  # the champion's weights on the new data, validated before any step
    assert (start["epoch"], start["step"]) == (-1, 0) and [h["epoch"] for h in metrics["valid_history"][1:]] == [0, 1]
    best = max(metrics["valid_history"], key=lambda h: h["auc"])
    assert metrics["best_epoch"] == best["epoch"] and metrics["valid"]["auc"] == pytest.approx(best["auc"], abs=1e-9)


def test_items_the_champion_trained_keep_their_ids_when_this_window_does_not_show_them(champion, tmp_path) -> None:
    """A warm start's window may be shorter than the champion's: items the champion learned an ID for, shown in no
    row of this window, keep that ID; only items no training learned are filled from content."""
    run, cfg = champion
    champion_ids = json.loads((run / "model" / IDS).read_text())
    old_data = load_tables(run.parent, run.parent / "store", max_history=4, category_min_rows=1)
    seen = sorted({old_data.store.item_ids[row - 1] for row in old_data.train.item.tolist()})
    assert champion_ids["trained_items"] == sorted(seen, key=champion_ids["items"].index) and len(seen) > 6
    items = [*(f"i{k}" for k in range(5, 20)), "i30"]  # only i5-i9 shown below
    root = write_tables(tmp_path, [f"u{u}" for u in range(10)], items, 10, 5, logged=5)
    data = load_tables(root, root / "store", max_history=4, category_min_rows=1)
    warm = with_updates(cfg, output_dir=tmp_path / "warm", train={"init_from": str(run), "max_steps": 4})
    train(warm, data, test=False)
    new, _ = load_model_dir(tmp_path / "warm" / "model")
    old, _ = load_model_dir(run / "model")
    trained = json.loads((tmp_path / "warm" / "model" / IDS).read_text())["trained_items"]
    carried = [item for item in seen if item in items[5:]]
    assert carried and trained == sorted({*items[:5], *carried}, key=items.index)
    for item in carried:  # the champion's row (no row of this window moves it; weight decay barely does)
        row, old_row = data.store.item_ids.index(item) + 1, champion_ids["items"].index(item) + 1
        torch.testing.assert_close(new.item_embed.weight[row], old.item_embed.weight[old_row], rtol=1e-3, atol=1e-5)
        content = item_embedding_tables(new, data.store, 64)["content"][row : row + 1]
        refilled = new.id_from_content(torch.from_numpy(content))
        assert not torch.allclose(refilled[0], new.item_embed.weight[row], atol=1e-3), "would not tell a refill"


def test_a_warm_start_keeps_its_starting_weights_when_no_epoch_beats_them(champion, tmp_path, monkeypatch) -> None:
    """Validation that only gets worse with training (forced here: the selection is what is tested) returns the
    warm-started weights, not the last or any trained epoch's."""
    import em3.train.trainer as trainer

    run, cfg = champion
    root = write_tables(tmp_path, [f"u{u}" for u in range(10)], [f"i{k}" for k in range(20)], 10, 2)
    data = load_tables(root, root / "store", max_history=4, category_min_rows=1)
    evaluate, calls = trainer.evaluate, []

    def worse_every_time(*args, **kwargs) -> dict:
        calls.append(1)
        return {**evaluate(*args, **kwargs), "auc": 1.0 - 0.1 * len(calls)}

    monkeypatch.setattr(trainer, "evaluate", worse_every_time)
    warm = with_updates(
        cfg, output_dir=tmp_path / "warm", train={"init_from": str(run), "max_steps": None, "patience": 2}
    )
    metrics = train(warm, data, test=False).metrics
    assert metrics["best_epoch"] == -1 and metrics["stopped_by"] == "early_stopping" and metrics["steps"] > 0
    old = load_model_dir(run / "model")[0].state_dict()
    new = load_model_dir(tmp_path / "warm" / "model")[0].state_dict()
    carried = [name for name in old if not any(part in name for part in ("embed", "content_to_id", "similarity_"))]
    assert carried and all(torch.equal(old[name], new[name]) for name in carried)


def test_a_warm_start_refuses_another_architecture_or_a_model_without_ids(champion, tmp_path) -> None:
    run, cfg = champion
    root = write_tables(tmp_path, ["u1", "u2"], ["i1", "i2"], 10, 3)
    data = load_tables(root, root / "store", max_history=4)
    dcn = with_updates(cfg, model={"backbone": "dcn"}, train={"init_from": str(run)})
    old, _ = load_model_dir(run / "model")
    model = type(old)(dcn.model, replace(old.shapes, n_items=data.n_items, n_users=data.n_users))
    with pytest.raises(ConfigError, match=r"model.backbone 'din', this run 'dcn'"):
        warm_start(model, data, dcn)
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.safetensors", "config.yaml", "shapes.json"):
        (bare / name).write_bytes((run / "model" / name).read_bytes())
    with pytest.raises(ConfigError, match=r"has no ids.json \(saved before warm start existed\)"):
        warm_start(model, data, with_updates(cfg, train={"init_from": str(bare)}))
    no_club = load_tables(root, root / "store", max_history=4, user_features=())
    with pytest.raises(
        ConfigError, match=r"reads the context inputs \['sales_channel_id', 'user.club'\], this data gives"
    ):
        warm_start(model, no_club, with_updates(cfg, train={"init_from": str(run)}))
    with pytest.raises(ConfigError, match=r"neither a run or model folder"):
        warm_start(model, data, with_updates(cfg, train={"init_from": str(tmp_path / "nowhere")}))


def test_the_newest_days_split_moves_with_the_data_and_older_days_feed_only_the_histories(tmp_path) -> None:
    root = write_tables(tmp_path, [f"u{u}" for u in range(6)], [f"i{k}" for k in range(12)], 12, 4)  # March 1-12
    window = {"split": "newest_days", "valid_days": 2, "test_days": 1, "train_days": 3}
    rule = SplitRule.of_config(DataConfig(source="tables", tables_dir=root, **window))
    assert (rule.test_start, rule.valid_start, rule.train_start) == tuple(date(2020, 3, d) for d in (12, 10, 7))
    assert SplitRule.of_config(DataConfig(source="tables", tables_dir=root)).valid_start == date(2020, 3, 8)  # ingest's
    data = load_tables(root, root / "store", max_history=50, history="earlier_events", rule=rule)
    log = pd.concat(pd.read_parquet(partition_path(root, date(2020, 3, d))) for d in range(1, 13))
    day = log["ts"].dt.normalize()
    assert len(data.train) == ((day >= "2020-03-07") & (day < "2020-03-10")).sum()
    assert len(data.valid) == ((day >= "2020-03-10") & (day < "2020-03-12")).sum()
    assert len(data.test) == (day == "2020-03-12").sum()
    rows = data.store.index()
    partition_path(root, date(2020, 3, 11)).unlink()  # a day that never arrived (validate refused it): skipped
    gap = SplitRule.of_config(DataConfig(source="tables", tables_dir=root, **window))
    assert (gap.test_start, gap.valid_start, gap.train_start) == tuple(date(2020, 3, d) for d in (12, 9, 6))
    with pytest.raises(DataError, match=r"11 day partitions; data.split newest_days needs more than"):
        SplitRule.of_config(DataConfig(source="tables", tables_dir=root, **{**window, "valid_days": 10}))
    first = log[day >= "2020-03-07"].iloc[0]  # the window's first row: its history holds the earlier days' clicks
    earlier = log[(log["user_id"] == first["user_id"]) & (log["ts"] < first["ts"]) & (log["label"] == 1)]
    history = data.train.history[0]
    assert sorted(history[history > 0].tolist()) == sorted(earlier["item_id"].map(rows).tolist()) and len(earlier)
