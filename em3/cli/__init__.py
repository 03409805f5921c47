"""Command line: ``em3 <command>`` (also ``python -m em3 <command>``), one module per command group: the stages
(stage_commands), the model registry (registry_commands), jobs around trained models (job_commands); options shares
``--config`` and ``--set``. Other packages add commands through the entry point group ``em3.commands`` (the
orchestration's ``em3 demo`` and ``em3 pipeline ...``: pipelines/cli.py)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from em3.cli import job_commands, registry_commands, stage_commands
from em3.config import ConfigError
from em3.workflow import PipelineError

COMMAND_PLUGINS = "em3.commands"  # entry points that add commands: add(commands), the parser's subparsers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="em3", description="EM3 multimodal ranking: data stages, training, evaluation."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (stage_commands, registry_commands, job_commands):
        group.add_commands(commands)
    for plugin in entry_points(group=COMMAND_PLUGINS):  # e.g. pipelines.cli: `em3 demo`, `em3 pipeline ...`
        try:
            add = plugin.load()
        except ImportError as exc:  # the other commands still work
            print(f"em3: the commands of {plugin.value} are unavailable: {exc}", file=sys.stderr)
            continue
        add(commands)
    return parser


def _reported_errors() -> tuple[type[Exception], ...]:
    """The errors a command reports in one line, without a traceback (imported when one is raised: em3 --help
    stays light)."""
    from em3.errors import DataError
    from em3.registry import RegistryError

    return ConfigError, FileNotFoundError, DataError, RegistryError, PipelineError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        args.handler(args)
    except _reported_errors() as exc:
        print(f"em3 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
