"""docker-compose.yml and .env.example stay in step with the settings and the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from travis_logs.settings import Settings
from workers.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
# Read by boto, not by our settings.
EXTERNAL_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SETTING_KEYS = {name.upper() for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_services_run_real_commands_with_known_settings() -> None:
    """Every app service runs an existing subcommand with settings the code reads."""
    services = _compose()["services"]
    built = {name: s for name, s in services.items() if "build" in s}
    assert {"migrate", "worker", "ingest", "api"} <= set(built)
    for name, service in built.items():
        assert service["command"][0] in COMMANDS, name
        unknown = set(service.get("environment", {})) - SETTING_KEYS - EXTERNAL_KEYS
        assert not unknown, f"{name}: {unknown}"


def test_compose_dependencies_exist() -> None:
    """depends_on names only services that the file defines."""
    services = _compose()["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", [])) <= set(services), name


def test_env_example_lists_every_setting() -> None:
    """`.env.example` names each settings key once, and nothing the code does not read."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    keys = [line.split("=", 1)[0].lstrip("# ").strip() for line in lines if "=" in line]
    assert sorted(set(keys) - EXTERNAL_KEYS) == sorted(SETTING_KEYS)
    assert len(keys) == len(set(keys))
