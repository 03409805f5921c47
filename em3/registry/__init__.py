"""MLflow tracking and the model registry behind a metric gate: log a run, register it (``champion`` or
``challenger``), promote, roll back, list, and load a registered model back without pickle."""

from em3.registry.gate import CHALLENGER, CHAMPION, Decision, decide
from em3.registry.registry import RegistryError, history, load, promote, register, rollback
from em3.registry.tracking import log_run

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Decision",
    "RegistryError",
    "decide",
    "history",
    "load",
    "log_run",
    "promote",
    "register",
    "rollback",
]
