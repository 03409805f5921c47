"""The pipeline: the committed YAML is what compiles, the Kubernetes settings of its tasks, a whole run through
kfp.local (champion, then a run failing the gate, promote and rollback), what ``submit`` sends, and the helpers
the components share."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import kfp
import pytest
import yaml

from em3.cli import main
from em3.config import ConfigError, config_from_yaml
from em3.registry import history, promote, rollback
from em3.registry.tracking import client
from em3.workflow import PipelineError, best_run, log_metrics
from pipelines.em3_run import PIPELINE_YAML, pipeline_arguments, run_local, submit, summary_table
from tests.pipelines.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = [  # kfp.local's notices: tasks run in this environment, and the cluster-only settings are ignored
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Task 'train'. settings:UserWarning"),
]


def compile_in_subprocess(out: Path, **env: str) -> str:
    """``em3 pipeline compile`` in a fresh interpreter (images are read from the environment at import time)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("EM3_IMAGE", "EM3_GPU_IMAGE")} | env
    subprocess.run(
        [sys.executable, "-m", "em3", "pipeline", "compile", "--out", str(out)],
        cwd=REPO,
        env=environ,
        check=True,
        capture_output=True,
    )
    return out.read_text()


def test_committed_yaml_is_the_compiled_pipeline(tmp_path):
    assert compile_in_subprocess(tmp_path / "p.yaml") == PIPELINE_YAML.read_text(), (
        "pipelines/em3_pipeline.yaml is stale: run `python -m em3 pipeline compile` and commit it"
    )


@pytest.fixture(scope="module")
def spec() -> SimpleNamespace:
    pipeline, platform = yaml.safe_load_all(PIPELINE_YAML.read_text())
    executors = pipeline["deploymentSpec"]["executors"]
    return SimpleNamespace(
        pipeline=pipeline,
        executors=executors,
        tasks=pipeline["root"]["dag"]["tasks"],
        k8s=platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"],
    )


def test_train_tasks_ask_for_a_gpu_node(spec):
    container = spec.executors["exec-train"]["container"]
    assert container["image"].endswith("-cuda")
    resources = container["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("4", "16Gi")
    train = spec.k8s["exec-train"]
    assert train["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert train["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    loop = spec.pipeline["components"]["comp-for-loop-1"]
    assert loop["dag"]["tasks"]["train"]["componentRef"]["name"] == "comp-train"
    assert spec.tasks["for-loop-1"]["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--variants"


def test_credentials_come_from_kubernetes_secrets(spec):
    def secrets(executor: str) -> dict[str, tuple[list[str], bool]]:
        return {
            s["secretName"]: ([e["envVar"] for e in s["keyToEnv"]], s["optional"])
            for s in spec.k8s[executor]["secretAsEnv"]
        }

    s3 = (["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"], False)
    for stage in ("ingest", "validate", "features", "train"):  # the last three compare the tables with the source
        assert secrets(f"exec-{stage}") == {"em3-s3": s3}
    assert secrets("exec-register") == {
        "em3-s3": s3,
        "em3-mlflow": (["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"], True),
    }
    assert "exec-evaluate" not in spec.k8s, "evaluate reads no source"
    for executor in spec.executors.values():  # no credential is baked into the package
        assert "env" not in executor["container"]


def test_caching_is_on_for_data_stages_and_off_for_register(spec):
    assert spec.tasks["ingest"]["cachingOptions"] == {"enableCache": True}
    assert spec.tasks["features"]["cachingOptions"] == {"enableCache": True}
    assert spec.tasks["register"]["cachingOptions"] == {}
    assert "validate" in spec.tasks["features"]["dependentTasks"], "features waits for the data checks"


def test_every_parameter_and_output_carries_a_description_for_the_kubeflow_ui(spec):
    root = spec.pipeline["root"]
    parameters = root["inputDefinitions"]["parameters"]
    assert set(parameters) == {
        "data_uri",
        "config",
        "backbone",
        "variants",
        "min_auc",
        "min_delta",
        "cold_tolerance",
        "run_date",
        "dataset_uri",
    }
    assert [name for name, p in parameters.items() if len(p.get("description", "")) < 40] == []
    assert "s3://bucket/prefix" in parameters["data_uri"]["description"]
    assert "champion" in parameters["min_auc"]["description"]
    undescribed = []
    for name, component in [("pipeline", root), *spec.pipeline["components"].items()]:
        if name.startswith("comp-for-loop"):
            continue  # ParallelFor's inner DAG: KFP names its channels itself
        for direction in ("inputDefinitions", "outputDefinitions"):
            for kind in ("parameters", "artifacts"):
                for field, definition in component.get(direction, {}).get(kind, {}).items():
                    if not definition.get("description"):
                        undescribed.append(f"{name}.{field}")
    assert undescribed == []


def test_a_dataset_volume_is_mounted_where_daily_runs_keep_their_dataset(tmp_path):
    _, platform = yaml.safe_load_all(compile_in_subprocess(tmp_path / "p.yaml", EM3_DATASET_PVC="em3-dataset"))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounted = {name for name, spec in executors.items() if spec.get("pvcMount")}
    assert mounted == {"exec-ingest", "exec-validate", "exec-features"}
    for name in mounted:
        (mount,) = executors[name]["pvcMount"]
        assert (mount["mountPath"], mount.get("pvcName") or mount["constant"]) == ("/mnt/em3-dataset", "em3-dataset")
    _, default = yaml.safe_load_all(PIPELINE_YAML.read_text())  # compiled without it: no volume asked for
    assert not any(
        spec.get("pvcMount") for spec in default["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    )


def test_image_names_are_set_at_compile_time(tmp_path):
    text = compile_in_subprocess(tmp_path / "p.yaml", EM3_IMAGE="registry.example.com/em3:1.2")
    executors = next(yaml.safe_load_all(text))["deploymentSpec"]["executors"]
    images = {name: executor["container"]["image"] for name, executor in executors.items()}
    assert images.pop("exec-train") == "registry.example.com/em3:1.2-cuda"
    assert set(images.values()) == {"registry.example.com/em3:1.2"}


def task_lines(out: str) -> list[tuple[str, str]]:
    """(task, status) of the lines a local run prints, after its first line (the pipeline root and the log)."""
    header, *lines = out.splitlines()
    assert header.startswith("kfp.local, pipeline root ") and header.endswith(".log"), header
    return [tuple(line.split()[:2]) for line in lines]


def test_whole_pipeline_locally_gate_promote_and_rollback(tmp_path, capsys):
    """Two runs through kfp.local on tiny synthetic data (the second reuses the cached tasks but register)."""
    cfg = tiny_config(tmp_path)
    outputs = tmp_path / "outputs"
    with pytest.warns(UserWarning, match=r"'train': settings .*accelerator.* have no effect in the current local"):
        first = run_local(cfg, outputs, variants=("id_only", "em3"), synthetic=True)  # secrets, GPU: cluster only
    stages = ["generate", "ingest", "validate", "features", "train", "train", "evaluate", "register"]
    assert task_lines(capsys.readouterr().out) == [(stage, "SUCCESS") for stage in stages], "one line per task"
    (log,) = (outputs / "logs").iterdir()
    assert "Executing task" in log.read_text() and "Streamed logs" in log.read_text(), "kfp.local's output is kept"
    assert set(first["models"]) == {"id_only_din", "em3_din"}
    assert all(0 <= model["auc"] <= 1 for model in first["models"].values())
    registered = first["registered"]
    assert (registered["model"], registered["version"], registered["alias"]) == ("em3", 1, "champion")
    assert registered["reason"].endswith("no champion yet")
    (v1,) = history(cfg)
    assert v1["aliases"] == ["champion"] and v1["tags"]["gate_decision"] == "champion"
    run = client(cfg.registry).get_run(v1["run_id"])
    assert run.data.tags["mlflow.runName"] == registered["candidate"]
    assert float(v1["tags"]["test_auc"]) == pytest.approx(first["models"][registered["candidate"]]["auc"])
    logged = {item.path for item in client(cfg.registry).list_artifacts(v1["run_id"], "plots")}
    assert "plots/roc.png" in logged, "the evaluation plots go with the registered run"
    table = summary_table(first)
    assert "version 1 → champion" in table and f"mlflow ui --backend-store-uri {cfg.registry.tracking_uri}" in table

    strict = tiny_config(tmp_path, min_auc=0.99)
    second = run_local(strict, outputs, variants=("id_only", "em3"), synthetic=True)
    cached = [(stage, "CACHED") for stage in stages[:-1]]
    assert task_lines(capsys.readouterr().out) == [*cached, ("register", "SUCCESS")], "register never comes from cache"
    assert second["models"] == first["models"], "the cached data and training tasks were reused"
    assert (second["registered"]["version"], second["registered"]["alias"]) == (2, "challenger")
    v1, v2 = history(cfg)
    assert (v1["aliases"], v2["aliases"]) == (["champion"], ["challenger"])
    assert "< min_auc 0.99" in v2["tags"]["gate_reason"] and v2["tags"]["gate_decision"] == "challenger"

    promote(cfg, 2, "reviewed by hand")
    assert [v["aliases"] for v in history(cfg)] == [[], ["champion"]]
    rollback(cfg, "back to the gated model")
    assert [v["aliases"] for v in history(cfg)] == [["champion"], []]


def test_a_failing_task_stops_the_run_with_the_end_of_its_log(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    missing = tmp_path / "no-such-raw-data"
    cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"source": str(missing)})})
    with pytest.raises(PipelineError) as failed:
        run_local(cfg, tmp_path / "outputs", variants=("id_only",))
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(failed.value))  # kfp.local colours task names
    assert message.startswith("Pipeline 'em3' finished with status FAILURE. Inner task failed: 'ingest'"), message
    assert f"DataError: {missing}: source folder not found" in message, "the task's own error, from its log"
    (log,) = (tmp_path / "outputs" / "logs").iterdir()
    assert message.endswith(f"Full log: {log}") and f"{missing}: source folder not found" in log.read_text()
    assert task_lines(capsys.readouterr().out) == [("ingest", "FAILURE")], "nothing ran after the failed task"


class FakeClient:
    """Records what em3 sends to kfp.Client (no network)."""

    calls: list[dict] = []

    def __init__(self, host: str | None = None, namespace: str = "kubeflow", **kwargs) -> None:
        self.calls.append({"host": host, "namespace": namespace, **kwargs})

    def create_run_from_pipeline_package(self, pipeline_file: str, arguments: dict, **kwargs) -> SimpleNamespace:
        package = next(yaml.safe_load_all(Path(pipeline_file).read_text()))  # the file exists only during the call
        self.calls.append({"package": package, "arguments": arguments, **kwargs})
        return SimpleNamespace(run_id="run-123")


@pytest.fixture
def fake_client(monkeypatch) -> list[dict]:
    monkeypatch.setattr(kfp, "Client", FakeClient)
    FakeClient.calls = []
    return FakeClient.calls


def test_submit_sends_the_compiled_pipeline_and_the_config(fake_client, tmp_path):
    cfg = tiny_config(tmp_path, tracking_uri="http://mlflow.example:5000", min_auc=0.6)
    cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"source": "s3://bucket/raw"})})
    run_id = submit("http://kfp.example:8080", cfg, ["em3"], experiment="nightly", run_name="r1", namespace="team")
    assert run_id == "run-123"
    init, call = fake_client
    assert init == {"host": "http://kfp.example:8080", "namespace": "team"}
    assert call["package"]["pipelineInfo"]["name"] == "em3"
    arguments = call["arguments"]
    assert set(arguments) == set(call["package"]["root"]["inputDefinitions"]["parameters"])
    assert arguments | {"config": None} == {
        "data_uri": "s3://bucket/raw",
        "backbone": "din",
        "variants": ["em3"],
        "min_auc": 0.6,
        "min_delta": 0.0,
        "cold_tolerance": 0.005,
        "config": None,
        "run_date": "",
        "dataset_uri": "",
    }
    gate = {"registry.min_auc": 0.6, "ingest.source": "s3://bucket/raw"}
    assert config_from_yaml(arguments["config"], "test", gate) == cfg, (
        "the config parameter and the parameters give back cfg"
    )
    assert (call["experiment_name"], call["run_name"], call["namespace"]) == ("nightly", "r1", "team")
    assert call["enable_caching"] is None, "each task's own caching setting applies"


def test_submit_refuses_a_local_sqlite_registry(fake_client, tmp_path):
    with pytest.raises(ConfigError, match="registry.tracking_uri"):
        submit("http://kfp.example:8080", tiny_config(tmp_path))
    assert fake_client == []


def test_cli_submit(fake_client, capsys):
    code = main(
        [
            "pipeline",
            "submit",
            "--host",
            "http://kfp.example:8080",
            "--experiment",
            "exp1",
            "--no-cache",
            "--variants",
            "id_only",
            "em3",
            "--set",
            "registry.tracking_uri=http://mlflow:5000",
            "--set",
            "ingest.source=s3://bucket/raw",
        ]
    )
    assert code == 0 and "created run run-123" in capsys.readouterr().out
    init, call = fake_client
    assert init["host"] == "http://kfp.example:8080" and call["experiment_name"] == "exp1"
    assert call["enable_caching"] is False
    assert call["arguments"]["data_uri"] == "s3://bucket/raw" and call["arguments"]["variants"] == ["id_only", "em3"]


def test_pipeline_arguments_move_parameters_out_of_the_config(tmp_path):
    cfg = tiny_config(tmp_path, min_auc=0.7)
    arguments = pipeline_arguments(cfg)
    values = yaml.safe_load(arguments["config"])
    assert "min_auc" not in values["registry"] and "backbone" not in values["model"]
    assert "source" not in values["ingest"] and arguments["min_auc"] == 0.7
    overrides = {"registry.min_auc": 0.7, "model.backbone": "din", "ingest.source": cfg.ingest.source}
    assert config_from_yaml(arguments["config"], "test", overrides) == cfg


def test_best_run_is_chosen_on_validation_auc(tmp_path):
    runs = []
    for name, valid_auc in (("a", 0.61), ("b", 0.74), ("c", None), ("d", math.nan)):
        (tmp_path / name / "metrics").mkdir(parents=True)
        body = {"valid": {"auc": valid_auc}, "test": {"auc": 0.9}}
        (tmp_path / name / "metrics" / "train.json").write_text(json.dumps(body))
        runs.append(tmp_path / name)
    assert best_run(runs) == tmp_path / "b"


def test_log_metrics_keeps_finite_numbers_and_writes_them_to_the_file(tmp_path):
    sink = kfp.dsl.Metrics(name="metrics", uri=str(tmp_path / "task" / "metrics"))
    log_metrics(sink, {"auc": 0.7, "steps": 3, "cold_auc": None, "nan": math.nan, "flag": True, "name": "x"}, "t_")
    log_metrics(sink, {"rows": 10})
    assert sink.metadata == {"t_auc": 0.7, "t_steps": 3.0, "rows": 10.0}
    assert json.loads(Path(sink.path).read_text()) == sink.metadata


def test_the_summary_never_prints_a_password_from_the_tracking_url():
    summary = {
        "models": {"em3_din": {"auc": 0.6}},
        "pipeline_root": "runs/p",
        "registered": {"candidate": "em3_din", "model": "em3", "version": 3, "alias": "new", "reason": "r"},
        "tracking_uri": "https://alice:s3cr3t-token@mlflow.example.com",
    }
    table = summary_table(summary)
    assert "s3cr3t-token" not in table and "mlflow ui --backend-store-uri https://***@mlflow.example.com" in table
