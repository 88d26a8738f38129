"""`travis-logs redact JOB_ID`: mask leaked secrets in one log, audited (README "Redaction").

The secret strings are read from stdin or `--strings-file`, one a line, never from the
command line (which `ps` shows to every user of the machine). Byte ranges come as
`--range START:END` ([START, END), on UTF-8 character boundaries). The request is stored
like `POST /logs/:job_id/redactions` stores it and applied by the log's `redact` update.
Exit code 0 when applied, 1 when refused, 3 when the job has no log.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from dataclasses import asdict
from typing import TextIO

from api import redactions
from travis_logs.db import create_pool
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.preflight import preflight


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", type=int, help="the job whose log to redact")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit row)")
    parser.add_argument(
        "--requested-by", default=None, help="who asked (default: the current user)"
    )
    parser.add_argument(
        "--strings-file",
        default=None,
        help="file with one secret a line ('-': stdin, the default unless --range is given)",
    )
    parser.add_argument(
        "--range",
        dest="ranges",
        action="append",
        default=[],
        metavar="START:END",
        help="a byte range to mask; repeatable",
    )


def parse_range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition(":")
    if not sep or not start.isdigit() or not end.isdigit():
        raise ConfigError(f"--range: expected START:END in bytes, got {text!r}")
    return int(start), int(end)


def read_strings(source: TextIO) -> list[str]:
    """One secret a line; the line break is not part of it, blank lines are skipped."""
    return [line.rstrip("\r\n") for line in source if line.strip()]


def request_from(args: argparse.Namespace, stdin: TextIO) -> redactions.RedactionRequest:
    ranges = [parse_range(r) for r in args.ranges]
    source = args.strings_file or (None if ranges else "-")
    strings: list[str] = []
    if source == "-":
        strings = read_strings(stdin)
    elif source is not None:
        with open(source, encoding="utf-8") as f:
            strings = read_strings(f)
    problem = redactions.invalid(strings, ranges)
    if problem:
        raise ConfigError(f"redact: {problem}")
    who = args.requested_by or getpass.getuser()
    return redactions.RedactionRequest(args.job_id, who, args.reason, strings, ranges)


async def run(
    settings: Settings, req: redactions.RedactionRequest
) -> tuple[int, dict[str, object]]:
    await preflight(settings)
    pool = await create_pool(str(settings.database_url), max_size=1)
    try:
        client = await connect(settings)
        result = await redactions.apply(pool, client, settings, req)
    except redactions.NoLog as err:
        return 3, {"job_id": req.job_id, "error": str(err)}
    except redactions.Refused as err:
        return 1, {"job_id": req.job_id, "error": str(err)}
    finally:
        await pool.close()
    return 0, {"job_id": req.job_id, **asdict(result)}


def main(args: argparse.Namespace, settings: Settings) -> int:
    req = request_from(args, sys.stdin)
    code, doc = asyncio.run(run(settings, req))
    print(json.dumps(doc))  # noqa: T201
    return code
