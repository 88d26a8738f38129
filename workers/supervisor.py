"""Child processes that start, run and stop together (the `dev` stack)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: when `dev` itself is killed (even SIGKILL),
    # the kernel sends each child SIGTERM, so nothing outlives the stack.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessSpec:
    """One child: its name in messages, its command line, its environment, where output goes."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_file: Path | None = None  # None: lines go to our stdout, prefixed with the name
    # A one-off child (such as the simulated job) may end at any time without stopping the stack.
    essential: bool = True


@dataclass
class _Child:
    spec: ProcessSpec
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None] | None


class Supervisor:
    """Starts children, reports the first that exits, stops all in reverse order."""

    def __init__(self) -> None:
        self._children: list[_Child] = []

    async def start(self, spec: ProcessSpec) -> asyncio.subprocess.Process:
        stdout: int | object
        if spec.log_file is not None:
            spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            stdout = spec.log_file.open("ab")
        else:
            stdout = asyncio.subprocess.PIPE
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=spec.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT,
            # Our own session: a terminal's Ctrl-C reaches only `dev`, which stops children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        pump = None
        if process.stdout is not None:
            pump = asyncio.create_task(_prefix_lines(spec.name, process.stdout))
        self._children.append(_Child(spec, process, pump))
        return process

    async def wait_any(self) -> tuple[str, int]:
        """Name and exit code of the first child to exit."""
        waits = {
            asyncio.create_task(c.process.wait()): c.spec.name
            for c in self._children
            if c.spec.essential
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            task = done.pop()
            return waits[task], task.result()
        finally:
            for t in waits:
                t.cancel()

    async def stop_all(self, grace: float = 10) -> None:
        for child in reversed(self._children):
            await _stop(child, grace)
        self._children.clear()


async def _stop(child: _Child, grace: float) -> None:
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            log.warning("%s did not stop within %.0f s; killing it", child.spec.name, grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if child.pump is not None:
        await child.pump


async def _prefix_lines(name: str, stream: asyncio.StreamReader) -> None:
    prefix = f"[{name}] ".encode()
    async for line in stream:
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()
