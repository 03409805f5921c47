"""The scoring pipeline: its committed YAML is the compiled one, and through kfp.local it takes the candidates,
encodes only the items the model never saw, scores and writes, as `em3 score` does."""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml

from em3.cli import main
from pipelines.em3_score_pipeline import SCORE_YAML, compile_score
from tests.serving.conftest import ATOL, log_with_new_items


def test_committed_yaml_is_the_compiled_scoring_pipeline(tmp_path):
    compiled = list(yaml.safe_load_all(compile_score(tmp_path / "score.yaml").read_text()))
    assert compiled == list(yaml.safe_load_all(SCORE_YAML.read_text())), "run `em3 pipeline compile --pipeline score`"
    tasks = compiled[0]["root"]["dag"]["tasks"]
    secrets = compiled[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {name for name, spec in secrets.items() if "secretAsEnv" in spec} == {
        "exec-candidates",
        "exec-new-item-features",
        "exec-score",
        "exec-write",
    }
    assert set(tasks) == {"candidates", "new-item-features", "score", "write"}
    assert tasks["score"]["dependentTasks"] == ["candidates", "new-item-features"]
    assert tasks["candidates"]["cachingOptions"] == {} and tasks["new-item-features"]["cachingOptions"] == {
        "enableCache": True
    }


@pytest.mark.slow
def test_the_scoring_pipeline_runs_locally_from_the_cli(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.cfg.registry.tracking_uri)
    log = log_with_new_items(served, tmp_path / "new", 40)
    log.to_csv(tmp_path / "log.csv", index=False)
    out = tmp_path / "out" / "scores.parquet"

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(served.cfg.model_dump(mode="json")))
    code = main(
        [
            "pipeline",
            "run",
            "--local",
            "--pipeline",
            "score",
            "--config",
            str(config),
            "--pipeline-root",
            str(tmp_path / "pipeline"),
            "--input",
            str(tmp_path / "log.csv"),
            "--items",
            str(tmp_path / "new" / "items.csv"),
            "--output",
            str(out),
            "--no-cache",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for task in ("candidates", "new-item-features", "score", "write"):
        assert f"  {task} " in printed and "SUCCESS" in printed
    assert "scored 42 of 43 rows with models:/em3@champion; refused 1" in printed
    manifest = json.loads((out.parent / "scores.manifest.json").read_text())
    assert (manifest["input"]["rows"], manifest["output"]["rows"], manifest["cold_item_rows"]) == (43, 42, 2)
    reasons = manifest["quarantine"]["reasons"]
    assert reasons == {"item_id: not in the model's catalogue and no content for it in the token store of new items": 1}
    written = pd.read_parquet(out)
    assert len(written) == 42
    expected = mlflow.pyfunc.load_model("models:/em3@champion").predict(
        log.head(42), params={"token_store": str(served.new_items)}
    )["score"]  # new-a, new-b: the same content
    np.testing.assert_allclose(written["score"].to_numpy(), expected.to_numpy(), rtol=0, atol=ATOL)
