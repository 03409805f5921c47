"""`em3 score` end to end: a log with good, new-item, unknown-user and malformed rows, on disk and on S3 (moto's
server); the scores are the MLflow Model's; one-line errors for models that do not exist."""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from em3.cli import main
from em3.registry import RegistryError
from em3.serving.batch import score_log
from tests.serving.conftest import ATOL, contract_rows, log_with_new_items

BUCKET = "em3-scoring"


def scoring_log(served) -> pd.DataFrame:
    """The test rows plus a new item, an unknown user and three malformed rows (data rows 1..n in this order)."""
    rows = contract_rows(served)
    extra = pd.DataFrame(
        {
            "user_id": [rows["user_id"][0], "stranger", "", rows["user_id"][1], rows["user_id"][2]],
            "item_id": ["new-b", rows["item_id"][0], rows["item_id"][1], rows["item_id"][1], "never"],
            "ts": ["2099-01-01", "2099-01-01", "2099-01-01", "someday", "2099-01-01"],
            "sales_channel_id": [1, 2, 1, 1, 1],
        }
    )
    return pd.concat([rows, extra], ignore_index=True)


def assert_scored(served, manifest: dict, scores: pd.DataFrame, quarantine: pd.DataFrame, log: pd.DataFrame) -> None:
    n = len(log)
    assert manifest["input"]["rows"] == n and manifest["output"]["rows"] == len(scores) == n - 3
    assert manifest["quarantine"]["rows"] == len(quarantine) == 3
    assert manifest["quarantine"]["reasons"] == {
        "user_id: missing": 1,
        "ts: not an ISO 8601 date or time": 1,
        "item_id: not in the model's catalogue and no content for it in the token store of new items": 1,
    }
    assert quarantine["row"].tolist() == [n - 2, n - 1, n]  # data rows, 1 = the first under the header
    assert (manifest["model"]["name"], manifest["model"]["version"], manifest["model"]["run_id"]) == (
        "em3",
        1,
        served.run_id,
    )
    assert len(manifest["input"]["sha256"]) == 64
    assert manifest["cold_item_rows"] == 1 and manifest["unknown_user_rows"] == 1
    assert scores["cold_item"].sum() == 1 and (~scores["known_user"]).sum() == 1
    pyfunc = mlflow.pyfunc.load_model("models:/em3@champion")
    expected = pyfunc.predict(log.iloc[: n - 3], params={"token_store": str(served.new_items)})["score"]
    np.testing.assert_allclose(scores["score"].to_numpy(), expected.to_numpy(), rtol=0, atol=ATOL)  # other batches
    assert scores["user_id"].tolist() == log["user_id"].iloc[: n - 3].tolist()


def test_score_a_log_on_disk_through_the_cli(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.cfg.registry.tracking_uri)
    log = scoring_log(served)
    log.to_csv(tmp_path / "log.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "registry": {"tracking_uri": served.cfg.registry.tracking_uri},
                "score": {"chunk_rows": 100, "progress": False, "device": "cpu"},
            }
        )
    )
    out = tmp_path / "out" / "scores.parquet"
    code = main(
        [
            "score",
            "--config",
            str(config),
            "--model",
            "models:/em3@champion",
            "--input",
            str(tmp_path / "log.csv"),
            "--output",
            str(out),
            "--store",
            str(served.new_items),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert f"scored {len(log) - 3:,} of {len(log):,} rows" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "scores.manifest.json").read_text())
    assert manifest["input"]["rows"] > manifest["output"]["rows"] > 100, "several chunks of 100 rows"
    quarantine = pd.read_parquet(tmp_path / "out" / "scores.quarantine.parquet")
    assert_scored(served, manifest, pd.read_parquet(out), quarantine, log)
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "scores.manifest.json",
        "scores.parquet",
        "scores.quarantine.parquet",
    ]  # no temporary file left


def test_score_a_log_on_s3(served, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_TRACKING_URI": served.cfg.registry.tracking_uri,
        }.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        log = scoring_log(served)
        log.to_parquet(tmp_path / "log.parquet", index=False)
        s3.upload_file(str(tmp_path / "log.parquet"), BUCKET, "in/log.parquet")
        manifest = score_log(
            served.cfg,
            f"runs:/{served.run_id}",
            f"s3://{BUCKET}/in/log.parquet",
            f"s3://{BUCKET}/out/scores.parquet",
            str(served.new_items),
        )
        keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"])
        assert keys == ["out/scores.manifest.json", "out/scores.parquet", "out/scores.quarantine.parquet"]
        for key in keys:
            s3.download_file(BUCKET, key, str(tmp_path / key.split("/")[1]))
    finally:
        moto.stop()
    assert json.loads((tmp_path / "scores.manifest.json").read_text()) == json.loads(json.dumps(manifest))
    manifest["model"].update(name="em3", version=1)  # a run URI names no registered version
    assert_scored(
        served,
        manifest,
        pd.read_parquet(tmp_path / "scores.parquet"),
        pd.read_parquet(tmp_path / "scores.quarantine.parquet"),
        log,
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/nobody@champion", r"model 'nobody' is not registered at sqlite:///"),
        ("models:/em3@challenger", r"model 'em3' has no alias 'challenger'"),
        ("models:/em3/9", r"model 'em3' has no version 9"),
        ("runs:/0123456789abcdef0123456789abcdef", r"MLflow: .*0123456789abcdef0123456789abcdef"),
        ("s3://bucket/model", r"'s3://bucket/model' is not a model URI"),
    ],
)
def test_a_model_that_does_not_exist_is_a_one_line_error(served, tmp_path, uri, message):
    (tmp_path / "log.csv").write_text("user_id,item_id,ts\nu,i,2020-01-01\n")
    with pytest.raises(RegistryError, match=message) as error:
        score_log(served.cfg, uri, str(tmp_path / "log.csv"), str(tmp_path / "scores.parquet"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "scores.parquet").exists()


def test_a_log_without_a_required_column_is_refused(served, tmp_path):
    (tmp_path / "log.csv").write_text("user_id,item,ts\nu,i,2020-01-01\n")
    with pytest.raises(ValueError, match=r"log.csv: missing column\(s\) \['item_id'\]"):
        score_log(served.cfg, "models:/em3@champion", str(tmp_path / "log.csv"), str(tmp_path / "s.parquet"))


def test_em3_score_encodes_the_new_items_of_a_log_from_an_items_file(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.cfg.registry.tracking_uri)
    log = log_with_new_items(served, tmp_path / "new", 5)
    log.to_csv(tmp_path / "log.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "registry": {"tracking_uri": served.cfg.registry.tracking_uri},
                "features": {"device": "cpu", "progress": False},
                "score": {"progress": False, "device": "cpu"},
            }
        )
    )
    command = [
        "score",
        "--config",
        str(config),
        "--model",
        "models:/em3@champion",
        "--input",
        str(tmp_path / "log.csv"),
        "--output",
        str(tmp_path / "scores.parquet"),
        "--items",
        str(tmp_path / "new" / "items.csv"),
        "--store",
        str(tmp_path / "store"),
    ]
    for run in range(2):
        assert main(command) == 0, capsys.readouterr().err
        assert "new items: 3, encoded from" in capsys.readouterr().out
        report = json.loads((tmp_path / "store" / "report.json").read_text())
        assert (report["items"], report["items_encoded"]) == (2, 2 if run == 0 else 0), "a rerun reuses the tokens"
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert scores["cold_item"].sum() == 2 and len(scores) == 7
    pyfunc = mlflow.pyfunc.load_model("models:/em3@champion")
    expected = pyfunc.predict(log.head(7), params={"token_store": str(served.new_items)})["score"]  # same content
    np.testing.assert_allclose(scores["score"].to_numpy(), expected.to_numpy(), rtol=0, atol=ATOL)
