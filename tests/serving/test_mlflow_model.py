"""The MLflow Model of a registered version: same scores as em3's own prediction, loaded without pickle, with a
signature, an input example and pinned requirements; new items scored from their content; unknown users."""

from __future__ import annotations

import pickle
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.artifacts import download_artifacts

from em3.pyfunc.catalogue import ServingError
from em3.registry import load
from tests.serving.conftest import ATOL, contract_rows, new_items_store, own_scores

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"


@pytest.fixture
def champion(served, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.cfg.registry.tracking_uri)
    return mlflow.pyfunc.load_model("models:/em3@champion")


def test_pyfunc_scores_are_em3s_own_prediction(served, champion):
    rows = contract_rows(served)
    predicted = champion.predict(rows)
    assert list(predicted.columns) == ["score", "refused"] and len(predicted) == len(rows) > 100
    assert (predicted["refused"] == "").all()
    torch.testing.assert_close(torch.from_numpy(predicted["score"].to_numpy()), own_scores(served), rtol=0, atol=ATOL)


def test_registry_load_still_returns_the_raw_ranker(served):
    ranker = load("models:/em3@champion", served.cfg.registry)
    assert type(ranker).__name__ == "Ranker"
    for name, value in served.model.state_dict().items():
        assert torch.equal(ranker.state_dict()[name], value), name


def test_the_model_is_code_and_files_with_signature_example_and_pinned_requirements(served, tmp_path):
    path = Path(
        download_artifacts(
            artifact_uri=f"runs:/{served.run_id}/model",
            dst_path=str(tmp_path),
            tracking_uri=served.cfg.registry.tracking_uri,
        )
    )
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in pyfunc
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt", ".bin")]
    assert (path / "artifacts" / "weights" / "model.safetensors").is_file()
    assert (path / "artifacts" / "catalogue" / "catalogue.safetensors").is_file()
    inputs = {
        column["name"]: (column["type"], column["required"])
        for column in yaml.safe_load(mlmodel["signature"]["inputs"])
    }
    assert inputs == {
        "user_id": ("string", True),
        "item_id": ("string", True),
        "ts": ("string", True),
        "sales_channel_id": ("long", False),
    }
    assert [c["name"] for c in yaml.safe_load(mlmodel["signature"]["outputs"])] == ["score", "refused"]
    example = pd.read_json(path / "input_example.json", orient="split")
    assert list(example.columns) == ["user_id", "item_id", "ts", "sales_channel_id"] and len(example) == 2
    locked = dict(line.split("==") for line in LOCK.read_text().split() if "==" in line)
    required = [line for line in (path / "requirements.txt").read_text().split() if line]
    assert {"mlflow", "torch", "peft", "safetensors", "pandas"} <= {line.split("==")[0] for line in required}
    for line in required:
        name, pinned = line.split("==")
        assert locked[name] == pinned, line


def test_loading_and_scoring_never_unpickle(served, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    import cloudpickle

    for module in (pickle, cloudpickle):
        for name in ("load", "loads"):
            monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.cfg.registry.tracking_uri)
    rows = contract_rows(served).head(20)
    scores = mlflow.pyfunc.load_model("models:/em3@champion").predict(rows)["score"]
    torch.testing.assert_close(torch.from_numpy(scores.to_numpy()), own_scores(served)[:20], rtol=0, atol=ATOL)


def test_new_items_are_scored_from_their_content_and_the_id_it_maps_to(served, champion):
    known = contract_rows(served).iloc[[0]]
    rows = pd.concat([known.assign(item_id=item) for item in ("new-a", "new-b", "new-a-twin", "new-c")])
    without_store = champion.predict(rows)
    assert without_store["score"].isna().all()
    assert without_store["refused"].str.contains("not in the model's catalogue").all()

    scored = champion.predict(rows, params={"token_store": str(served.new_items)})
    score = scored["score"].to_numpy()
    assert np.isfinite(score[:3]).all() and scored["refused"].iloc[:3].eq("").all()
    # float32 logits of about 3 round at ~3e-7, about 2e-8 in probability at these scores (~0.06): a difference of
    # 1e-6 is content, not rounding (how large it is depends on how far the tiny model learned to read content)
    assert abs(score[0] - score[1]) > 1e-6, "different content, different score"
    assert score[0] == score[2], "the same content under two new ids: the same score (the ID comes from content)"
    assert np.isnan(score[3]) and "no content for it in the token store" in scored["refused"].iloc[3]


def test_an_unknown_user_scores_as_the_neutral_user_with_no_history(served, champion):
    rows = contract_rows(served).head(3)
    strangers = champion.predict(rows.assign(user_id=["stranger-1", "stranger-2", "stranger-3"]))
    assert strangers["refused"].eq("").all() and np.isfinite(strangers["score"]).all()
    same_item = champion.predict(rows.assign(user_id="stranger-9", item_id=rows["item_id"].iloc[0]))
    # unknown users differ only by context, and these rows share it: the same inputs. The same float32 inputs at
    # different rows of one batched matrix product may still round apart (blocked kernels; 3e-8 was seen here,
    # a few ulp of scores near 0.25, where an ulp is 3e-8), so equal means within 1e-6, far below any input's effect
    assert np.ptp(same_item["score"].to_numpy()) < 1e-6, "unknown users differ only by context: these rows share it"


def test_a_store_encoded_with_other_feature_settings_is_refused(served, champion, tmp_path):
    other = new_items_store(served.cfg, tmp_path, served.cfg.features.model_copy(update={"image_grid": 2}))
    with pytest.raises(
        ServingError,
        match=r"does not match the model's feature settings: .*image_tokens \[4, 1280\] "
        r"\(the model's: \[9, 1280\]\)",
    ):
        champion.predict(contract_rows(served).head(1), params={"token_store": str(other)})


def test_malformed_rows_are_refused_with_a_reason(served, champion):
    rows = contract_rows(served).head(4).astype({"sales_channel_id": "int64"})
    rows.loc[0, "user_id"] = ""
    rows.loc[1, "ts"] = "yesterday"
    rows.loc[2, "sales_channel_id"] = -3
    scored = champion.predict(rows)
    assert scored["refused"].tolist()[:3] == [
        "user_id: missing",
        "ts: not an ISO 8601 date or time",
        "sales_channel_id: not an integer 0-9999",
    ]
    assert scored["score"].isna().tolist() == [True, True, True, False]
