"""The ingest stage's sources and outputs: S3 and disk agree, the outputs follow the contract, a rerun replaces them
deterministically, a native log keeps its labels (the sample: test_ingest_sample.py; bad input:
test_ingest_quarantine.py)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from em3.ingest import DataError
from em3.validation.contract import INTERACTIONS, interaction_files
from tests.data.conftest import ARTICLES, CUSTOMERS, csv_text, ingest, read, upload_folder

TABLES = ("interactions", "items", "users")


# -- sources and outputs -------------------------------------------------------------------------------------


def test_s3_source_gives_the_same_tables_as_disk(hm_dir: Path, s3, tmp_path: Path) -> None:
    local = ingest(hm_dir, tmp_path / "local")
    remote = ingest(source := upload_folder(s3, hm_dir, "hm"), tmp_path / "remote")
    for table in TABLES:
        pd.testing.assert_frame_equal(read(tmp_path / "local", table), read(tmp_path / "remote", table))
    assert remote["source"] == source
    assert remote["files"] == local["files"] and remote["images"] == local["images"]
    assert remote["rows"] == local["rows"] and remote["rows"]["items"] == len(ARTICLES)
    image = f"images/{ARTICLES[0][:3]}/{ARTICLES[0]}.jpg"
    assert (tmp_path / "remote" / image).read_bytes() == (hm_dir / image).read_bytes()


def test_s3_missing_file_and_key_traversal_are_data_errors(hm_dir: Path, s3, tmp_path: Path) -> None:
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(DataError, match=rf"s3://{bucket}/empty/articles.csv: file not found"):
        ingest(f"s3://{bucket}/empty", tmp_path / "out")
    with pytest.raises(DataError, match=r"'\.\./hm' is not a relative path"):
        ingest(f"s3://{bucket}/../hm", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_outputs_follow_the_contract(hm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = ingest(hm_dir, out)
    partitions = interaction_files(out)
    assert all(pq.read_schema(path).remove_metadata() == INTERACTIONS for path in partitions.values())
    interactions, items, users = (read(out, table) for table in TABLES)
    assert "price" not in interactions and interactions["label"].isin([0, 1]).all()
    assert all(manifest["splits"][name]["rows"] > 0 for name in ("train", "valid", "test"))
    assert (interactions.loc[interactions["label"] == 0, "units"] == 0).all()
    assert interactions["units"].max() == 2  # one article is bought twice a month: 2 units, one row
    assert items.loc[0, "item_id"] == ARTICLES[0] and items.loc[0, "text"] == "Item 0. Soft, simple piece number 0."
    assert all((out / path).is_file() for path in items["image_path"])
    assert users["age"].dtype == float and users["age"].isna().sum() == 1
    assert (interactions["ts"] == interactions["ts"].dt.normalize()).all()  # a day-stamped log: midnight
    # the customers' other columns are kept as strings (null when empty) for the model's context features
    assert users.columns.tolist() == [
        "user_id",
        "age",
        "FN",
        "Active",
        "club_member_status",
        "fashion_news_frequency",
        "postal_code",
    ]
    assert users["FN"].fillna("<missing>").tolist() == ["<missing>", "1.0"] * 3 and users["postal_code"][5] == "p5"
    assert set(users["user_id"]) == set(CUSTOMERS)
    raw = (hm_dir / "transactions_train.csv").read_bytes()
    assert manifest["files"]["transactions_train.csv"] == hashlib.sha256(raw).hexdigest()
    assert manifest["rows"] == {"interactions": len(interactions), "items": 12, "users": 6}
    assert sum(s["rows"] for s in manifest["splits"].values()) == len(interactions)
    assert not (out / "quarantine").exists()


def test_interactions_are_one_partition_per_day_listed_in_the_manifest(hm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = ingest(hm_dir, out)
    partitions = interaction_files(out)
    whole = read(out, "interactions")
    days = whole["ts"].dt.normalize().dt.date
    assert list(partitions) == sorted(set(days)) and len(partitions) > 3
    for day, path in partitions.items():
        assert path == out / "interactions" / f"day={day.isoformat()}" / "part-0.parquet"
        rows = pd.read_parquet(path)
        assert (rows["ts"].dt.date == day).all() and len(rows) == (days == day).sum()
        listed = manifest["partitions"][day.isoformat()]
        assert (listed["rows"], listed["positives"]) == (len(rows), int(rows["label"].sum()))
        assert listed["files"] == manifest["files"]  # the source files the day came from, with their sha256
    assert sum(p["rows"] for p in manifest["partitions"].values()) == manifest["rows"]["interactions"] == len(whole)
    pd.read_parquet(partitions[min(partitions)]).to_parquet(out / "interactions" / "stray.parquet")
    assert len(read(out, "interactions")) == len(whole), "only the listed partitions are read"
    (out / "interactions" / "day=2020-13-01").mkdir()
    (out / "interactions" / "day=2020-13-01" / "part-0.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"day=2020-13-01: not a day partition; expected .*day=YYYY-MM-DD"):
        read(out, "interactions")


def test_rerun_is_deterministic_and_replaces_the_output(hm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest(hm_dir, out)
    first = read(out, "interactions")
    (out / "stale.txt").write_text("from an earlier run")
    ingest(hm_dir, out)
    pd.testing.assert_frame_equal(read(out, "interactions"), first)
    assert not (out / "stale.txt").exists()
    ingest(hm_dir, out, seed=1)
    assert not read(out, "interactions").equals(first)


def test_refuses_to_replace_a_folder_that_is_not_an_ingest_output(hm_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a previous output"):
        ingest(hm_dir, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_native_log_keeps_labels_and_adds_no_negatives(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    (root / "pics").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "pics" / "a.png")  # a PNG: accepted as it decodes
    (root / "items.csv").write_text(
        csv_text(
            [
                ["item_id", "text", "image_path", "brand"],
                ["a", "A red dress", "pics/a.png", "x"],
                ["b", "A shirt", "", "y"],
            ]
        )
    )
    pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u2"],
            "item_id": ["a", "b", "a", "b", "a"],
            "ts": pd.to_datetime(
                [
                    "2020-02-01 10:00",
                    "2020-02-01 11:00",
                    "2020-04-02 00:00",
                    "2020-07-03 09:00",
                    "2020-04-02 23:00",
                ]
            ),
            "label": [1, 0, 0, 1, 1],
        }
    ).to_parquet(root / "impressions.parquet")
    manifest = ingest(root, tmp_path / "out", format="native", native_log="impressions.parquet")
    rows = read(tmp_path / "out", "interactions")
    assert rows[["user_id", "item_id", "label", "units"]].values.tolist() == [
        ["u1", "a", 1, 1],
        ["u1", "b", 0, 0],
        ["u2", "a", 0, 0],  # the same item twice a day: two impressions at their own times
        ["u2", "a", 1, 1],
        ["u2", "b", 1, 1],
    ]
    assert {name: split["rows"] for name, split in manifest["splits"].items()} == {"train": 2, "valid": 2, "test": 1}
    assert rows["ts"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2020-02-01 10:00",
        "2020-02-01 11:00",
        "2020-04-02 00:00",
        "2020-04-02 23:00",
        "2020-07-03 09:00",
    ]  # times kept (UTC), so that histories can hold strictly earlier events
    items = read(tmp_path / "out", "items")
    assert items["image_path"].tolist() == ["images/pics/a.png", ""] and items["brand"].tolist() == ["x", "y"]
    assert read(tmp_path / "out", "users")["user_id"].tolist() == ["u1", "u2"]
    assert manifest["negatives_missing"] == 0 and set(manifest["files"]) == {
        "items.csv",
        "impressions.parquet",
    }
