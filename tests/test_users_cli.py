"""``idp users add`` and ``idp users list``: the way people are created until social sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from idp.cli import main


@pytest.fixture
def idp(tmp_path: Path) -> CliRunner:
    """A runner whose ``IDP_*`` environment points at a fresh SQLite file."""
    return CliRunner(
        env={
            "IDP_ENV": "test",
            "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
            "IDP_KEY_DIR": str(tmp_path / "keys"),
            "IDP_REDIS_URL": None,
        }
    )


def run(idp: CliRunner, *args: str) -> Result:
    return idp.invoke(main, list(args), catch_exceptions=False)


def listed(idp: CliRunner) -> list[list[str]]:
    result = run(idp, "users", "list")
    assert result.exit_code == 0, result.output
    return [line.split("\t") for line in result.output.splitlines()]


def test_a_person_added_with_a_name_is_listed_with_an_id_email_and_name(idp: CliRunner) -> None:
    added = run(idp, "users", "add", "pat@acme.com", "--name", "Pat Doe")

    assert added.exit_code == 0, added.output
    user_id, email = added.output.strip().split("\t")
    assert user_id.startswith("usr_") and len(user_id) > 20
    assert email == "pat@acme.com"
    assert listed(idp) == [[user_id, "pat@acme.com", "Pat Doe"]]


def test_the_name_is_optional_and_everyone_is_listed(idp: CliRunner) -> None:
    run(idp, "users", "add", "first@acme.com")
    run(idp, "users", "add", "second@acme.com", "--name", "Second")

    assert sorted(row[1:] for row in listed(idp)) == [
        ["first@acme.com", ""],
        ["second@acme.com", "Second"],
    ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("Pat@ACME.Com", "Pat@acme.com", id="domain-lowercased-local-part-kept"),
        pytest.param("  pat@acme.com  ", "pat@acme.com", id="spaces-trimmed"),
        pytest.param("pat@acme.com.", "pat@acme.com", id="trailing-dot"),
        pytest.param("pat@BÜCHER.example", "pat@xn--bcher-kva.example", id="idna"),
    ],
)
def test_the_email_is_stored_normalised(idp: CliRunner, given: str, stored: str) -> None:
    added = run(idp, "users", "add", given)

    assert added.exit_code == 0, added.output
    assert [row[1] for row in listed(idp)] == [stored]


@pytest.mark.parametrize(
    "again",
    [
        pytest.param("pat@acme.com", id="same-spelling"),
        pytest.param("pat@ACME.COM", id="domain-case"),
        pytest.param("pat@acme.com.", id="trailing-dot"),
    ],
)
def test_a_second_person_with_the_same_address_is_refused_with_a_clear_message(
    idp: CliRunner, again: str
) -> None:
    run(idp, "users", "add", "pat@acme.com", "--name", "Pat")

    refused = run(idp, "users", "add", again, "--name", "Impostor")

    assert refused.exit_code == 1
    assert "Error: a person with pat@acme.com exists" in refused.output
    assert "Traceback" not in refused.output
    assert [row[1:] for row in listed(idp)] == [["pat@acme.com", "Pat"]]


def test_a_local_part_differing_only_in_case_is_another_person(idp: CliRunner) -> None:
    run(idp, "users", "add", "pat@acme.com")

    added = run(idp, "users", "add", "Pat@acme.com")

    assert added.exit_code == 0, added.output
    assert sorted(row[1] for row in listed(idp)) == ["Pat@acme.com", "pat@acme.com"]


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("no-at-sign", id="no-at"),
        pytest.param("pat@localhost", id="no-dot-in-domain"),
        pytest.param('"pat"@acme.com', id="quoted-local-part"),
        pytest.param("pat@@acme.com", id="two-ats"),
    ],
)
def test_an_invalid_address_is_refused_naming_the_argument(idp: CliRunner, given: str) -> None:
    refused = run(idp, "users", "add", given)

    assert refused.exit_code == 2
    assert "EMAIL" in refused.output
    assert "Traceback" not in refused.output
    assert listed(idp) == []


def test_an_empty_store_lists_nobody(idp: CliRunner) -> None:
    assert listed(idp) == []
