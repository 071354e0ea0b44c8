"""Running `arrears` verbs in-process, the way a user types them."""

from __future__ import annotations

import getpass
import json

from click.testing import Result
from typer.testing import CliRunner

from arrears.cli import app

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    """Run a verb that must succeed; its output is in the assertion message if it does not."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def words(result: Result) -> str:
    """The output as one line (the console wraps long lines)."""
    return " ".join(result.output.split())


def cli_admin(name: str = "test-operator") -> str:
    """An `ARREARS_CLI_PRINCIPALS` mapping this login to an admin: with auth required the CLI acts as a named
    principal, and a test's operator is this one (serving.access.cli_principal)."""
    return json.dumps({getpass.getuser(): {"name": name, "role": "admin"}})
