"""The pipeline's register step runs in its own pod: it sees the tables and the token store at its own input paths,
not where training saw them. register_best builds the serving catalogue from the paths it is given."""

from __future__ import annotations

import shutil

import mlflow.pyfunc
import torch

from em3.workflow import register_best
from tests.serving.conftest import ATOL, contract_rows, own_scores


def test_register_builds_the_catalogue_from_its_own_data_inputs(served, tmp_path, monkeypatch):
    pod = tmp_path / "register-pod"
    dirs = {
        "tables_dir": served.cfg.data.tables_dir,
        "validation_dir": served.cfg.data.validation_dir,
        "store_dir": served.cfg.data.store_dir,
    }
    mounted = {key: pod / key for key in dirs}
    for key, path in dirs.items():
        shutil.copytree(path, mounted[key])
    run = pod / "run"
    for part in ("model", "metrics"):
        shutil.copytree(served.cfg.output_dir / part, run / part)
    away = {key: path.with_name(path.name + ".away") for key, path in dirs.items()}
    expected = own_scores(served)  # computed before training's paths go away
    # a registry of its own: the session's (served) must keep version 1 as its champion for the other tests
    registry = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_location": str(tmp_path / "artifacts")}
    cfg = served.cfg.model_copy(update={"registry": served.cfg.registry.model_copy(update=registry)})
    rows = contract_rows(served)
    try:
        for key, path in dirs.items():  # the paths training saw do not exist in the register pod
            path.rename(away[key])
        result = register_best(cfg, [run], None, "tiny", {key: str(p) for key, p in mounted.items()})
    finally:
        for key, path in dirs.items():
            away[key].rename(path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.registry.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{result['model']}/{result['version']}")
    scores = torch.from_numpy(model.predict(rows)["score"].to_numpy())
    torch.testing.assert_close(scores, expected, rtol=0, atol=ATOL)
