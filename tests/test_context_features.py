"""Training data from canonical tables: user attributes as context features (categorical with an unknown bucket,
numeric standardised with a missing flag), the history rule, and what train.json records of them."""

from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch

from em3.data.history import earlier_histories, history_time
from em3.data.mapped import MappedRows
from em3.data.tables import load_tables
from em3.data.token_store import TokenStore
from em3.errors import DataError
from em3.train.trainer import train
from em3.validation.contract import partition_path, read_interactions
from tests.conftest import with_updates

N_USERS, N_ITEMS = 12, 10
SPLIT_PARAMS = {"valid_start": "2020-02-01", "test_start": "2020-03-01", "cold_max_train": 3}


def write_interactions(root, frame: pd.DataFrame) -> None:
    """The canonical table of ``frame`` in day partitions (its ``split`` column, kept here for the expectations, is
    not stored)."""
    shutil.rmtree(root / "interactions", ignore_errors=True)
    for day, rows in frame.drop(columns="split").groupby(frame["ts"].dt.normalize()):
        path = partition_path(root, day.date())
        path.parent.mkdir(parents=True)
        rows.to_parquet(path)


@pytest.fixture
def tables(tmp_path):
    """Interactions of 12 users (train in January, valid in February, test in March, events at 9:00 + u minutes), a
    users table with a categorical ``club`` (u10's ``rare`` on 2 train rows, u11's ``platinum``, u0 none), a numeric
    ``score`` (u1 missing) and ``age``; items with random content."""
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(N_USERS)]
    rows = []
    for month, split in ((1, "train"), (2, "valid"), (3, "test")):
        for u, user in enumerate(users):
            for k in range(6 if split == "train" else 3):
                ts = pd.Timestamp(2020, month, 1 + k) + pd.Timedelta(hours=9, minutes=u)
                label = int(rng.random() < 0.4)
                rows.append((user, f"i{rng.integers(N_ITEMS)}", ts, label, split, 1 + u % 2))
    columns = ["user_id", "item_id", "ts", "label", "split", "sales_channel_id"]
    interactions = pd.DataFrame(rows, columns=columns)
    rare = interactions.index[(interactions["user_id"] == "u10") & (interactions["split"] == "train")][2:]
    interactions = interactions.drop(rare)  # u10 keeps 2 train rows: its club value is rare
    interactions = interactions.sort_values("ts", kind="stable", ignore_index=True)  # the order of the table
    write_interactions(tmp_path, interactions)
    (tmp_path / "manifest.json").write_text(json.dumps({"params": SPLIT_PARAMS}))
    club = [None, *["gold" if u % 2 else "silver" for u in range(1, 10)], "rare", "platinum"]
    score = [float(u) if u != 1 else np.nan for u in range(N_USERS)]
    pd.DataFrame(
        {"user_id": users, "age": [20.0 + u for u in range(N_USERS)], "club": club, "score": score}
    ).to_parquet(tmp_path / "users.parquet")
    store = TokenStore(
        item_ids=[f"i{i}" for i in range(N_ITEMS)],
        image_tokens=rng.normal(size=(N_ITEMS + 1, 2, 4)).astype(np.float16),
        image_mask=np.r_[[[False, False]], np.ones((N_ITEMS, 2), bool)],
        text_tokens=rng.normal(size=(N_ITEMS + 1, 3, 4)).astype(np.float16),
        text_mask=np.r_[[[False] * 3], np.ones((N_ITEMS, 3), bool)],
        pooled_image=rng.normal(size=(N_ITEMS + 1, 4)).astype(np.float16),
        pooled_text=rng.normal(size=(N_ITEMS + 1, 4)).astype(np.float16),
    )
    store.save(tmp_path / "store")
    return tmp_path, interactions


def test_user_attributes_become_context_features(tables):
    root, interactions = tables
    interactions = interactions.assign(
        user_id=interactions["user_id"].where(
            ~((interactions["user_id"] == "u11") & (interactions["split"] == "train")), "u3"
        )
    )
    write_interactions(root, interactions)  # u11 (club "platinum") now appears after train only
    data = load_tables(root, root / "store", max_history=4, category_min_rows=3)
    assert data.inputs["context"] == ["sales_channel_id", "user.club"]
    assert data.inputs["numeric"] == ["user.age", "user.score"]
    assert data.context_cardinalities == (3, 3)  # channels 1, 2; clubs gold, silver (+ the unknown bucket 0)

    frame = interactions.reset_index(drop=True)
    context = torch.cat([data.train.context, data.valid.context, data.test.context]).numpy()
    numeric = torch.cat([data.train.numeric, data.valid.numeric, data.test.numeric]).numpy()
    frame = frame.iloc[np.concatenate([np.flatnonzero(frame["split"] == s) for s in ("train", "valid", "test")])]
    club = dict(zip(frame["user_id"], context[:, 1], strict=False))
    assert club["u0"] == 0, "a missing value is unknown"
    assert club["u10"] == 0, "a value on fewer than category_min_rows training rows is unknown"
    assert club["u11"] == 0, "a value first seen after train is unknown"
    assert club["u1"] == 1 and club["u2"] == 2  # gold, silver in sorted order

    train_rows = frame["split"].to_numpy() == "train"
    users = pd.read_parquet(root / "users.parquet").set_index("user_id")
    age = users.loc[frame["user_id"], "age"].to_numpy()
    expected_age = (age - age[train_rows].mean()) / age[train_rows].std()
    np.testing.assert_allclose(numeric[:, 0], expected_age, rtol=1e-5)  # float32 of float64 standardisation
    score_missing = frame["user_id"].to_numpy() == "u1"  # columns: age, age missing, score, score missing
    assert (numeric[score_missing, 2] == 0).all() and (numeric[score_missing, 3] == 1).all()
    assert (numeric[~score_missing, 3] == 0).all() and (numeric[:, 1] == 0).all(), "missing flags"
    assert np.isfinite(numeric).all()


def test_the_config_chooses_the_user_features(tables):
    root, _ = tables
    only_age = load_tables(root, root / "store", 4, user_features=("age",))
    assert (only_age.inputs["context"], only_age.inputs["numeric"]) == (["sales_channel_id"], ["user.age"])
    assert only_age.numeric_dim == 2
    none = load_tables(root, root / "store", 4, user_features=())
    assert none.inputs["numeric"] == [] and none.numeric_dim == 0
    with pytest.raises(DataError, match=r"names column\(s\) \['shoe_size'\]"):
        load_tables(root, root / "store", 4, user_features=("shoe_size",))


def test_timestamped_logs_get_earlier_event_histories_and_train_json_records_the_inputs(tables, small_config):
    root, _ = tables
    data = load_tables(root, root / "store", max_history=4)
    assert data.inputs["history"] == "earlier_events"  # the fixture's events carry a time of day
    by_day = load_tables(root, root / "store", max_history=4, history="earlier_days")
    assert by_day.inputs["history"] == "earlier_days"
    cfg = with_updates(
        small_config,
        model={"variant": "two_stage"},
        output_dir=root / "run",
        train={"max_steps": 3, "batch_size": 32, "epochs": 1},
    )
    result = train(cfg, data)
    recorded = json.loads((root / "run" / "metrics" / "train.json").read_text())["inputs"]
    assert recorded == {**data.inputs, "modalities": {"image": True, "text": True}}
    assert np.isfinite(result.metrics["test"]["logloss"])
    assert result.model.shapes.numeric_dim == 4


def test_a_context_column_with_one_value_in_training_is_not_an_input(tables):
    """A log without sales channels (ingest writes 0 everywhere) gives a constant column: it is not listed as an
    input nor given a field; a column with two values is."""
    root, interactions = tables
    write_interactions(root, interactions.assign(sales_channel_id=0))
    data = load_tables(root, root / "store", max_history=5)
    assert "sales_channel_id" not in data.inputs["context"] and data.inputs["context"] == ["user.club"]
    users = pd.read_parquet(root / "users.parquet")  # "gold" or nothing, as H&M's FN column: two values, an input
    users.assign(club=["gold" if u % 2 else None for u in range(N_USERS)]).to_parquet(root / "users.parquet")
    assert load_tables(root, root / "store", max_history=5).inputs["context"] == ["user.club"]
    assert data.train.context.shape[1] == len(data.context_cardinalities) == 1


def test_splits_and_cold_flags_follow_the_split_dates_of_the_manifest(tables):
    """The table stores neither: a row's split comes from its time, an item is cold with fewer than
    cold_max_train positive training rows; other dates in the manifest give other splits from the same rows."""
    root, interactions = tables
    data = load_tables(root, root / "store", max_history=4)
    positives = interactions[(interactions["split"] == "train") & (interactions["label"] == 1)]["item_id"]
    for name in ("train", "valid", "test"):
        rows = interactions[interactions["split"] == name]
        expected_cold = rows["item_id"].map(positives.value_counts()).fillna(0).lt(3).to_numpy()
        assert getattr(data, name).cold.numpy().tolist() == expected_cold.tolist(), name
    assert 0 < data.test.cold.float().mean() < 1
    (root / "manifest.json").write_text(json.dumps({"params": {**SPLIT_PARAMS, "valid_start": "2020-01-04"}}))
    moved = load_tables(root, root / "store", max_history=4)
    early = (interactions["ts"] < "2020-01-04").sum()
    assert (len(moved.train), len(moved.valid), len(moved.test)) == (
        early,
        len(interactions) - early - len(data.test),
        len(data.test),
    )
    (root / "manifest.json").write_text(json.dumps({"params": {}}))
    with pytest.raises(DataError, match="no usable split dates"):
        load_tables(root, root / "store", max_history=4)


def test_histories_are_read_from_disk_and_equal_the_in_memory_definition(tables, monkeypatch):
    """The (N, L) histories, the largest training array, live in a deleted temporary file read by positioned reads
    (nothing left in TMPDIR); each split's rows hold what earlier_histories gives on the whole table, in order."""
    root, interactions = tables
    monkeypatch.setenv("TMPDIR", str(root / "tmp"))
    (root / "tmp").mkdir()
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        data = load_tables(root, root / "store", max_history=4)
    finally:
        tempfile.tempdir = None
    assert list((root / "tmp").iterdir()) == []
    frame = read_interactions(root).to_pandas()
    item = frame["item_id"].map(data.store.index()).to_numpy()
    user = pd.factorize(frame["user_id"], sort=True)[0]
    expected = earlier_histories(user, history_time(frame["ts"], "auto")[0], item, frame["label"].to_numpy(), 4)
    for name in ("train", "valid", "test"):
        split = getattr(data, name)
        assert isinstance(split.history, MappedRows) and split.history.shape == (len(split), 4)
        got = split.history[torch.arange(len(split))]
        assert torch.equal(got, torch.from_numpy(expected[(interactions["split"] == name).to_numpy()]))
    assert (expected[:, 0] > 0).mean() > 0.5  # the histories are not trivially empty


def test_rows_of_items_missing_from_the_store_or_without_ids_are_refused_with_the_file_and_a_count(tables):
    root, interactions = tables
    write_interactions(
        root, interactions.assign(item_id=interactions["item_id"].where(interactions.index % 10 != 0, "i99"))
    )
    expected = int((interactions.index % 10 == 0).sum())
    with pytest.raises(ValueError, match=rf"interactions: {expected} rows name items missing .*\(e.g. i99\)"):
        load_tables(root, root / "store", max_history=4)
    write_interactions(root, interactions.assign(user_id=interactions["user_id"].where(interactions.index != 3)))
    with pytest.raises(DataError, match=r"interactions: column 'user_id' has 1 empty values"):
        load_tables(root, root / "store", max_history=4)


def test_user_codes_follow_the_sorted_ids_of_the_users_the_rows_name():
    from em3.data.tables import sorted_codes

    values = np.array(["u3", "u1", "never", "u2"], dtype=object)  # "never": in the dictionary, on no row
    indices = np.array([0, 3, 1, 0, 1])
    codes, ids = sorted_codes(indices, values)
    assert list(ids) == ["u1", "u2", "u3"]
    np.testing.assert_array_equal(codes, pd.factorize(values[indices], sort=True)[0])
