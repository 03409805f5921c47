"""The daily dataset under s3:// (em3.daily_s3), through boto3 against moto's S3 server: a part is published whole
as one listing, a later run uploads only the files that changed, a fetch rebuilds the part byte for byte, and a
damaged or hostile listing is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from em3.daily import FEATURES, TABLES, fetch_part, publish_part
from em3.errors import DataError


def tables(root: Path, days: dict[str, bytes]) -> Path:
    """A tables folder: a manifest (its marker), a users table and one partition per day."""
    (root / "interactions").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"days": sorted(days)}))
    (root / "users.parquet").write_bytes(b"users")
    for day, rows in days.items():
        (root / "interactions" / f"day={day}").mkdir(exist_ok=True)
        (root / "interactions" / f"day={day}" / "part-0.parquet").write_bytes(rows)
    return root


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(s3) -> tuple[object, str, str]:
    bucket = f"daily-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    return s3, bucket, f"s3://{bucket}/em3/dataset"


def uploaded(s3, bucket: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_a_day_run_uploads_only_what_changed_and_a_fetch_rebuilds_the_part(dataset, tmp_path: Path) -> None:
    s3, bucket, uri = dataset
    assert not fetch_part(uri, TABLES, tmp_path / "none"), "no dataset yet"
    first = tables(tmp_path / "first", {"2020-03-01": b"day one", "2020-03-02": b"day two"})
    assert publish_part(first, uri, TABLES) == f"{uri}/{TABLES}"
    objects = {key for key in uploaded(s3, bucket) if "/objects/" in key}
    assert len(objects) == 4, "manifest, users, two partitions: one object each"

    fetched = tmp_path / "fetched"
    assert fetch_part(uri, TABLES, fetched) and files(fetched) == files(first)
    tables(fetched, {"2020-03-01": b"day one", "2020-03-02": b"day two", "2020-03-03": b"day three"})
    before = uploaded(s3, bucket)
    publish_part(fetched, uri, TABLES)
    new = uploaded(s3, bucket) - before
    assert len(new) == 2, f"the new day and the new manifest only: {new}"  # users and old days unchanged

    again = tmp_path / "again"
    assert fetch_part(uri, TABLES, again) and files(again) == files(fetched)
    assert not fetch_part(uri, FEATURES, tmp_path / "store"), "each part has its own listing"


def test_a_part_without_its_marker_is_never_published(dataset, tmp_path: Path) -> None:
    s3, bucket, uri = dataset
    folder = tables(tmp_path / "t", {"2020-03-01": b"rows"})
    (folder / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"not a complete tables output \(no manifest.json\); nothing published"):
        publish_part(folder, uri, TABLES)
    assert uploaded(s3, bucket) == set()


def test_a_damaged_object_or_a_listing_that_leaves_the_folder_is_refused(dataset, tmp_path: Path) -> None:
    s3, bucket, uri = dataset
    publish_part(tables(tmp_path / "t", {"2020-03-01": b"rows"}), uri, TABLES)
    listing_key = f"em3/dataset/{TABLES}/current.json"
    listing = json.loads(s3.get_object(Bucket=bucket, Key=listing_key)["Body"].read())
    sha = listing["files"]["users.parquet"]  # listed after manifest.json, the marker: fetched before it
    s3.put_object(Bucket=bucket, Key=f"em3/dataset/objects/{sha}", Body=b"other bytes")
    with pytest.raises(DataError, match=rf"objects/{sha}: its bytes do not have that hash"):
        fetch_part(uri, TABLES, tmp_path / "damaged")

    assert not (tmp_path / "damaged" / "manifest.json").exists(), "the marker comes last: never looks complete"

    hostile = {"files": {"../../outside.txt": sha}}
    s3.put_object(Bucket=bucket, Key=listing_key, Body=json.dumps(hostile).encode())
    with pytest.raises(DataError, match=r"'\.\./\.\./outside\.txt' is not a relative path inside the source"):
        fetch_part(uri, TABLES, tmp_path / "inside" / "dest")
    assert not (tmp_path / "outside.txt").exists()
