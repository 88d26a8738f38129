"""`travis-logs dev`: the whole system on one machine, started, supervised and stopped together."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from rich.console import Console

from travis_logs.checks import check_postgres, check_rabbitmq, wait_for_port
from travis_logs.migrate import migrate
from travis_logs.s3 import ensure_bucket
from travis_logs.settings import Settings
from workers import devstack
from workers.devsecrets import DevCredentials, auth_token, load_or_create, viewer_secret
from workers.signals import on_stop_signal
from workers.supervisor import ProcessSpec, Supervisor

# Started in this order once the embedded services answer.
PROJECT_PROCESSES = ("pusher-server", "worker", "ingest", "api")
LOOPBACK = {"api": ("--host", "127.0.0.1"), "pusher-server": ("--host", "127.0.0.1")}

# moto takes any credentials and listens on loopback only; boto insists on some.
DEV_AWS = {"AWS_ACCESS_KEY_ID": "dev", "AWS_SECRET_ACCESS_KEY": "dev"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-simulate", action="store_true", help="do not publish a simulated job at start"
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    data_dir = Path(settings.dev_data_dir).resolve()
    simulate = settings.dev_simulate and not args.no_simulate
    return asyncio.run(run(settings, data_dir, simulate=simulate))


def stack_ports(settings: Settings) -> dict[str, int]:
    ports = {
        "TEMPORAL_ADDRESS": settings.temporal_host_port[1],
        "DEV_TEMPORAL_UI_PORT": settings.dev_temporal_ui_port,
        "PORT": settings.port,
    }
    if settings.s3_endpoint_url is None:
        ports["DEV_S3_PORT"] = settings.dev_s3_port
    ports["DEV_PUSHER_PORT"] = settings.dev_pusher_port
    return ports


def child_env(settings: Settings, made: DevCredentials) -> dict[str, str]:
    """The environment of the project's processes: the user's, completed for the local stack."""
    env = dict(os.environ)
    env["DATABASE_URL"] = str(settings.database_url)
    env["TEMPORAL_ADDRESS"] = settings.temporal_address
    env["S3_ENDPOINT_URL"] = s3_endpoint(settings)
    env["AUTH_TOKEN"] = auth_token(settings, made)
    env["VIEWER_SECRET"] = viewer_secret(settings, made)
    if settings.pusher_key is None:  # no Pusher configured: use the local Pusher-protocol server
        env.update(
            PUSHER_APP_ID=made.pusher_app_id,
            PUSHER_KEY=made.pusher_key,
            PUSHER_SECRET=made.pusher_secret,
        )
        env.update(
            PUSHER_HOST="127.0.0.1",
            PUSHER_PORT=str(settings.dev_pusher_port),
            PUSHER_SSL="false",
            PUSHER_WEBHOOK_URL=f"http://127.0.0.1:{settings.port}/pusher/existence",
        )
    return env


def s3_endpoint(settings: Settings) -> str:
    return settings.s3_endpoint_url or f"http://127.0.0.1:{settings.dev_s3_port}"


async def run(settings: Settings, data_dir: Path, *, simulate: bool) -> int:
    console = Console(stderr=True)
    for key, value in DEV_AWS.items():  # moto takes any credentials; boto insists on some
        os.environ.setdefault(key, value)
    with devstack.single_instance(data_dir / "dev.lock"):
        devstack.check_ports_free(stack_ports(settings))
        await check_postgres(str(settings.database_url))
        await check_rabbitmq(str(settings.rabbitmq_url))
        await migrate(str(settings.database_url))
        made = load_or_create(data_dir)
        supervisor = Supervisor()
        try:
            await _start_services(supervisor, settings, data_dir, console)
            await _start_processes(supervisor, settings, made)
            _print_urls(console, settings)
            console.print(f"API token     {auth_token(settings, made)} (Authorization: token ...)")
            console.print("[bold green]ready[/] (Ctrl-C stops everything)")
            if simulate:
                await _simulate_one_job(supervisor, settings, made)
            return await _supervise(supervisor, console)
        finally:
            await supervisor.stop_all()


async def _start_services(
    supervisor: Supervisor, settings: Settings, data_dir: Path, console: Console
) -> None:
    await supervisor.start(devstack.temporal_spec(settings, data_dir))
    if settings.s3_endpoint_url is None:
        await supervisor.start(devstack.s3_spec(settings, data_dir))
    client = await devstack.wait_for_temporal(settings)
    added = await devstack.register_search_attributes(client)
    if added:
        console.print(f"registered search attributes: {', '.join(added)}")
    if settings.s3_endpoint_url is None:
        await wait_for_port("127.0.0.1", settings.dev_s3_port, "DEV_S3_PORT")
        local = settings.model_copy(update={"s3_endpoint_url": s3_endpoint(settings)})
        await ensure_bucket(local)


async def _start_processes(
    supervisor: Supervisor, settings: Settings, made: DevCredentials
) -> None:
    env = child_env(settings, made)
    for name in PROJECT_PROCESSES:
        # Every listener of the stack binds to loopback: nothing here is for the network.
        argv = [sys.executable, "-m", "workers.cli", name, *LOOPBACK.get(name, ())]
        await supervisor.start(ProcessSpec(name, argv, env=env))
    await wait_for_port("127.0.0.1", settings.port, "PORT")


async def _simulate_one_job(
    supervisor: Supervisor, settings: Settings, made: DevCredentials
) -> None:
    # In the background: the job streams in real time while the person opens the viewer.
    argv = [sys.executable, "-m", "workers.cli", "simulate", "--jobs", "1", "--print-links"]
    env = child_env(settings, made)
    await supervisor.start(ProcessSpec("simulate", argv, env=env, essential=False))


def _print_urls(console: Console, settings: Settings) -> None:
    console.print(f"Temporal UI   http://127.0.0.1:{settings.dev_temporal_ui_port}")
    console.print(f"Temporal gRPC {settings.temporal_address}")
    console.print(f"API           http://127.0.0.1:{settings.port} (docs at /docs)")
    console.print(f"Viewer        http://127.0.0.1:{settings.port}/jobs/<job_id>")
    console.print(f"S3            {s3_endpoint(settings)} bucket {settings.s3_bucket}")
    console.print(f"Pusher        ws://127.0.0.1:{settings.dev_pusher_port}")


async def _supervise(supervisor: Supervisor, console: Console) -> int:
    stop = asyncio.Event()
    with on_stop_signal(stop.set):
        stopping = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(supervisor.wait_any())
        done, _ = await asyncio.wait({stopping, exited}, return_when=asyncio.FIRST_COMPLETED)
    for task in (stopping, exited):
        task.cancel()
    if exited in done and not exited.cancelled():
        name, code = exited.result()
        console.print(f"[red]{name} exited with code {code}; stopping the stack[/]")
        return 1
    console.print("stopping ...")
    return 0
