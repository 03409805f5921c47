"""The pipeline's tasks in containers on this machine: ``kfp.local.DockerRunner`` with the component image.

The containers see one folder of this machine, the pipeline root, mounted at the same path. The embedded defaults
of the MLflow store (SQLite database and artifacts) go there; every other local path of the config must be under
it. Every task, train too, runs in the CPU image EM3_IMAGE that ``make image`` builds: as the calling user (so the
outputs are theirs) or, when that is root, as the image's own non-root user, who then owns the pipeline root.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from em3.config import Config, ConfigError, RegistryConfig

SQLITE = "sqlite:///"


class ContainerError(RuntimeError):
    """No Docker engine, or the component image is not in it."""


def local_path(uri: str | None) -> Path | None:
    """The absolute path of a local path or ``sqlite:///`` / ``file://`` URI (relative ones from the current
    directory, as SQLAlchemy and MLflow read them); None for None and remote URIs (s3://, http://...)."""
    if uri is None:
        return None
    for scheme in (SQLITE, "file://"):
        if uri.startswith(scheme):
            return Path(uri.removeprefix(scheme)).resolve()
    return None if "://" in uri else Path(uri).resolve()


def container_config(cfg: Config, pipeline_root: Path, synthetic: bool) -> Config:
    """``cfg`` as the containers see it: the default SQLite store and the MLflow artifacts under ``pipeline_root``,
    every local path absolute (ingest.source only without ``synthetic``). ConfigError for one outside the root."""
    tracking_uri = cfg.registry.tracking_uri
    if tracking_uri == RegistryConfig().tracking_uri:  # the embedded default: mlflow.db in the current directory
        tracking_uri = f"{SQLITE}{pipeline_root / 'mlflow.db'}"
    values = {
        "registry.tracking_uri": tracking_uri,
        "registry.artifact_location": cfg.registry.artifact_location or str(pipeline_root / "mlartifacts"),
        "ingest.source": cfg.ingest.source,
    }
    for key, value in values.items():
        path = None if synthetic and key == "ingest.source" else local_path(value)
        if path is None:
            continue
        if not path.is_relative_to(pipeline_root):
            raise ConfigError(
                f"{key}: {path} is outside the pipeline root {pipeline_root}, the only folder of this machine that "
                "the containers see: move it under the pipeline root or choose a pipeline root above it"
            )
        values[key] = f"{SQLITE}{path}" if value.startswith(SQLITE) else str(path)
    registry = cfg.registry.model_copy(
        update={
            "tracking_uri": values["registry.tracking_uri"],
            "artifact_location": values["registry.artifact_location"],
        }
    )
    ingest = cfg.ingest.model_copy(update={"source": values["ingest.source"]})
    return cfg.model_copy(update={"registry": registry, "ingest": ingest})


def on_cpu_image(pipeline: Any) -> Any:
    """A copy of the ``@dsl.pipeline`` ``pipeline`` whose GPU tasks (train) run in EM3_IMAGE too: the image that
    ``make image`` builds and that runs on this machine's CPUs."""
    from em3.cluster import EM3_GPU_IMAGE, EM3_IMAGE

    pipeline = copy.deepcopy(pipeline)
    for executor in pipeline.pipeline_spec.deployment_spec["executors"].values():
        if executor["container"]["image"] == EM3_GPU_IMAGE:
            executor["container"]["image"] = EM3_IMAGE
    return pipeline


def docker_runner(pipeline_root: Path) -> Any:
    """A ``kfp.local.DockerRunner`` for EM3_IMAGE with ``pipeline_root`` (created) writable by the tasks' user.
    Raises ContainerError when there is no engine or the image is not in it."""
    import docker
    import kfp.local

    from em3.cluster import EM3_IMAGE

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ContainerError(f"no Docker engine ({exc}): start one, or set DOCKER_HOST to it") from None
    try:
        user = client.images.get(EM3_IMAGE).attrs["Config"].get("User") or "0"
    except docker.errors.ImageNotFound:
        raise ContainerError(f"image {EM3_IMAGE} is not in the Docker engine: build it with `make image`") from None
    finally:
        client.close()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    if os.getuid() != 0:
        return kfp.local.DockerRunner(user=f"{os.getuid()}:{os.getgid()}")
    uid, _, gid = user.partition(":")
    if uid.isdigit():
        os.chown(pipeline_root, int(uid), int(gid) if gid.isdigit() else -1)
    return kfp.local.DockerRunner()


def run_container(client: Any, image: str, command: list[str], volumes: dict, **run_args: Any) -> int:
    """Run one task's container, stream its log and return its exit status. kfp's own version (2.17.3) starts it
    with ``auto_remove`` and takes a container already removed for a success, so that a failing task can pass
    (kubeflow/pipelines#13332): this one removes the container after reading the status."""
    container = client.containers.run(image=image, command=command, volumes=volumes, detach=True, **run_args)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return container.wait()["StatusCode"]
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def exit_status_kept() -> Iterator[None]:
    """kfp.local's DockerRunner with run_container while in this context."""
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = run_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original
