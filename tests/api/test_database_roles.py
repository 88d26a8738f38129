"""deploy/postgres/roles.sql: migrations run as the database's owner, every process as a role
that reads and writes rows and changes no schema (as docker-compose.yml sets them up)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import TOKEN, Keys, running_api
from tests.api.test_logs import send_parts
from tests.helpers import assert_eventually, open_store, with_database
from tests.private_postgres import PrivatePostgres, private_postgres
from travis_logs.db import create_pool
from travis_logs.migrate import require_current
from travis_logs.settings import Settings
from workers.cli import main
from workers.temporal_worker import build_worker, lifecycle_activities

# A private PostgreSQL cluster of its own: not for the fast tier.
pytestmark = pytest.mark.services

ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "roles.sql"
OWNER, APP = "travis_logs_owner", "travis_logs_app"


@dataclass(frozen=True)
class Cluster:
    server: PrivatePostgres

    def dsn(self, user: str, database: str = "travis_logs") -> str:
        return f"postgresql://{user}:pw-{user}@127.0.0.1:{self.server.port}/{database}"

    def run_roles_sql(self) -> None:
        """As docker-compose's postgres-roles service runs it."""
        subprocess.run(
            [
                "psql",
                self.dsn("postgres", "postgres"),
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"owner_password=pw-{OWNER}",
                "-v",
                f"app_password=pw-{APP}",
                "-f",
                str(ROLES_SQL),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A private cluster set up by the roles script, then migrated by its owner."""
    with private_postgres() as server:
        made = Cluster(server)
        made.run_roles_sql()
        yield made


def _migrate(monkeypatch: pytest.MonkeyPatch, dsn: str) -> int:
    monkeypatch.setenv("DATABASE_URL", dsn)
    return main(["migrate", "--skip-temporal"])


def test_owner_migrates_and_owns_every_table_and_the_script_runs_again(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _migrate(monkeypatch, cluster.dsn(OWNER)) == 0
    cluster.run_roles_sql()  # every `docker compose up` runs it again

    async def owners() -> set[str]:
        conn = await asyncpg.connect(cluster.dsn("postgres"))
        try:
            rows = await conn.fetch("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()
        return {r["tableowner"] for r in rows}

    assert asyncio.run(owners()) == {OWNER}
    assert _migrate(monkeypatch, cluster.dsn(OWNER)) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "DROP TABLE log_parts",
        "ALTER TABLE logs ADD COLUMN intruder int",
        "TRUNCATE logs CASCADE",
        "CREATE DATABASE intruder",
        "CREATE ROLE intruder",
    ],
)
async def test_app_role_changes_no_schema(cluster: Cluster, statement: str) -> None:
    conn = await asyncpg.connect(cluster.dsn(APP))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_app_role_listens_and_notifies(cluster: Cluster) -> None:
    """The ingest listens for new redactions, which the API announces with pg_notify."""
    listener = await asyncpg.connect(cluster.dsn(APP))
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener("roles_test", lambda *args: heard.put_nowait(args[3]))
        await listener.execute("SELECT pg_notify('roles_test', '42')")
        assert await asyncio.wait_for(heard.get(), timeout=10) == "42"
    finally:
        await listener.close()


def test_migrate_as_the_app_role_says_which_user_to_run_it_as(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A migration the app role would have to apply is refused in one line, no traceback."""

    async def forget_one() -> None:
        conn = await asyncpg.connect(cluster.dsn(OWNER))
        try:
            await conn.execute("DELETE FROM schema_migrations WHERE version = '0008_redactions'")
            await conn.execute("DROP TABLE log_redaction_rules, log_redactions")
        finally:
            await conn.close()

    assert _migrate(monkeypatch, cluster.dsn(OWNER)) == 0
    asyncio.run(forget_one())
    assert _migrate(monkeypatch, cluster.dsn(APP)) == 2
    err = capsys.readouterr().err
    assert "may not change the schema" in err and "owner" in err and "Traceback" not in err
    assert f"pw-{APP}" not in err
    assert _migrate(monkeypatch, cluster.dsn(OWNER)) == 0


def test_migrate_of_a_missing_database_without_createdb_is_one_line(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = with_database(cluster.dsn(OWNER), f"missing_{uuid.uuid4().hex[:8]}")
    assert _migrate(monkeypatch, missing) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "superuser" in err and "Traceback" not in err


async def test_a_log_goes_through_api_and_worker_as_the_app_role(
    cluster: Cluster,
    api_settings: Settings,
    temporal_env: WorkflowEnvironment,
    keys: Keys,
    job_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parts in, aggregated, archived, verified, purged, then replaced through PUT /logs:
    every table the processes use, read and written as travis_logs_app."""
    assert await asyncio.to_thread(_migrate, monkeypatch, cluster.dsn(OWNER)) == 0
    await require_current(cluster.dsn(APP))  # what every process checks at start
    tag = uuid.uuid4().hex[:8]
    settings = api_settings.model_copy(
        update={"database_url": cluster.dsn(APP), "temporal_task_queue": f"roles-{tag}"}
    )
    pool = await create_pool(cluster.dsn(APP))
    try:
        async with (
            open_store(settings) as store,
            build_worker(temporal_env.client, settings, lifecycle_activities(pool, store)),
            running_api(settings) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"token {TOKEN}"}, timeout=30
            ) as client,
        ):
            await send_parts(client, keys, job_id, ["built\n", "ok\n", ""], final=True)

            async def purged() -> None:
                row = await pool.fetchrow("SELECT purged_at FROM logs WHERE job_id = $1", job_id)
                assert row is not None and row["purged_at"] is not None

            await assert_eventually(purged, timeout=30)
            assert (await client.get(f"/logs/{job_id}")).json()["content"] == "built\nok\n"
            replaced = await client.put(f"/logs/{job_id}", content=b"replaced\n")
            assert replaced.status_code == 200, replaced.text
            assert (await client.get(f"/logs/{job_id}")).json()["content"] == "replaced\n"
    finally:
        await pool.close()
