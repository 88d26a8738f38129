"""Job output that reads like a Travis CI log: folds, timers, colours, progress bars, UTF-8.

The output is a stream of timed writes (what the build script printed, and when, in job
time). Everything comes from the `random.Random` passed in, so a seed reproduces a log
byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

# travis-build ends every marker with this: back to column 0 and clear the line, so the
# marker never shows in a terminal-like viewer.
CLEAR = "\r\x1b[0K"
GREEN, RED, YELLOW, BOLD_YELLOW, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[33;1m", "\x1b[0m"

# Bytes that are not UTF-8 (or are NUL): the receiving side drops them from the log.
ODD_BYTES = (b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xf1\xe5", b"\xed\xa0\x80", b"\x80", b"\x00")

WORDS = [
    "parser",
    "renderer",
    "cache",
    "client",
    "server",
    "worker",
    "queue",
    "router",
    "config",
    "session",
    "token",
    "stream",
    "archive",
    "encoder",
    "decoder",
    "scheduler",
    "pipeline",
    "matrix",
    "build",
    "deploy",
    "fetch",
    "upload",
]
UNICODE_WORDS = (
    "ünïcødé",
    "naïve café",
    "テスト",
    "Проверка",
    "数据",
    "Ωμέγα",
    "✓ ok",
    "🎉",
    "🚀",
    "✨",
)
PACKAGES = ("requests", "urllib3", "idna", "certifi", "charset-normalizer", "pytest", "pluggy")


@dataclass(frozen=True)
class Write:
    """Bytes the build printed, `at_ms` milliseconds of job time after it started."""

    at_ms: int
    data: bytes


@dataclass(frozen=True)
class ContentOptions:
    """Shape of the generated output."""

    log_bytes: int = 48 * 1024  # approximate size; the trailer is written once this is reached
    odd_byte_rate: float = 0.002  # share of test lines carrying a byte that is not UTF-8
    long_line_rate: float = 0.01  # share of test lines that are 2-16 KB long


class _Job:
    """The job's clock and byte count while its output is generated."""

    def __init__(self, rng: random.Random, options: ContentOptions) -> None:
        self.rng = rng
        self.options = options
        self.now_ms = 0
        self.size = 0
        # A fixed-looking epoch keeps travis_time markers reproducible for a seed.
        self.epoch_ns = (1_700_000_000 + rng.randrange(10**7)) * 10**9

    def out(self, text: str | bytes, after_ms: int = 0) -> Write:
        self.now_ms += after_ms
        data = text.encode() if isinstance(text, str) else text
        self.size += len(data)
        return Write(self.now_ms, data)

    def pause(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


def job_output(rng: random.Random, options: ContentOptions) -> Iterator[Write]:
    """Yield one job's output, from worker banner to `Done. Your build exited with 0.`."""
    job = _Job(rng, options)
    yield from _fold(job, "worker_info", _worker_info(job))
    yield from _fold(job, "system_info", _system_info(job))
    slug = f"{rng.choice(WORDS)}/{rng.choice(WORDS)}"
    clone = f"git clone --depth=50 --branch=main https://github.com/{slug}.git {slug}"
    yield from _fold(job, "git.checkout", _command(job, clone, _clone(job, slug), "checkout"))
    yield from _command(job, "python --version", _lines(job, ["Python 3.11.9"]), "setup")
    yield from _fold(
        job, "install", _command(job, "pip install -r requirements.txt", _install(job), "install")
    )
    yield from _command(job, "pytest -v", _tests(job), "script")
    yield job.out(f'\n{GREEN}The command "pytest -v" exited with 0.{RESET}\n', job.pause(5, 50))
    yield job.out("\n\nDone. Your build exited with 0.\n", job.pause(100, 400))


def _fold(job: _Job, name: str, body: Iterator[Write]) -> Iterator[Write]:
    yield job.out(f"travis_fold:start:{name}{CLEAR}", job.pause(0, 20))
    yield from body
    yield job.out(f"travis_fold:end:{name}{CLEAR}")


def _command(job: _Job, cmd: str, body: Iterator[Write], event: str) -> Iterator[Write]:
    timer = f"{job.rng.getrandbits(32):08x}"
    start = job.epoch_ns + job.now_ms * 10**6
    yield job.out(f"travis_time:start:{timer}{CLEAR}$ {cmd}\n", job.pause(50, 600))
    yield from body
    finish = job.epoch_ns + job.now_ms * 10**6
    marker = f"start={start},finish={finish},duration={finish - start},event={event}"
    yield job.out(f"\ntravis_time:end:{timer}:{marker}{CLEAR}")


def _lines(job: _Job, lines: list[str]) -> Iterator[Write]:
    for line in lines:
        yield job.out(line + "\n", job.pause(1, 30))


def _worker_info(job: _Job) -> Iterator[Write]:
    host = f"travis-job-{job.rng.getrandbits(48):012x}"
    yield job.out(f"{BOLD_YELLOW}Worker information{RESET}\n")
    yield from _lines(job, [f"hostname: {host}", "version: v6.2.22", "startup: 5.91s"])


def _system_info(job: _Job) -> Iterator[Write]:
    yield job.out(f"{BOLD_YELLOW}Build system information{RESET}\n")
    lines = [
        "Build language: python",
        "Build dist: jammy",
        "Runtime kernel version: 5.15.0-1049-gcp",
    ]
    yield from _lines(job, lines)


def _clone(job: _Job, slug: str) -> Iterator[Write]:
    yield job.out(f"Cloning into '{slug}'...\n", job.pause(100, 400))
    yield from _progress(job, "remote: Counting objects:", job.rng.randint(4, 12))
    yield from _progress(job, "Receiving objects:", job.rng.randint(4, 12))
    yield job.out(f"$ git checkout -qf {job.rng.getrandbits(160):040x}\n", job.pause(20, 100))


def _progress(job: _Job, label: str, steps: int) -> Iterator[Write]:
    """A line redrawn in place with carriage returns, as git and pip do."""
    total = job.rng.randint(100, 5000)
    for step in range(steps + 1):
        done = total * step // steps
        yield job.out(
            f"\r{label} {100 * step // steps:3d}% ({done}/{total})\x1b[K", job.pause(20, 150)
        )
    yield job.out(", done.\n")


def _install(job: _Job) -> Iterator[Write]:
    for package in PACKAGES:
        size = job.rng.randint(20, 900)
        yield job.out(f"Collecting {package}\n", job.pause(30, 300))
        yield job.out(
            f"  Downloading {package}-{job.rng.randint(1, 9)}.{job.rng.randint(0, 40)}.0-py3-none-any.whl ({size} kB)\n"
        )
        for filled in (10, 25, 40):
            bar = "━" * filled + " " * (40 - filled)
            yield job.out(
                f"\r     {GREEN}{bar}{RESET} {size * filled // 40}/{size} kB", job.pause(20, 120)
            )
        yield job.out("\n")
    yield job.out(f"Successfully installed {' '.join(PACKAGES)}\n", job.pause(100, 500))


def _tests(job: _Job) -> Iterator[Write]:
    """Test output, file after file, until the log has its size."""
    budget = job.options.log_bytes - 200  # leave room for the trailer
    count = 0
    while job.size < budget:
        module = f"tests/test_{job.rng.choice(WORDS)}.py"
        for _ in range(job.rng.randint(3, 30)):
            count += 1
            yield job.out(_test_line(job, module, count), job.pause(0, 25))
        yield job.out(_section_note(job), job.pause(30, 250))
    yield job.out(f"{GREEN}===== {count} passed in {job.now_ms / 1000:.2f}s ====={RESET}\n")


def _test_line(job: _Job, module: str, count: int) -> bytes:
    rng, options = job.rng, job.options
    name = f"test_{rng.choice(WORDS)}_{rng.choice(WORDS)}_{count}"
    line = f"{module}::{name} {GREEN}PASSED{RESET} {rng.choice(UNICODE_WORDS) if rng.random() < 0.1 else ''}\n"
    data = line.encode()
    roll = rng.random()
    if roll < options.odd_byte_rate:
        cut = rng.randrange(len(data))
        data = data[:cut] + rng.choice(ODD_BYTES) + data[cut:]
    elif roll < options.odd_byte_rate + options.long_line_rate:
        data = _long_line(rng) + data
    return data


def _long_line(rng: random.Random) -> bytes:
    """A compiler invocation or a dumped blob: one line of 2-16 KB."""
    flags = " ".join(f"-I/usr/include/{rng.choice(WORDS)}" for _ in range(rng.randint(80, 600)))
    return (
        f"{YELLOW}warning:{RESET} gcc -O2 -Wall {flags} -o build/{rng.choice(WORDS)}.o\n".encode()
    )


def _section_note(job: _Job) -> str:
    rng = job.rng
    if rng.random() < 0.2:
        return f"{YELLOW}DeprecationWarning:{RESET} {rng.choice(WORDS)} is deprecated ⚠️\n"
    if rng.random() < 0.1:
        return f"{RED}RERUN{RESET} flaky {rng.choice(WORDS)} → passed on retry 🔁\n"
    return "\n"
