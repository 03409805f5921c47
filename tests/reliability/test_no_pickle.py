"""Weights and checkpoints load without unpickling: checkpoints with torch.load(weights_only=True), models from
safetensors. A file crafted to run code when unpickled is refused, and the code never runs."""

from __future__ import annotations

import ast
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from em3.models.io import WEIGHTS, load_model_dir
from em3.train.checkpoint import load_checkpoint
from em3.train.optim import make_optimizer

EM3 = Path(__file__).resolve().parents[2] / "em3"
UNPICKLERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


class RunsCode:
    """Unpickling this touches a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def unsafe_calls(path: Path) -> list[str]:
    """torch.load without weights_only=True, np.load with allow_pickle=True, imports of pickle-like modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where} imports {m}" for m in modules if m.split(".")[0] in UNPICKLERS]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
            if (owner, node.func.attr) == ("torch", "load") and flags.get("weights_only") is not True:
                found.append(f"{where} torch.load without weights_only=True")
            if (owner, node.func.attr) == ("np", "load") and flags.get("allow_pickle") is True:
                found.append(f"{where} np.load with allow_pickle=True")
    return found


def test_no_code_path_unpickles():
    files = sorted(EM3.rglob("*.py"))
    assert len(files) > 50
    assert [problem for path in files for problem in unsafe_calls(path)] == []


def test_the_scan_finds_unsafe_loads(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pickle\nimport torch\nimport numpy as np\n"
        "torch.load('x')\ntorch.load('x', weights_only=False)\nnp.load('x', allow_pickle=True)\n"
        "torch.load('x', weights_only=True)\nnp.load('x')\n"
    )
    assert [problem.split(":", 1)[1] for problem in unsafe_calls(sample)] == [
        "1 imports pickle",
        "4 torch.load without weights_only=True",
        "5 torch.load without weights_only=True",
        "6 np.load with allow_pickle=True",
    ]


def test_a_checkpoint_that_runs_code_is_refused(tiny_run, tmp_path):
    cfg, run_dir = tiny_run
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    state["loop"]["payload"] = RunsCode(tmp_path / "ran")
    torch.save(state, tmp_path / "last.pt")
    model, _ = load_model_dir(run_dir / "model")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(tmp_path / "last.pt", model, make_optimizer(model, cfg.train))
    assert not (tmp_path / "ran").exists()


def test_model_weights_that_are_a_pickle_are_refused(tiny_run, tmp_path):
    _, run_dir = tiny_run
    model_dir = shutil.copytree(run_dir / "model", tmp_path / "model")
    (model_dir / WEIGHTS).write_bytes(pickle.dumps(RunsCode(tmp_path / "ran")))
    with pytest.raises(Exception, match="(?i)header|invalid|deserializ"):
        load_model_dir(model_dir)
    assert not (tmp_path / "ran").exists()
