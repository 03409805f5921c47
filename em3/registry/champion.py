"""The champion scored on the candidate's test rows (DESIGN §6): a daily run's test split is its newest day, which
the champion never saw, so the gate compares the two there rather than with the metrics the champion was
registered with (another day's). The champion's weights are carried over to the candidate's tables by id
(em3.train.warm_start.rebuilt_for), and it is scored as evaluation scores the candidate.
"""

from __future__ import annotations

from typing import Any

from em3.config import Config, ConfigError
from em3.data.dataset import RankingData
from em3.metrics import ranking_metrics
from em3.models.io import IDS
from em3.registry.gate import CHAMPION
from em3.registry.registry import fetched_model_dir
from em3.registry.tracking import client, mlflow_errors_as_registry_errors
from em3.train.trainer import model_shapes, predict
from em3.train.warm_start import rebuilt_for


@mlflow_errors_as_registry_errors
def champion_on_test(cfg: Config, data: RankingData) -> dict[str, Any] | None:
    """``{"version", "metrics"}`` of the registry's champion on ``data.test``; ``{"version", "skipped"}`` (why) when
    it cannot be carried over (saved before its ids were, or reading other inputs); None when the model has no
    champion yet."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client(cfg.registry).get_registered_model(cfg.registry.model_name).aliases
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None  # nothing registered yet (a registry that cannot be reached is an error, not "no champion")
    if CHAMPION not in aliases:
        return None
    version = int(aliases[CHAMPION])
    uri = f"models:/{cfg.registry.model_name}/{version}"
    with fetched_model_dir(uri, cfg.registry, progress=cfg.train.progress) as path:
        if not (path / IDS).is_file():
            return {"version": version, "skipped": f"champion v{version} was saved without {IDS}"}
        try:
            model, champion_cfg = rebuilt_for(path, data, model_shapes(data))
        except ConfigError as error:  # other inputs than this data's: the gate falls back to its own metrics
            return {"version": version, "skipped": str(error)}
    test = data.test
    logits = predict(model, test, data, cfg.evaluate.batch_size, champion_cfg.train.bf16)
    metrics = ranking_metrics(test.user.numpy(), test.label.numpy(), logits, test.cold.numpy())
    return {"version": version, "metrics": metrics}
