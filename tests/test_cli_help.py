"""Every ``idp`` command's ``--help`` reads as plain text: click shows docstrings as they are
written, so reStructuredText markup would reach the operator raw."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from idp.cli import main


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The words that name each command under ``command``, ``command`` itself first."""
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


@pytest.mark.parametrize("words", list(command_paths(main)), ids=lambda w: " ".join(("idp", *w)))
def test_help_has_no_markup(words: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*words, "--help"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "`" not in result.output
