"""The wheel is the product: installed into a fresh virtualenv outside the repository, its `em3 pipeline compile`
writes the same pipeline YAML as the checkout, and `em3/` puts nothing on ``sys.path`` to get there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("em3", "components", "pipelines")


def image_context(folder: Path) -> Path:
    """A copy of what .dockerignore lets into the images' build context (the torch wheel aside): the Dockerfiles
    build em3's wheel from it."""
    folder.mkdir()
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if line.startswith("!") and not line.endswith(".whl"):
            for path in REPO.glob(line[1:].rstrip("/")):
                target = folder / path.relative_to(REPO)
                if path.is_dir():
                    shutil.copytree(path, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target)
    return folder


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    return done


def test_the_installed_wheel_compiles_the_pipeline_outside_the_repository(tmp_path: Path) -> None:
    # Built as the images build it, from their context (in the repository, setuptools would leave build/ behind,
    # and a stale one ships deleted modules).
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        assert all(f"COPY {name} ./{name}\n" in (REPO / dockerfile).read_text() for name in PACKAGES), dockerfile
    source = image_context(tmp_path / "source")
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", source
    )
    (wheel,) = (tmp_path / "dist").glob("em3-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)

    # The dependencies (kfp, torch, ...) come from this environment's site-packages; em3, pipelines and components
    # only from the wheel: an editable install is a .pth file, which PYTHONPATH does not read.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    work = tmp_path / "elsewhere"
    work.mkdir()
    listed = run(venv / "bin" / "python", "-m", "pip", "show", "-f", "em3", cwd=work).stdout
    assert "em3/data/tables.py" in listed and "pipelines/cli.py" in listed and "components/model.py" in listed
    where = run(
        venv / "bin" / "python",
        "-c",
        "import em3, pipelines, components; print(em3.__file__, pipelines.__file__, components.__file__)",
        cwd=work,
        env=env,
    ).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in where), where

    run(venv / "bin" / "em3", "pipeline", "compile", cwd=work, env=env)
    run(venv / "bin" / "em3", "pipeline", "compile", "--pipeline", "score", "--out", "score.yaml", cwd=work, env=env)
    assert (work / "em3_pipeline.yaml").read_bytes() == (REPO / "pipelines" / "em3_pipeline.yaml").read_bytes()
    assert (work / "score.yaml").read_bytes() == (REPO / "pipelines" / "em3_score_pipeline.yaml").read_bytes()
    assert "demo" in run(venv / "bin" / "em3", "--help", cwd=work, env=env).stdout


def test_the_library_edits_no_import_path() -> None:
    editing = [str(path.relative_to(REPO)) for path in (REPO / "em3").rglob("*.py") if "sys.path" in path.read_text()]
    assert editing == []
