"""The per-model alias lock: held for the block and released after it, even on error; a held lock makes others
wait and then fail with a message saying who holds it and what to do; a stale one is broken."""

import threading
import time

import pytest
from mlflow import MlflowClient

from em3.registry import RegistryError
from em3.registry import lock as lock_module
from em3.registry.lock import model_lock


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory) -> MlflowClient:
    """One store for the module (creating one takes seconds); each test locks a model of its own name."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('lock') / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def names(mlflow: MlflowClient) -> set[str]:
    return {model.name for model in mlflow.search_registered_models()}


def test_the_lock_is_a_registered_model_for_the_block(mlflow):
    with model_lock(mlflow, "held", "alice"):
        held = mlflow.get_registered_model("held.lock")
        assert held.tags["em3_lock_for"] == "held" and held.tags["holder"].startswith("alice@")
    assert "held.lock" not in names(mlflow)
    with pytest.raises(RuntimeError, match="failed inside"), model_lock(mlflow, "held", "alice"):
        raise RuntimeError("failed inside")
    assert "held.lock" not in names(mlflow)


def test_a_held_lock_makes_the_next_writer_wait_then_fail_clearly(mlflow):
    with model_lock(mlflow, "busy", "alice"):
        started = time.monotonic()
        with pytest.raises(RegistryError) as error, model_lock(mlflow, "busy", "bob", wait_s=0.5):
            pass
        assert time.monotonic() - started >= 0.5
    message = str(error.value)
    assert "model 'busy' stayed locked for 0.5 s by alice@" in message
    assert "delete the registered model 'busy.lock' in MLflow and retry" in message


def test_a_waiting_writer_gets_the_lock_when_it_is_released(mlflow):
    order = []

    def second() -> None:
        with model_lock(mlflow, "queue", "bob", wait_s=30):
            order.append("bob")

    with model_lock(mlflow, "queue", "alice"):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.5)
        order.append("alice")
    waiter.join(timeout=30)
    assert order == ["alice", "bob"] and "queue.lock" not in names(mlflow)


def test_a_stale_lock_is_broken(mlflow, monkeypatch):
    mlflow.create_registered_model("stale.lock", tags={"holder": "a process that died"})
    monkeypatch.setattr(lock_module, "STALE_AFTER_S", 0.0)
    time.sleep(0.01)
    with model_lock(mlflow, "stale", "bob", wait_s=5):
        assert mlflow.get_registered_model("stale.lock").tags["holder"].startswith("bob@")
    assert "stale.lock" not in names(mlflow)
