"""The component image's size and start-up (issue 7): how long a container of EM3_IMAGE takes before a component's
code runs. Needs a Docker engine with the image built (``make image``).

Measured in one run, each the median of ``--repeats`` (interleaved): ``docker run --rm IMAGE true`` (the engine's
own cost, the baseline), ``python -c 'import em3.cli'`` and ``python -c 'import em3.workflow,
kfp.dsl.executor_main'`` (what every component imports first) in the image, and one no-op lightweight component
(``@dsl.component(base_image=EM3_IMAGE, install_kfp_package=False)``) run by kfp.local's DockerRunner as
``em3 pipeline run --local --runner docker`` runs tasks, against the same component under SubprocessRunner.
Prints a Markdown table; writes JSON (``--out``): ``command``, ``image``, ``size_mb``, ``layers_mb``, ``repeats``
and ``seconds`` (per measurement: ``median``, ``runs``, ``ratio`` to the baseline).
"""

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import kfp.local
from kfp import dsl

from em3.cluster import EM3_IMAGE
from em3.containers import docker_runner, exit_status_kept


@dsl.component(base_image=EM3_IMAGE, install_kfp_package=False)
def noop() -> str:
    return "ok"


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def in_image(*command: str):
    return lambda: subprocess.run(["docker", "run", "--rm", EM3_IMAGE, *command], check=True, capture_output=True)


def component(runner: str, root: Path):
    def run() -> None:
        local_runner = docker_runner(root) if runner == "docker" else kfp.local.SubprocessRunner(use_venv=False)
        kfp.local.init(runner=local_runner, pipeline_root=str(root), enable_caching=False)
        with exit_status_kept():
            assert noop().output == "ok"

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/image.json"))
    args = parser.parse_args()

    image = docker.from_env().images.get(EM3_IMAGE)
    layers = [round(layer["Size"] / 1e6, 1) for layer in image.history() if layer["Size"]]
    root = Path(tempfile.mkdtemp(prefix="em3-bench-image-"))
    measurements = {
        "docker run true (baseline)": in_image("true"),
        "python -c 'import em3.cli'": in_image("python", "-c", "import em3.cli"),
        "python -c 'import em3.workflow, kfp.dsl.executor_main'": in_image(
            "python", "-c", "import em3.workflow, kfp.dsl.executor_main"
        ),
        "no-op component, DockerRunner": component("docker", root),
        "no-op component, SubprocessRunner": component("subprocess", root),
    }
    runs: dict[str, list[float]] = {name: [] for name in measurements}
    for _ in range(args.repeats):
        for name, run in measurements.items():
            runs[name].append(timed(run))
    baseline = statistics.median(runs["docker run true (baseline)"])
    seconds = {
        name: {"median": statistics.median(values), "runs": values, "ratio": statistics.median(values) / baseline}
        for name, values in runs.items()
    }
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "image": EM3_IMAGE,
        "size_mb": round(image.attrs["Size"] / 1e6, 1),
        "layers_mb": layers,
        "repeats": args.repeats,
        "seconds": seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{EM3_IMAGE}: {result['size_mb']} MB (layers, MB: {layers})\n")
    print("| measurement | median s | × `docker run true` |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {values['median']:.2f} | {values['ratio']:.1f} |")


if __name__ == "__main__":
    main()
