"""The command line: clear errors with exit status 2, and `em3 train` writing the metrics the table reads."""

import json
import subprocess
import sys

import yaml

from em3.cli import main
from tests.conftest import SMALL


def test_a_typo_in_a_config_key_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  fusoin: mean\n")
    assert main(["train", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "model.fusoin" in error and str(config) in error and "Traceback" not in error


def test_train_writes_the_metrics_that_compare_prints(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "name": "tiny", "output_dir": str(tmp_path / "run")}))
    done = subprocess.run(
        [sys.executable, "-m", "em3", "train", "--config", str(config), "--set", "train.max_steps=5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics" / "train.json").read_text())
    assert metrics["steps"] == 5 and metrics["name"] == "tiny"
    table = subprocess.run([sys.executable, "-m", "em3", "compare", str(tmp_path / "run" / "metrics" / "train.json")],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"{metrics['test']['auc']:.4f}" in table
