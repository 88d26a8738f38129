"""Where and how the Temporal client connects: envconfig's profile, the variables, Settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from travis_logs.settings import Settings
from travis_logs.temporal import connect_config

PROFILE = """
[profile.default]
address = "temporal.internal:7233"
namespace = "from-profile"

[profile.cloud]
address = "us-east-1.aws.api.temporal.io:7233"
namespace = "logs.acct"
api_key = "profile-key"

[profile.default.tls]
client_cert_data = "CERT"
client_key_data = "KEY"
server_name = "temporal.internal"
"""


@pytest.fixture(autouse=True)
def no_exported_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: nothing this machine exports may decide these tests."""
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(PROFILE)
    return path


def test_a_profile_gives_address_namespace_and_mtls(profile: Path) -> None:
    """Settings left at their defaults: the profile's address, namespace and certificates."""
    config = connect_config(Settings(_env_file=None), {"TEMPORAL_CONFIG_FILE": str(profile)})
    assert config["target_host"] == "temporal.internal:7233"
    assert config["namespace"] == "from-profile"
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.domain) == (
        b"CERT",
        b"KEY",
        "temporal.internal",
    )


def test_variables_override_the_profile(profile: Path) -> None:
    """TEMPORAL_PROFILE picks a profile; an API key turns TLS on; the variables win."""
    env = {
        "TEMPORAL_CONFIG_FILE": str(profile),
        "TEMPORAL_PROFILE": "cloud",
        "TEMPORAL_API_KEY": "env-key",
    }
    config = connect_config(Settings(_env_file=None), env)
    assert config["target_host"] == "us-east-1.aws.api.temporal.io:7233"
    assert config["api_key"] == "env-key" and config["tls"] is True


def test_an_address_given_to_settings_wins(profile: Path) -> None:
    """Tests, `dev` and `.env` set TEMPORAL_ADDRESS through Settings: that is where it goes."""
    settings = Settings(_env_file=None).model_copy(update={"temporal_address": "127.0.0.1:1"})
    config = connect_config(settings, {"TEMPORAL_CONFIG_FILE": str(profile)})
    assert config["target_host"] == "127.0.0.1:1" and config["namespace"] == "from-profile"


def test_no_profile_is_the_local_default() -> None:
    config = connect_config(Settings(_env_file=None), {})
    assert config["target_host"] == "127.0.0.1:7233" and config["namespace"] == "default"
    assert "tls" not in config
