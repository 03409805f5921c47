"""The PyTorchJob manifest for multi-node training: its structure, and that it carries no credentials."""

from __future__ import annotations

import pytest
import yaml

from em3.cli import main
from em3.config import ConfigError, config_from_yaml
from em3.train.pytorchjob import manifest_yaml, pytorchjob_manifest

IMAGE = "registry.example.com/em3:0.1.0-cuda"


def containers(job: dict) -> dict[str, dict]:
    replicas = job["spec"]["pytorchReplicaSpecs"]
    return {kind: spec["template"]["spec"]["containers"][0] for kind, spec in replicas.items()}


def test_master_and_workers_run_torchrun_on_their_gpus(small_config):
    config_map, job = yaml.safe_load_all(manifest_yaml(pytorchjob_manifest(small_config, IMAGE, 3, 4, namespace="ml")))
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert job["metadata"] == {"name": "em3", "namespace": "ml"} and job["spec"]["nprocPerNode"] == "4"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in replicas.items()} == {"Master": 1, "Worker": 2}
    for kind, container in containers(job).items():
        assert container["name"] == "pytorch" and container["image"] == IMAGE, kind
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 4}
        assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
        command = " ".join(container["command"])
        assert command == (
            "python -m torch.distributed.run --nnodes=3 --nproc_per_node=4 --node_rank=$(RANK) "
            "--master_addr=$(MASTER_ADDR) --master_port=$(MASTER_PORT) -m em3 train --config /etc/em3/config.yaml"
        )
        pod = replicas[kind]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert volumes[mounts["/etc/em3"]]["configMap"]["name"] == config_map["metadata"]["name"] == "em3-config"
        assert volumes[mounts["/workspace"]] == {"name": "workspace", "emptyDir": {}}
        assert container["workingDir"] == "/workspace"
    assert config_map["metadata"]["namespace"] == "ml"
    assert config_from_yaml(config_map["data"]["config.yaml"], "manifest") == small_config, "the job trains the config"


def test_one_node_has_no_workers_and_a_claim_becomes_the_workspace(small_config):
    _, job = pytorchjob_manifest(small_config, IMAGE, 1, 2, name="em3-din", volume_claim="em3-data")
    assert list(job["spec"]["pytorchReplicaSpecs"]) == ["Master"] and job["metadata"]["name"] == "em3-din"
    volumes = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]
    assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "em3-data"}} in volumes
    assert "--nnodes=1" in containers(job)["Master"]["command"]


def test_credentials_come_only_from_secret_references(small_config, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-value")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-secret-value")
    text = manifest_yaml(pytorchjob_manifest(small_config, IMAGE, 2, 1))
    assert "secret-value" not in text
    _, job = yaml.safe_load_all(text)
    for container in containers(job).values():
        refs = {}
        for variable in container["env"]:
            assert set(variable) == {"name", "valueFrom"}, "no literal values"
            ref = variable["valueFrom"]["secretKeyRef"]
            refs.setdefault(ref["name"], []).append(ref["key"])
        assert refs == {
            "em3-s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"],
            "em3-mlflow": ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"],
        }


@pytest.mark.parametrize(
    ("nodes", "gpus", "name", "message"),
    [(0, 1, None, "--nodes and --gpus-per-node must be at least 1"), (2, 1, "EM3_run", "job name 'EM3_run'")],
)
def test_bad_sizes_and_names_are_refused(small_config, nodes, gpus, name, message):
    with pytest.raises(ConfigError, match=message):
        pytorchjob_manifest(small_config, IMAGE, nodes, gpus, name=name)


def test_cli_writes_the_manifest(tmp_path, capsys):
    out = tmp_path / "job.yaml"
    code = main(
        [
            "pytorchjob",
            "--image",
            IMAGE,
            "--nodes",
            "2",
            "--gpus-per-node",
            "8",
            "--set",
            "name=em3_dcn",
            "--set",
            "model.backbone=dcn",
            "--volume-claim",
            "em3-data",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and f"kubectl apply -f {out}" in capsys.readouterr().out
    config_map, job = yaml.safe_load_all(out.read_text())
    assert job["metadata"]["name"] == "em3-dcn"
    assert containers(job)["Worker"]["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert yaml.safe_load(config_map["data"]["config.yaml"])["model"]["backbone"] == "dcn"

    assert main(["pytorchjob", "--image", IMAGE, "--nodes", "0", "--gpus-per-node", "1"]) == 2
    assert "error: --nodes and --gpus-per-node must be at least 1" in capsys.readouterr().err
