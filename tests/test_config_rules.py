"""Settings that would make the service unsafe or unreachable stop it, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idp.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        pytest.param({"database_url": "mysql://x"}, "IDP_DATABASE_URL", id="database-scheme"),
        pytest.param({"redis_url": "garbage"}, "IDP_REDIS_URL", id="redis-scheme"),
        pytest.param(
            {"registration_initial_access_token": "s3cret"},
            "IDP_REGISTRATION_INITIAL_ACCESS_TOKEN",
            id="weak-initial-token",
        ),
        pytest.param({"key_publish_delay": 0}, "IDP_KEY_PUBLISH_DELAY", id="publish-delay-zero"),
        pytest.param(
            {"key_publish_delay": 300, "jwks_max_age": 300},
            "IDP_KEY_PUBLISH_DELAY",
            id="publish-delay-within-cache-age",
        ),
    ],
)
def test_unsafe_or_unusable_settings_are_refused_by_name(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(**overrides)

    assert str(raised.value).startswith(variable + ":")


def test_an_unreachable_redis_stops_the_cli_with_a_message_instead_of_hanging(
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IDP_")},
        "IDP_ENV": "test",
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "IDP_KEY_DIR": str(tmp_path / "keys"),
        "IDP_REDIS_URL": "redis://127.0.0.1:9/0",
    }
    idp = Path(sys.executable).with_name("idp")

    result = subprocess.run(
        [str(idp), "keys", "list"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Redis" in result.stderr or "redis" in result.stderr
