"""`travis-logs dev` and the configuration errors every entry point reports in one line."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.helpers import free_port
from travis_logs.binaries import executable

READY = b"ready (Ctrl-C stops everything)"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", *args]


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


LOOPBACK = {"127.0.0.1", "::1"}


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on, read from /proc."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    found = set()
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.add((_address(bytes.fromhex(address), size), int(port, 16)))
    return found


def _address(raw: bytes, size: int) -> str:
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
    return str(ipaddress.ip_address(words))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def dev_env(tmp_path: Path, database_url: str, amqp_url: str) -> dict[str, str]:
    temporal_port = free_port()
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": amqp_url,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "DEV_TEMPORAL_UI_PORT": str(free_port()),
        "DEV_S3_PORT": str(free_port()),
        "DEV_PUSHER_PORT": str(free_port()),
        "PORT": str(free_port()),
        "DEV_DATA_DIR": str(tmp_path / "data"),
        # The first run's simulated job, with a short quiet period to keep the test brief.
        "LOGS_QUIET_PERIOD_S": "1",
    }


@pytest.fixture
def dev(dev_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A running `dev` stack on free ports; stopped (and checked for leftovers) afterwards."""
    process = subprocess.Popen(
        _cli("dev"), env=dev_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _wait_for(
    process: subprocess.Popen[bytes], pattern: bytes, timeout: float, seen: bytes = b""
) -> tuple[bytes, re.Match[bytes]]:
    """Read the stack's output until `pattern` matches; all output so far and the match."""
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    while (match := re.search(pattern, seen)) is None:
        assert process.poll() is None, seen.decode(errors="replace")
        assert time.monotonic() < deadline, (
            f"no {pattern!r} in {timeout} s:\n{seen.decode(errors='replace')}"
        )
        seen += process.stdout.read() or b""
        time.sleep(0.1)
    return seen, match


def _workflow_state(dev_env: dict[str, str], job_id: int) -> str | None:
    """LogState of the job's workflow as the Temporal CLI describes it; None before it exists."""
    described = subprocess.run(
        [
            executable("temporal"),
            "workflow",
            "describe",
            "-w",
            f"log-{job_id}",
            "-o",
            "json",
            "--address",
            dev_env["TEMPORAL_ADDRESS"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if described.returncode != 0:
        return None
    info = json.loads(described.stdout)["workflowExecutionInfo"]
    field = info.get("searchAttributes", {}).get("indexedFields", {}).get("LogState")
    return json.loads(base64.b64decode(field["data"])) if field else None


def _archive_size(dev_env: dict[str, str], job_id: int) -> int:
    s3 = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{dev_env['DEV_S3_PORT']}", region_name="us-east-1"
    )
    head = s3.head_object(Bucket="travis-logs", Key=f"jobs/{job_id}/log.txt")
    return int(head["ContentLength"])


@pytest.mark.timeout(300)  # a hang guard: the stack starts twice, a job lives a whole life
def test_dev_starts_registers_attributes_and_stops_clean(
    dev: subprocess.Popen[bytes], dev_env: dict[str, str]
) -> None:
    """The stack comes up, the UI answers, a second dev is refused, SIGINT leaves nothing.

    How fast it comes up is not asserted here (a loaded machine says nothing about it); the
    wait is a hang guard.
    """
    output, _ = _wait_for(dev, re.escape(READY), 120)
    ui = httpx.get(f"http://127.0.0.1:{dev_env['DEV_TEMPORAL_UI_PORT']}/")
    assert ui.status_code == 200

    listed = subprocess.run(
        [
            executable("temporal"),
            "operator",
            "search-attribute",
            "list",
            "--address",
            dev_env["TEMPORAL_ADDRESS"],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name, kind in (("JobId", "Int"), ("LogState", "Keyword"), ("ArchiveAttempts", "Int")):
        assert any(line.split() == [name, kind] for line in listed.splitlines()), listed

    second = subprocess.run(_cli("dev"), env=dev_env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 2
    assert "already running" in second.stderr and "Traceback" not in second.stderr

    # The newcomer's first minute: the simulated job streams, ends, and is archived and purged.
    output, match = _wait_for(dev, rb"\[simulate\] job (\d+): viewer", 30, output)
    job_id = int(match.group(1))
    deadline = time.monotonic() + 60
    while _workflow_state(dev_env, job_id) != "done":
        assert time.monotonic() < deadline, f"log-{job_id} not done within a minute"
        time.sleep(1)
    archived = _archive_size(dev_env, job_id)
    assert archived > 0

    children = _descendants(dev.pid)
    assert children, "dev started no child processes"
    listening = _listening(children | {dev.pid})
    assert len(listening) >= 5, listening  # Temporal, its UI, S3, Pusher, API at least
    assert {host for host, _ in listening} <= LOOPBACK, listening

    token = re.search(rb"API token +(\S+)", output)
    assert token is not None and token.group(1) != b"dev-token", output
    dev.send_signal(signal.SIGINT)
    assert dev.wait(timeout=30) == 0
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []

    # The next start keeps the data: the purged log still reads, with the same token.
    again = subprocess.Popen(
        _cli("dev", "--no-simulate"), env=dev_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        restarted, _ = _wait_for(again, re.escape(READY), 90)  # a hang guard
        assert token.group(0) in restarted
        log = httpx.get(
            f"http://127.0.0.1:{dev_env['PORT']}/logs/{job_id}?by=job_id",
            headers={"Authorization": f"token {token.group(1).decode()}"},
        )
        assert log.status_code == 200, log.text
        assert log.json()["content"] and len(log.json()["content"].encode()) == archived
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(timeout=30)
        if again.stdout is not None:
            again.stdout.close()


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cli(*args), env=env, capture_output=True, text=True, timeout=60)


def _one_clear_line(result: subprocess.CompletedProcess[str], setting: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("travis-logs:")]
    assert len(lines) == 1 and setting in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_database_url_is_one_line(dev_env: dict[str, str]) -> None:
    """A DATABASE_URL that is not a URL names the setting instead of raising."""
    _one_clear_line(_run_cli({**dev_env, "DATABASE_URL": "not a url"}, "migrate"), "DATABASE_URL")


def test_unreachable_database_is_one_line_with_a_hint(dev_env: dict[str, str]) -> None:
    """Nothing listening on the database port: the setting and how to start PostgreSQL."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/travis_logs"
    result = _run_cli({**dev_env, "DATABASE_URL": url}, "dev")
    _one_clear_line(result, "DATABASE_URL")
    assert "pg_ctlcluster" in result.stderr


def test_unreachable_rabbitmq_is_one_line_with_a_hint(dev_env: dict[str, str]) -> None:
    """Nothing listening on the broker port: the setting and how to start RabbitMQ."""
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    result = _run_cli({**dev_env, "RABBITMQ_URL": url}, "dev")
    _one_clear_line(result, "RABBITMQ_URL")
    assert "rabbitmq-server" in result.stderr


def test_port_taken_names_the_setting(dev_env: dict[str, str]) -> None:
    """A port the stack needs is in use: the line names the setting that moves it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli({**dev_env, "DEV_TEMPORAL_UI_PORT": str(port)}, "dev")
    _one_clear_line(result, "DEV_TEMPORAL_UI_PORT")
