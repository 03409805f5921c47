"""One writer at a time per registered model: register, promote and rollback change its aliases under a lock, so
that processes racing for the same model (two pipelines finishing together) never decide against a champion that
is being replaced, leave two versions each believing it is champion, or lose a ``previous_champion`` link.

MLflow has no compare-and-set on aliases, but creating a registered model is atomic in every store (a unique
name, in SQLite or behind an MLflow server): the lock is the registered model ``<name>.lock``, created to take it
and deleted to release it; its tags say who holds it. A lock older than ``STALE_AFTER_S`` (its holder died) is
broken by the next writer.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from em3.registry.tracking import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

LOCK_SUFFIX = ".lock"
WAIT_S = 120.0  # how long a writer waits for the lock before giving up
STALE_AFTER_S = 600.0  # a registration takes seconds: a lock this old was left by a process that died
POLL_S = 0.1


@contextmanager
def model_lock(mlflow: MlflowClient, name: str, user: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the alias lock of registered model ``name`` for the block."""
    from mlflow.exceptions import MlflowException

    lock = name + LOCK_SUFFIX
    holder = {
        "em3_lock_for": name,
        "holder": f"{user}@{socket.gethostname()} pid {os.getpid()}",
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    deadline = time.monotonic() + wait_s
    while True:
        try:
            mlflow.create_registered_model(lock, tags=holder, description=f"em3: alias changes of {name!r} in progress")
            break
        except MlflowException as error:
            # taken; or taken and released while MLflow's SQL store looked the existing lock up
            if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        held = _current(mlflow, lock)
        if held is not None and time.time() - held.creation_timestamp / 1000 > STALE_AFTER_S:
            _break(mlflow, lock, held.creation_timestamp)
            continue
        if time.monotonic() > deadline:
            who = dict(held.tags) if held is not None else {}
            raise RegistryError(
                f"model {name!r} stayed locked for {wait_s:g} s by {who.get('holder', 'another writer')} (since "
                f"{who.get('since', '?')}); if no em3 register/promote/rollback is running, delete the registered "
                f"model {lock!r} in MLflow and retry"
            )
        time.sleep(POLL_S * (1 + random.random()))  # jitter: waiters do not retry in lockstep
    try:
        yield
    finally:
        mlflow.delete_registered_model(lock)


def _current(mlflow: MlflowClient, lock: str):
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_registered_model(lock)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    return None  # released in the meantime


def _break(mlflow: MlflowClient, lock: str, created_ms: int) -> None:
    """Delete a stale lock, unless another writer has broken and re-taken it since it was read."""
    from mlflow.exceptions import MlflowException

    held = _current(mlflow, lock)
    if held is None or held.creation_timestamp != created_ms:
        return
    try:
        mlflow.delete_registered_model(lock)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
