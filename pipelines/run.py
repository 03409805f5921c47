"""Compile, run and submit a Kubeflow pipeline (any ``@dsl.pipeline`` function of ``pipelines/``): to a YAML package
for the Kubeflow UI, on this machine through ``kfp.local``, or as a run on a Kubeflow Pipelines endpoint.

A local run prints one line per task (name, status, seconds); everything kfp.local and the tasks print goes to
the session's log file, ``<pipeline root>/logs/<UTC time>.log``. ``pipelines/em3_run.py`` uses these for the em3
pipeline.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from em3.workflow import RUNNERS, PipelineError

FAILED_TASK_LINES = 30  # the end of a failed task's log, quoted in the error


def compile_pipeline(pipeline: Callable, path: str | Path) -> Path:
    """Compile ``pipeline`` to a YAML package for the Kubeflow UI at ``path`` (its folder created)."""
    from kfp import compiler

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(path))
    return path


def submit(
    host: str,
    pipeline: Callable,
    arguments: Mapping[str, Any],
    experiment: str,
    run_name: str | None = None,
    namespace: str | None = None,
    enable_caching: bool | None = None,
) -> str:
    """Compile ``pipeline`` and create a run of it with ``arguments`` on the Kubeflow Pipelines endpoint ``host``;
    returns the run id. Authentication is kfp.Client's (e.g. a service-account token in the cluster)."""
    import kfp

    client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
    with tempfile.TemporaryDirectory(prefix="em3-pipeline-") as tmp:
        package = compile_pipeline(pipeline, Path(tmp) / "pipeline.yaml")
        result = client.create_run_from_pipeline_package(
            str(package),
            arguments=dict(arguments),
            run_name=run_name,
            experiment_name=experiment,
            namespace=namespace,
            enable_caching=enable_caching,
        )
    return result.run_id


def schedule(
    host: str,
    pipeline: Callable,
    arguments: Mapping[str, Any],
    cron: str,
    experiment: str,
    name: str,
    namespace: str | None = None,
) -> str:
    """Compile ``pipeline`` and create a recurring run of it on ``host`` with ``arguments``, fired by ``cron`` (KFP's
    six fields, seconds first), one run at a time and without catching up missed ones (a daily run ingests the
    day before its schedule time, so a missed day is replayed by hand); returns the recurring run's id."""
    import kfp

    client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    with tempfile.TemporaryDirectory(prefix="em3-pipeline-") as tmp:
        package = compile_pipeline(pipeline, Path(tmp) / "pipeline.yaml")
        recurring = client.create_recurring_run(
            experiment_id,
            name,
            cron_expression=cron,
            pipeline_package_path=str(package),
            params=dict(arguments),
            max_concurrency=1,
            no_catchup=True,
        )
    return recurring.recurring_run_id


@contextlib.contextmanager
def local_runs(
    pipeline_root: str | Path, cache: bool = True, runner: str = "subprocess", out: TextIO | None = None
) -> Iterator[Callable[..., Any]]:
    """kfp.local set up for runs under ``pipeline_root``; yields ``run(pipeline, **arguments)``, which runs the
    pipeline here and returns its task (``.output`` or ``.outputs``).

    ``runner``: each task a subprocess of this environment (``"subprocess"``) or a container of the CPU image
    (``"docker"``, see em3.containers; GPU tasks run in it too). ``cache`` reuses a task's earlier outputs when its
    component and inputs are unchanged (where the pipeline allows it). Task lines go to ``out`` (default: standard
    output), the full output to the log file. Raises PipelineError when a task fails (with the end of its log) or
    when there is nothing to run the containers.
    """
    import kfp.local
    from kfp.local.orchestrator import task_executor

    from em3 import containers

    if runner not in RUNNERS:
        raise ValueError(f"runner {runner!r}: expected one of {RUNNERS}")
    out = out or sys.stdout
    pipeline_root = Path(pipeline_root).resolve()
    adapt: Callable[[Any], Any] = lambda pipeline: pipeline  # noqa: E731
    local_runner, in_runner = kfp.local.SubprocessRunner(use_venv=False), contextlib.nullcontext()
    if runner == "docker":
        try:
            local_runner = containers.docker_runner(pipeline_root)
        except containers.ContainerError as exc:
            raise PipelineError(str(exc)) from None
        adapt, in_runner = containers.on_cpu_image, containers.exit_status_kept()
    kfp.local.init(runner=local_runner, pipeline_root=str(pipeline_root), enable_caching=cache)
    log_path = pipeline_root / "logs" / f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"kfp.local, pipeline root {pipeline_root}; full log: {log_path}", file=out, flush=True)
    print_function = builtins.print  # kfp.local indents print() per task and restores it only on success
    with (
        log_path.open("a", buffering=1) as log,
        _task_lines(task_executor, log, out) as tasks,
        in_runner,
        _logging_kept(),
        _no_schedule_time(),
    ):

        def run(pipeline: Any, **arguments: Any) -> Any:
            try:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    return adapt(pipeline)(**arguments)
            except RuntimeError as exc:  # kfp.local: "... finished with status FAILURE. Inner task failed: ..."
                raise PipelineError(
                    f"{exc}\nThe failed task's log ends with:\n{tasks.failed_tail(log_path)}\nFull log: {log_path}"
                ) from None
            finally:
                builtins.print = print_function

        yield run


@contextlib.contextmanager
def _no_schedule_time() -> Iterator[None]:
    """kfp.local has no schedule time, and fails on the schedule-time placeholder (it reads it as an artifact path):
    while in this context the placeholder resolves to "" (a local run is never a scheduled one)."""
    from kfp import dsl
    from kfp.local import placeholder_utils

    resolve = placeholder_utils.resolve_individual_placeholder

    def resolve_unscheduled(element: str, *args: Any, **kwargs: Any) -> str:
        return resolve(element.replace(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, ""), *args, **kwargs)

    placeholder_utils.resolve_individual_placeholder = resolve_unscheduled
    try:
        yield
    finally:
        placeholder_utils.resolve_individual_placeholder = resolve


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Remove the handlers logging gained in this context: kfp.local's module-level logging calls may install one on
    the log file (logging.basicConfig), which would outlive it."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)


class _TaskLines:
    """Where the output of the last task that failed starts in the log (a parallel task's lines may follow)."""

    def __init__(self) -> None:
        self.failed_at: int | None = None

    def failed_tail(self, log_path: Path) -> str:
        if self.failed_at is None:
            return "(no task output)"
        with log_path.open(encoding="utf-8", errors="replace") as log:
            log.seek(self.failed_at)
            lines = log.read().splitlines()[-FAILED_TASK_LINES:]
        return "\n".join(f"  | {line}" for line in lines)


@contextlib.contextmanager
def _task_lines(task_executor: Any, log: TextIO, out: TextIO) -> Iterator[_TaskLines]:
    """While in this context, every task kfp.local runs or takes from its cache prints one line to ``out``."""
    from kfp.local import status, task_dispatcher

    execute, dispatch = task_executor.execute_single_task, task_dispatcher.run_single_task_implementation
    tasks, this_thread = _TaskLines(), threading.local()  # ParallelFor runs its iterations in threads

    def dispatch_noted(*args: Any, **kwargs: Any) -> Any:
        this_thread.dispatched = True  # not called for a task taken from the cache
        return dispatch(*args, **kwargs)

    def execute_with_a_line(task_name: str, *args: Any, **kwargs: Any) -> Any:
        began, offset, this_thread.dispatched = time.perf_counter(), log.tell(), False
        outputs, task_status = execute(task_name, *args, **kwargs)
        label = task_status.name if this_thread.dispatched else "CACHED"
        if task_status == status.Status.FAILURE:
            tasks.failed_at = offset
        print(f"  {task_name:<24} {label:<8} {time.perf_counter() - began:7.1f} s", file=out, flush=True)
        return outputs, task_status

    task_executor.execute_single_task, task_dispatcher.run_single_task_implementation = (
        execute_with_a_line,
        dispatch_noted,
    )
    try:
        yield tasks
    finally:
        task_executor.execute_single_task, task_dispatcher.run_single_task_implementation = execute, dispatch
