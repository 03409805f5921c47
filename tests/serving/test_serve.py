"""A real `mlflow models serve -m models:/em3@champion --env-manager local` process answers /invocations with em3's
own scores, and scores a new item from the token store named in the request's params."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import stop_process_group, wait_until_up
from tests.serving.conftest import ATOL, contract_rows, own_scores


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def server(served, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": served.cfg.registry.tracking_uri,
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }  # its uvicorn (an active venv)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/em3@champion",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/ping", process, log, "mlflow models serve")
        yield url
    finally:
        stop_process_group(process)


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_em3s_scores(served, server):
    rows = contract_rows(served)
    answer = _post(f"{server}/invocations", {"dataframe_split": rows.to_dict(orient="split", index=False)})
    scores = np.array([row["score"] for row in answer["predictions"]])
    assert [row["refused"] for row in answer["predictions"]] == [""] * len(rows)
    np.testing.assert_allclose(scores, own_scores(served).numpy(), rtol=0, atol=ATOL)

    new = rows.head(2).assign(item_id=["new-a", "new-b"])
    body = {
        "dataframe_split": new.to_dict(orient="split", index=False),
        "params": {"token_store": str(served.new_items)},
    }
    cold = [row["score"] for row in _post(f"{server}/invocations", body)["predictions"]]
    assert np.isfinite(cold).all() and cold[0] != cold[1]
