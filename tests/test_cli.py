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


def test_train_writes_the_metrics_that_compare_prints_and_says_which_data_it_trains_on(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "name": "tiny", "output_dir": str(tmp_path / "run")}))
    tables = tmp_path / "tables"  # ingested tables the synthetic run leaves unused: the line says so
    tables.mkdir()
    (tables / "manifest.json").write_text("{}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "em3",
            "train",
            "--config",
            str(config),
            "--set",
            "train.max_steps=5",
            "--set",
            f"data.tables_dir={tables}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "tiny trains on the SYNTHETIC token-level log (data.source: synthetic; 400 users, 800 items, 20 days), "
        f"NOT on the ingested tables in {tables}: set data.source: tables to use them\n"
    ), done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics" / "train.json").read_text())
    assert metrics["steps"] == 5 and metrics["name"] == "tiny"
    assert metrics["data"] == {"source": "synthetic", "users": 400, "items": 800, "days": 20}
    table = subprocess.run(
        [sys.executable, "-m", "em3", "compare", str(tmp_path / "run" / "metrics" / "train.json")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{metrics['test']['auc']:.4f}" in table


def test_help_imports_no_heavy_library():
    """`em3 --help` stays fast: building every command's options imports none of the heavy libraries (each costs
    seconds); commands import what they need when they run."""
    script = (
        "import json, sys\nfrom em3.cli import build_parser\nbuild_parser().format_help()\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    )
    heavy = {"torch", "mlflow", "great_expectations", "kfp", "transformers", "peft", "pandas", "numpy", "dvc"}
    assert "em3.cli" in loaded and not heavy & loaded, sorted(heavy & loaded)


def test_commands_come_from_plugins_and_a_broken_plugin_leaves_the_others(monkeypatch, capsys):
    from importlib.metadata import EntryPoint

    import em3.cli

    assert {"demo", "pipeline"} <= set(em3.cli.build_parser()._subparsers._group_actions[0].choices)
    broken = EntryPoint("broken", "no_such_package.cli:add_commands", em3.cli.COMMAND_PLUGINS)
    monkeypatch.setattr(em3.cli, "entry_points", lambda group: [broken])
    commands = set(em3.cli.build_parser()._subparsers._group_actions[0].choices)
    assert "train" in commands and "demo" not in commands
    assert "the commands of no_such_package.cli:add_commands are unavailable" in capsys.readouterr().err
