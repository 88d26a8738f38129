"""The `travis-logs` command: one subcommand per process type, imported only when chosen."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from pydantic import ValidationError

from travis_logs.errors import ConfigError
from travis_logs.logformat import configure_logging
from travis_logs.settings import Settings
from workers import devenv, service_errors

# name -> (module, one line for --help); each module has add_arguments(parser) and
# main(args, settings) -> int, and is imported only when its command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "api": (
        "workers.api",
        "serve the HTTP API (travis-api's routes, Pusher webhooks) and the log viewer on PORT",
    ),
    "dev": (
        "workers.dev",
        "run the whole system locally: Temporal dev server, S3 (moto), Pusher server and every process",
    ),
    "force-aggregate": (
        "workers.force_aggregate",
        "aggregate logs now without waiting for their final part, through the force_aggregate update",
    ),
    "ingest": (
        "workers.ingest",
        "consume log parts from RabbitMQ: store them, push them live, signal their log workflows",
    ),
    "migrate": (
        "workers.migrate",
        "create the database named in DATABASE_URL if needed and apply pending migrations",
    ),
    "pusher-server": (
        "workers.pusher_server",
        "run a local Pusher-protocol server, a development component (events API, WebSockets)",
    ),
    "rearchive": (
        "workers.rearchive",
        "archive and verify logs again (e.g. after verify_failed), through the rearchive update",
    ),
    "reconcile": (
        "workers.reconcile",
        "start the workflow of every log that is not done and has none open (idempotent)",
    ),
    "s3-server": (
        "workers.s3_server",
        "run a local S3 for development (moto) that keeps its objects in DEV_DATA_DIR/s3",
    ),
    "redact": (
        "workers.redact",
        "mask leaked secrets (strings from stdin or a file, byte ranges) in one log, audited",
    ),
    "simulate": (
        "workers.simulate",
        "publish simulated travis-worker job logs and write what each archive must contain",
    ),
    "status": (
        "workers.status",
        "show one log's workflow status, database row and S3 object, and where it is and why",
    ),
    "verify-archives": (
        "workers.verify_archives",
        "compare the S3 archive of every job in a simulation manifest with what was sent",
    ),
    "worker": (
        "workers.temporal_worker",
        "run LogWorkflow and its activities (aggregate, archive, verify, purge) on Temporal",
    ),
}


# Commands an operator runs beside `travis-logs dev` (in a second terminal): they read what
# the stack gave its processes (workers/devenv.py) below `.env` and the environment.
OPERATOR_COMMANDS = frozenset(
    {"status", "rearchive", "force-aggregate", "reconcile", "redact", "simulate", "verify-archives"}
)


class Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def main(self, args: argparse.Namespace, settings: Settings) -> int: ...


def _load(name: str) -> Command:
    return cast(Command, importlib.import_module(COMMANDS[name][0]))


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="travis-logs", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_line) in COMMANDS.items():
        parser_of = sub.add_parser(name, help=help_line, description=help_line)
        # Importing every command for --help would pull in FastAPI, Temporal workers, ...
        if name == chosen:
            _load(name).add_arguments(parser_of)
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


def load_settings(command: str) -> Settings:
    settings = Settings()
    if command in OPERATOR_COMMANDS and (path := devenv.stack_file(settings.dev_data_dir)):
        devenv.export_boto_credentials(path)
        settings = Settings(_env_file=(path, ".env"))
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(argv).parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings(args.command)
        if settings.log_format != "text":
            configure_logging(args.log_level, settings.log_format)
        return _load(args.command).main(args, settings)
    except ValidationError as err:
        print(f"travis-logs: bad configuration: {describe_validation_error(err)}", file=sys.stderr)  # noqa: T201
        return 2
    except ConfigError as err:
        print(f"travis-logs: {err}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        # A service that went away after the checks at start: one line, not a traceback.
        line = service_errors.describe(err)
        if line is None:
            raise
        print(f"travis-logs: {line}", file=sys.stderr)  # noqa: T201
        return 2


def run() -> NoReturn:
    """The `travis-logs` command: `main`, then an exit that skips the interpreter's teardown.

    A process that made a Temporal client can abort while the interpreter finalizes: the
    SDK's Rust threads release the GIL after it is gone ("PyGILState_Release ... finalizing",
    temporalio/sdk-python#300; seen here as `migrate --register` exiting -6 after its work
    was done). By then the command has finished and only its output is left to flush.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
