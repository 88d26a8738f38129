"""`travis-logs force-aggregate`: the `force_aggregate` workflow update for chosen logs (see lifecycle_command)."""

from __future__ import annotations

import argparse

from travis_logs.settings import Settings
from workers import lifecycle_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lifecycle_command.add_arguments(parser)


def main(args: argparse.Namespace, settings: Settings) -> int:
    return lifecycle_command.main("force-aggregate", args, settings)
