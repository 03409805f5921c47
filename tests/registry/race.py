"""Race real `em3 register` processes for one model name and check what the registry holds afterwards.

Each process imports everything first, then waits for a start file, so that all of them reach the registry at
the same moment. The check replays the gate over the versions in creation order: if the alias changes were
serialised, every recorded decision, the final aliases, the ``previous_champion`` chain and the audit log are
exactly what registering the same runs one after the other gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow import MlflowClient

from em3.config import Config
from em3.registry import CHALLENGER, CHAMPION, decide

WAIT_THEN_RUN = """
import os, pathlib, sys, time
import em3.cli, em3.registry, mlflow  # the imports take seconds: done before the start
start = pathlib.Path(sys.argv[1])
start.with_name(f"ready.{os.getpid()}").touch()
while not start.exists():
    time.sleep(0.002)
sys.exit(em3.cli.main(sys.argv[2:]))
"""


def race_register(
    cfg: Config, run_dirs: list[Path], workdir: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> list[subprocess.CompletedProcess]:
    """`em3 register --run DIR` for every run dir, each in its own process, started together."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    start = workdir / "start"
    command = [sys.executable, "-c", WAIT_THEN_RUN, str(start), "register", "--config", str(config), "--run"]
    env = {**os.environ, **(env or {})}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    processes = [subprocess.Popen([*command, str(run_dir)], env=env, **pipes) for run_dir in run_dirs]
    deadline = time.monotonic() + timeout
    while len(list(workdir.glob("ready.*"))) < len(processes) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            break  # one failed before the start: its output says why
        time.sleep(0.05)
    start.touch()
    done = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def assert_serialised(mlflow: MlflowClient, cfg: Config, registrations: int) -> list[str]:
    """The registry state of ``cfg.registry.model_name`` equals a one-by-one replay; returns the decisions."""
    name, rc = cfg.registry.model_name, cfg.registry
    model = mlflow.get_registered_model(name)
    versions = sorted(mlflow.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    assert [int(v.version) for v in versions] == list(range(1, registrations + 1))

    champion, chain, decisions, expected_audit = None, [], [], []
    for version in versions:
        metrics = {k.removeprefix("test_"): float(v) for k, v in version.tags.items() if k.startswith("test_")}
        own = f"champion v{champion[0]}'s own test metrics (not scored on this run's test rows)" if champion else ""
        decision = decide(metrics, champion[1] if champion else None, rc, own)  # synthetic runs: no rescoring
        assert version.tags["gate_decision"] == decision.alias, (version.version, decision, version.tags)
        assert version.tags["gate_reason"] == decision.reason, version.version
        if decision.alias == CHAMPION:
            previous = version.tags.get("previous_champion")
            assert previous == (str(champion[0]) if champion else None), (version.version, previous, champion)
            champion = (int(version.version), metrics)
            chain.append(int(version.version))
        assert version.tags[f"{decision.alias}_reason"] == f"gate: {decision.reason}"  # audited on the version
        decisions.append(decision.alias)
        expected_audit.append((decision.alias, int(version.version)))

    last_challenger = [int(v.version) for v, d in zip(versions, decisions, strict=True) if d == CHALLENGER][-1:]
    expected_aliases = {CHAMPION: chain[-1]} if chain else {}
    expected_aliases.update({CHALLENGER: last_challenger[0]} if last_challenger else {})
    assert {alias: int(version) for alias, version in model.aliases.items()} == expected_aliases  # no lost alias

    audit = [json.loads(value) for key, value in sorted(model.tags.items()) if key.startswith("audit.")]
    assert [(entry["event"], entry["version"]) for entry in audit] == expected_audit  # every change, in order
    return decisions
