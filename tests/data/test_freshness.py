"""Nothing stale, no escape from the source (em3.validation.freshness, em3.sources): tables whose source changed
since ingest, or whose latest ingest failed, are refused by validate and the stage guards; links that lead out of a
local source are refused."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from em3.config import ValidateConfig
from em3.validation import DataError, run_validate
from em3.validation.freshness import STALE
from em3.validation.inputs import input_problems
from tests.data.conftest import ARTICLES, csv_text, ingest, quarantined, upload_folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_source_file_changed_after_ingest_stops_validate_and_the_stage_guards(hm_dir: Path, tmp_path: Path):
    out = tmp_path / "tables"
    manifest = ingest(hm_dir, out)
    assert manifest["source_stamps"]["transactions_train.csv"] == {"sha256": sha256(hm_dir / "transactions_train.csv")}
    run_validate(ValidateConfig(), out)  # current: passes
    before = sha256(hm_dir / "transactions_train.csv")
    with (hm_dir / "transactions_train.csv").open("a") as log:
        log.write(f"2020-07-20,{'a' * 64},{ARTICLES[0]},0.01,1\n")
    after = sha256(hm_dir / "transactions_train.csv")
    with pytest.raises(DataError) as refused:
        run_validate(ValidateConfig(), out)
    message = str(refused.value)
    assert "transactions_train.csv: changed since ingest" in message and before in message and after in message
    assert "articles.csv" not in message, "unchanged files are not named"
    problems = input_problems(out, out / "validation", str(hm_dir))
    assert len(problems) == 1 and "transactions_train.csv: changed since ingest" in problems[0]

    (hm_dir / "transactions_train.csv").unlink()
    with pytest.raises(DataError, match=f"sha256 {before} at ingest, no such file now"):
        run_validate(ValidateConfig(), out)


def test_a_failed_ingest_marks_the_previous_tables_stale_until_one_succeeds(hm_dir: Path, tmp_path: Path):
    out = tmp_path / "tables"
    ingest(hm_dir, out)
    run_validate(ValidateConfig(), out)
    articles = (hm_dir / "articles.csv").read_text()
    (hm_dir / "articles.csv").write_text(articles.replace("article_id,", "id,", 1))  # ingest refuses the file
    with pytest.raises(DataError, match="missing column"):
        ingest(hm_dir, out)
    assert (out / "manifest.json").is_file(), "the previous output stays whole"
    assert "missing column" in json.loads((out / STALE).read_text())["failure"]
    (hm_dir / "articles.csv").write_text(articles)  # the source as it was: only the failed ingest speaks
    with pytest.raises(DataError, match="latest `em3 ingest` into this folder failed") as refused:
        run_validate(ValidateConfig(), out)
    assert "changed since ingest" not in str(refused.value)
    problems = input_problems(out, out / "validation", str(hm_dir))
    assert len(problems) == 1 and "failed" in problems[0] and "missing column" in problems[0]
    ingest(hm_dir, out)
    assert not (out / STALE).exists()
    assert run_validate(ValidateConfig(), out)["passed"]


def test_an_s3_object_replaced_after_ingest_is_named_by_its_etag(s3, hm_dir: Path, tmp_path: Path):
    uri = upload_folder(s3, hm_dir, "hm")
    bucket = uri.removeprefix("s3://").split("/")[0]
    out = tmp_path / "tables"
    stamps = ingest(uri, out)["source_stamps"]
    head = s3.head_object(Bucket=bucket, Key="hm/customers.csv")
    assert stamps["customers.csv"] == {
        "etag": head["ETag"],
        "size": head["ContentLength"],
        "last_modified": head["LastModified"].isoformat(),
    }
    run_validate(ValidateConfig(), out)
    changed = (hm_dir / "customers.csv").read_text().replace("ACTIVE", "PRE-CREATE", 1)
    s3.put_object(Bucket=bucket, Key="hm/customers.csv", Body=changed.encode())
    new_etag = s3.head_object(Bucket=bucket, Key="hm/customers.csv")["ETag"]
    with pytest.raises(DataError) as refused:
        run_validate(ValidateConfig(), out)
    message = str(refused.value)
    assert f"{uri}/customers.csv: changed since ingest" in message
    assert f"etag {head['ETag']}" in message and f"etag {new_etag}" in message
    assert "transactions_train.csv" not in message


def outside_jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "photo.jpg"
    path.parent.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, format="JPEG")
    return path


def test_links_out_of_an_hm_source_are_refused(hm_dir: Path, tmp_path: Path):
    """A photo that links outside is quarantined with the reason and never copied; one that links to another file
    inside the source is an ordinary photo; a table that links outside stops ingest, naming it."""
    outside = outside_jpeg(tmp_path)
    linked_out, linked_in = ARTICLES[1], ARTICLES[2]
    photo = hm_dir / "images" / linked_out[:3] / f"{linked_out}.jpg"
    photo.unlink()
    photo.symlink_to(outside)
    inside = hm_dir / "images" / linked_in[:3] / f"{linked_in}.jpg"
    os.replace(inside, hm_dir / "spare.jpg")
    inside.symlink_to(hm_dir / "spare.jpg")
    out = tmp_path / "tables"
    ingest(hm_dir, out)
    bad = quarantined(out, "images")
    assert bad["item_id"].tolist() == [linked_out]
    assert (bad["problem"] == "a link to a file outside the source (refused)").all()
    copied = {path.name for path in (out / "images").rglob("*.jpg")}
    assert f"{linked_out}.jpg" not in copied and f"{linked_in}.jpg" in copied

    (hm_dir / "transactions_train.csv").rename(tmp_path / "elsewhere" / "log.csv")
    (hm_dir / "transactions_train.csv").symlink_to(tmp_path / "elsewhere" / "log.csv")
    with pytest.raises(DataError, match=r"transactions_train.csv: a link to .*log.csv, outside the source folder"):
        ingest(hm_dir, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_links_out_of_a_native_source_are_refused(tmp_path: Path):
    source = tmp_path / "native"
    (source / "images").mkdir(parents=True)
    (source / "images" / "b.jpg").symlink_to(outside_jpeg(tmp_path))
    (source / "pics").mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(source / "pics" / "c.jpg", format="JPEG")
    items = [["item_id", "text", "image_path"], ["a", "A dress", "images/b.jpg"], ["c", "A hat", "pics/c.jpg"]]
    log = [
        ["user_id", "item_id", "ts", "label"],
        ["u1", "a", "2020-01-02", "1"],
        ["u1", "c", "2020-01-02", "0"],
        ["u2", "c", "2020-07-02", "1"],
        ["u2", "a", "2020-07-02", "0"],
    ]
    (source / "items.csv").write_text(csv_text(items))
    (source / "impressions.csv").write_text(csv_text(log))
    manifest = ingest(source, tmp_path / "out", format="native")
    bad = quarantined(tmp_path / "out", "images")
    assert bad["item_id"].tolist() == ["a"] and "outside the source" in bad["problem"].iloc[0]
    assert manifest["rows"]["items"] == 2, "the item stays, without its photo"
    assert [p.name for p in (tmp_path / "out" / "images").rglob("*.jpg")] == ["c.jpg"]
