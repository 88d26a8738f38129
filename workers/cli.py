"""The `travis-logs` command: one subcommand per process type, imported only when chosen."""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from pydantic import ValidationError

from travis_logs.errors import ConfigError
from travis_logs.settings import Settings

# name -> module; each module has HELP, add_arguments(parser) and main(args, settings) -> int.
COMMANDS: dict[str, str] = {
    "api": "workers.api",
    "dev": "workers.dev",
    "ingest": "workers.ingest",
    "migrate": "workers.migrate",
    "pusher-server": "workers.pusher_server",
    "simulate": "workers.simulate",
    "verify-archives": "workers.verify_archives",
    "worker": "workers.temporal_worker",
}


class Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def main(self, args: argparse.Namespace, settings: Settings) -> int: ...


def _load(name: str) -> Command:
    return cast(Command, importlib.import_module(COMMANDS[name]))


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="travis-logs", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name in COMMANDS:
        if name == chosen:
            command = _load(name)
            command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.HELP))
        else:
            # Importing every command for --help would pull in FastAPI, Temporal workers, ...
            sub.add_parser(name, help=f"see `travis-logs {name} --help`")
    return parser


# Settings whose values are credentials: an error names them but never shows what was given.
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "KEY")
# `scheme://user:password@host`: the password part of any URL-like value.
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*):\S*@")  # greedy: a password may hold "@"


def shown_input(name: str, value: object) -> str:
    """What an error may say about a setting's value: nothing for secrets, URLs redacted."""
    if any(word in name for word in _SECRET_WORDS):
        return "the given value"
    return repr(_URL_PASSWORD.sub(r"\1:***@", value)) if isinstance(value, str) else repr(value)


def describe_validation_error(err: ValidationError) -> str:
    """One line per bad setting, named as its environment variable; no password shown."""
    lines = []
    for e in err.errors(include_url=False, include_input=True):
        name = ".".join(str(p) for p in e["loc"]).upper() or "settings"
        lines.append(f"{name}: {e['msg']} (got {shown_input(name, e.get('input'))})")
    return "; ".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(argv).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings()
        return _load(args.command).main(args, settings)
    except ValidationError as err:
        print(f"travis-logs: bad configuration: {describe_validation_error(err)}", file=sys.stderr)  # noqa: T201
        return 2
    except ConfigError as err:
        print(f"travis-logs: {err}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
