"""`em3 register` processes racing for one model on one SQLite store: the alias changes are serialised (never two
champions, no lost alias, a gate decision against the champion of the moment, every change audited)."""

import pytest
from mlflow import MlflowClient

from tests.conftest import with_updates
from tests.registry.conftest import with_registry
from tests.registry.race import assert_serialised, race_register


@pytest.mark.parametrize(
    ("rounds", "processes"), [pytest.param(1, 2, id="once"), pytest.param(4, 3, id="repeated", marks=pytest.mark.slow)]
)
def test_racing_register_processes_are_serialised(trained_runs, tmp_path, rounds, processes):
    better, worse = trained_runs
    cfg = with_registry(better.cfg, tmp_path)
    mlflow = MlflowClient(tracking_uri=cfg.registry.tracking_uri, registry_uri=cfg.registry.tracking_uri)
    mlflow.search_experiments()  # creates the store's tables (the experiment itself is left to the racers)
    for round_ in range(rounds):
        racing = with_updates(cfg, registry={"model_name": f"race{round_}"})
        runs = [better.run_dir, worse.run_dir, better.run_dir][:processes]
        done = race_register(racing, runs, tmp_path / f"round{round_}")
        for process in done:
            assert process.returncode == 0, process.stderr[-3000:]
        assert_serialised(mlflow, racing, len(runs))
    names = {model.name for model in mlflow.search_registered_models()}
    assert names == {f"race{round_}" for round_ in range(rounds)}  # no lock left behind
