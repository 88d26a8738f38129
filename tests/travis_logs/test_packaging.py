"""The built wheel: what it installs, and that an installed copy runs without the source tree."""

from __future__ import annotations

import asyncio
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.helpers import free_port, settings_env, with_database
from travis_logs.checks import wait_for_port
from travis_logs.db import admin_dsn
from travis_logs.settings import Settings

# Builds and installs a wheel, then runs its migrate and api against PostgreSQL.
pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"workers", "api", "ingest", "workflows", "activities", "travis_logs"}
NOT_SOURCES = (".git", ".venv", "node_modules", ".data", "build", "dist", "*.egg-info", ".*cache")
MIGRATIONS = sorted(p.stem for p in (ROOT / "travis_logs" / "migrations").glob("*.sql"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("source") / "travis-logs"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("travis_logs-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as pip installs it, in a folder outside the checkout."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        + [str(wheel)],
        check=True,
        capture_output=True,
    )
    return target


def test_top_level_names_are_exactly_the_projects_packages(wheel: Path) -> None:
    """top_level.txt lists the six packages and nothing else (no tests, no bench)."""
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".dist-info/top_level.txt"))
        assert set(whl.read(name).decode().split()) == PACKAGES


def test_wheel_carries_migrations_and_viewer_assets(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    assert {f"travis_logs/migrations/{m}.sql" for m in MIGRATIONS} <= names
    assert {"api/templates/viewer.html", "api/static/viewer.js", "api/static/viewer.css"} <= names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_no_other_distribution_provides_our_top_level_names() -> None:
    """Another installed package with a `workflows` or `api` folder would shadow ours."""
    owners = importlib.metadata.packages_distributions()
    clashes = {
        name: owners[name] for name in PACKAGES if set(owners.get(name, [])) - {"travis-logs"}
    }
    assert clashes == {}


def _run(installed: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": str(installed)}
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=installed,  # not the checkout: nothing may come from the source tree
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest_asyncio.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A database that does not exist yet: `migrate` creates it."""
    name = f"travis_logs_wheel_{free_port()}"
    yield with_database(database_url, name)
    conn = await asyncpg.connect(admin_dsn(database_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def test_installed_copy_imports_from_where_it_was_installed(installed: Path) -> None:
    code = "import api, travis_logs.migrations as m; print(api.__file__); print(m.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=installed,
        env={"PYTHONPATH": str(installed), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(f).is_relative_to(installed) for f in out)


async def test_installed_migrate_applies_every_migration(
    installed: Path, settings: Settings, fresh_database: str
) -> None:
    env = settings_env(settings, DATABASE_URL=fresh_database)
    done = _run(installed, env, "migrate")
    assert done.returncode == 0, done.stderr
    conn = await asyncpg.connect(fresh_database)
    try:
        applied = [
            r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
    finally:
        await conn.close()
    assert applied == MIGRATIONS


async def test_installed_api_renders_the_viewer(installed: Path, settings: Settings) -> None:
    """`travis-logs api` from the wheel serves /jobs/:id with its template and assets."""
    port = free_port()
    # Credentials only so that the API starts and serves; this test pushes nothing.
    pusher = {"PUSHER_APP_ID": "1", "PUSHER_KEY": "key", "PUSHER_SECRET": "secret"}
    pusher["AUTH_TOKEN"] = "wheel-test-token-" + "w" * 32
    pusher["VIEWER_SECRET"] = "wheel-test-viewer-secret-" + "v" * 32
    env = {**settings_env(settings, PORT=str(port), **pusher), "PYTHONPATH": str(installed)}
    api = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "workers.cli", "api", "--host", "127.0.0.1"],
        cwd=installed,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_port("127.0.0.1", port, "PORT")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            page = await http.get("/jobs/1")
            script = await http.get("/assets/viewer.js")
        assert api.returncode is None, "the API exited"
        assert page.status_code == 200 and "viewer.js" in page.text, page.text
        assert script.status_code == 200 and script.text.strip()
    finally:
        if api.returncode is None:
            api.terminate()
        _, errors = await api.communicate()
        assert api.returncode == 0, errors.decode()[-2000:]
