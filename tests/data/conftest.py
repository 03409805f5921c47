"""Fixtures for the ingest and validate tests: a tiny H&M-layout source written per test, the shared H&M
sample (read-only, skipped when absent), and an in-process S3 endpoint (moto).
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from em3.config import IngestConfig
from em3.ingest import run_ingest
from em3.validation.contract import INTERACTIONS_DIR, read_interactions
from em3.validation.output import write_interactions
from tests.conftest import HM_SAMPLE as SAMPLE  # noqa: E402

CUSTOMERS = [hashlib.sha256(f"customer {i}".encode()).hexdigest() for i in range(6)]
ARTICLES = [f"0{108775015 + i}" for i in range(12)]


def csv_text(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def write_tiny_hm(root: Path) -> Path:
    """A small, clean H&M layout: 6 customers, 12 articles with 8x8 JPEGs, purchases from January to July 2020
    (2 a month per customer, one of them bought twice: a 2-unit purchase)."""
    articles = [["article_id", "product_code", "prod_name", "product_type_name", "colour_group_name", "detail_desc"]]
    for i, article in enumerate(ARTICLES):
        articles.append(
            [
                article,
                article[:7],
                f"Item {i}",
                ["Dress", "Shirt"][i % 2],
                ["Black", "Red"][i % 3 == 0],
                f"Soft, simple piece number {i}.",
            ]
        )
        image = root / "images" / article[:3] / f"{article}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (20 * i, 100, 200)).save(image, format="JPEG")
    customers = [["customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency", "age", "postal_code"]]
    customers += [
        [c, "1.0" if i % 2 else "", "", "ACTIVE", "NONE", str(20 + i) if i != 3 else "", f"p{i}"]
        for i, c in enumerate(CUSTOMERS)
    ]
    transactions = [["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]]
    for month in range(1, 8):
        for c, customer in enumerate(CUSTOMERS):
            day = f"2020-{month:02d}-{1 + (3 * c + month) % 27:02d}"
            bought = [ARTICLES[(c + month) % 12], ARTICLES[(5 * c + 7 * month + 1) % 12]]
            for article in bought + bought[:1]:
                transactions.append([day, customer, article, "0.0254", str(1 + c % 2)])
    (root / "articles.csv").write_text(csv_text(articles))
    (root / "customers.csv").write_text(csv_text(customers))
    (root / "transactions_train.csv").write_text(csv_text(transactions))
    return root


@pytest.fixture
def hm_dir(tmp_path: Path) -> Path:
    return write_tiny_hm(tmp_path / "raw")


# The split protocol of DESIGN.md §4 for the H&M sample (the tiny fixtures use the same dates).
HM_SPLIT = {"valid_start": "2020-03-01", "test_start": "2020-06-01"}


def ingest(source: Path | str, out_dir: Path, **params: Any) -> dict[str, Any]:
    """run_ingest with 2 negatives per purchase (the tiny months are small)."""
    params = {**HM_SPLIT, "negatives_per_positive": 2, **params}
    return run_ingest(IngestConfig(source=str(source), **params), out_dir)


@pytest.fixture(scope="session")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared H&M sample, ingested once with the defaults."""
    if not (SAMPLE / "transactions_train.csv").is_file():
        pytest.skip(f"H&M sample not found at {SAMPLE} (set EM3_HM_SAMPLE); it is not part of the repository")
    out = tmp_path_factory.mktemp("hm_sample") / "data"
    run_ingest(IngestConfig(source=str(SAMPLE), **HM_SPLIT), out)
    return out


def read(out: Path, table: str) -> pd.DataFrame:
    if table == "interactions":
        return read_interactions(out).to_pandas()
    return pd.read_parquet(out / f"{table}.parquet")


def rewrite_interactions(out: Path, frame: pd.DataFrame) -> None:
    """Replace the interactions table of ``out`` with ``frame`` (day partitions, as ingest writes them)."""
    shutil.rmtree(out / INTERACTIONS_DIR)
    write_interactions(frame, out)


@pytest.fixture(scope="session")
def s3_endpoint() -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 S3 client on the moto endpoint; the same dummy settings reach em3 through the environment."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3")


def upload_folder(s3: Any, folder: Path, prefix: str) -> str:
    """Every file under ``folder`` to a new bucket under ``prefix``; returns ``s3://bucket/prefix``."""
    import uuid

    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for path in folder.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


def summary(manifest: dict, table: str) -> dict:
    (found,) = [s for s in manifest["raw_checks"] if s["table"] == table]
    assert found["rows_in"] == found["rows_kept"] + found["rows_quarantined"]
    return found


def quarantined(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / "quarantine" / f"{table}.parquet")


def append(path: Path, *rows: list[str]) -> None:
    path.write_text(path.read_text() + csv_text([list(row) for row in rows]))
