"""Multi-node training on Kubernetes: a Kubeflow Training Operator ``PyTorchJob`` (kubeflow.org/v1, operator
v1.7 or later) plus a ConfigMap holding the config.

The job has a Master and ``nodes - 1`` Workers, each a pod with ``gpus_per_node`` GPUs that runs
``torchrun --nnodes N --nproc_per_node G --node_rank $(RANK) --master_addr $(MASTER_ADDR) --master_port
$(MASTER_PORT) -m em3 train --config /etc/em3/config.yaml``: the operator sets ``RANK`` (the pod's index, Master 0),
``MASTER_ADDR`` and ``MASTER_PORT`` in every pod, and torchrun starts one process per GPU (N × G in all).

Pods work in ``/workspace``, so the config's relative paths (``data/tables``, ``runs/...``) resolve there; mount a
ReadWriteMany PersistentVolumeClaim on it (``volume_claim``) so that every pod reads the data and the Master's
outputs outlive it. Credentials come only from the ``em3-s3`` and ``em3-mlflow`` secrets (optional).
"""

from __future__ import annotations

import copy
import re

import yaml

from em3.cluster import (
    CPU_PER_GPU,
    GPU_NODE_LABEL,
    GPU_RESOURCE,
    MEMORY_GIB_PER_GPU,
    MLFLOW_ENV,
    MLFLOW_SECRET,
    S3_ENV,
    S3_SECRET,
)
from em3.config import Config, ConfigError

CONFIG_DIR, CONFIG_FILE = "/etc/em3", "config.yaml"
WORKSPACE = "/workspace"
PORT_NAME, PORT = "pytorchjob-port", 23456  # the operator reads MASTER_PORT from the port of this name
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")  # a DNS label, leaving room for pod-name suffixes


def pytorchjob_manifest(
    cfg: Config,
    image: str,
    nodes: int,
    gpus_per_node: int,
    name: str | None = None,
    namespace: str | None = None,
    volume_claim: str | None = None,
) -> list[dict]:
    """The ConfigMap and the PyTorchJob that train ``cfg`` on ``nodes`` × ``gpus_per_node`` GPUs with ``image``
    (Dockerfile.cuda). ``name`` defaults to ``cfg.name`` in DNS form."""
    if nodes < 1 or gpus_per_node < 1:
        raise ConfigError(f"--nodes and --gpus-per-node must be at least 1 (got {nodes} and {gpus_per_node})")
    name = name or cfg.name.lower().replace("_", "-").replace(".", "-")
    if not NAME.match(name):
        raise ConfigError(f"job name {name!r}: use lowercase letters, digits and '-' (at most 52), e.g. --name em3-din")
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**metadata, "name": f"{name}-config"},
        "data": {CONFIG_FILE: yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)},
    }
    pod = _pod_template(image, nodes, gpus_per_node, f"{name}-config", volume_claim)
    replicas = {"Master": _replicas(1, pod)}
    if nodes > 1:
        replicas["Worker"] = _replicas(nodes - 1, pod)
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": metadata,
        "spec": {
            "nprocPerNode": str(gpus_per_node),
            "runPolicy": {"cleanPodPolicy": "None"},  # finished pods stay for their logs
            "pytorchReplicaSpecs": replicas,
        },
    }
    return [config_map, job]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the config) as literal blocks, readable in the manifest."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _represent_str)


def manifest_yaml(documents: list[dict]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False)


def train_command(nodes: int, gpus_per_node: int) -> list[str]:
    """torchrun in every pod; Kubernetes fills in ``$(VAR)`` from the variables the operator sets."""
    return [
        "python",
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        f"--nproc_per_node={gpus_per_node}",
        "--node_rank=$(RANK)",
        "--master_addr=$(MASTER_ADDR)",
        "--master_port=$(MASTER_PORT)",
        "-m",
        "em3",
        "train",
        "--config",
        f"{CONFIG_DIR}/{CONFIG_FILE}",
    ]


def _secret_env() -> list[dict]:
    refs = [(S3_SECRET, key) for key in S3_ENV] + [(MLFLOW_SECRET, key) for key in MLFLOW_ENV]
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
        for secret, key in refs
    ]


def _pod_template(image: str, nodes: int, gpus: int, config_map: str, volume_claim: str | None) -> dict:
    workspace = {"persistentVolumeClaim": {"claimName": volume_claim}} if volume_claim else {"emptyDir": {}}
    container = {
        "name": "pytorch",  # the operator's required container name
        "image": image,
        "workingDir": WORKSPACE,
        "command": train_command(nodes, gpus),
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
        "env": _secret_env(),
        "resources": {
            "limits": {GPU_RESOURCE: gpus},
            "requests": {"cpu": str(CPU_PER_GPU * gpus), "memory": f"{MEMORY_GIB_PER_GPU * gpus}Gi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "dshm", "mountPath": "/dev/shm"},  # NCCL needs more shared memory than the default 64 MB
        ],
    }
    return {
        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},  # the mesh would block the rendezvous
        "spec": {
            "nodeSelector": dict([GPU_NODE_LABEL]),
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": config_map}},
                {"name": "workspace", **workspace},
                {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }


def _replicas(count: int, pod: dict) -> dict:
    return {"replicas": count, "restartPolicy": "OnFailure", "template": copy.deepcopy(pod)}  # no YAML aliases
