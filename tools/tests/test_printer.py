"""The one user-facing error type and its printer: every command shows a problem as "error:"
then "next:", on stderr, and exits with the problem's code."""

from __future__ import annotations

import typer
from droughtwatch_inference.errors import ModelNotFound
from droughtwatch_tools import printer
from droughtwatch_tools.errors import ExitCode, ModelCheckFailed, UserError
from droughtwatch_tools.printer import reports_errors
from rich.console import Console
from typer.testing import CliRunner


def _app(problem: Exception) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @reports_errors
    def go(count: int = 1) -> None:
        """A command that fails with the given problem."""
        assert count == 7  # the decorated command still takes its options
        raise problem

    return app


def test_a_user_error_prints_what_and_next_on_stderr_and_exits_with_its_code() -> None:
    result = CliRunner().invoke(
        _app(UserError("the bucket is gone", "deploy the stack", ExitCode.EXECUTION_FAILED)),
        ["--count", "7"],
    )
    assert result.exit_code == 4
    assert result.stderr == "error: the bucket is gone\nnext: deploy the stack\n"
    assert result.stdout == ""


def test_a_pipeline_error_prints_its_own_hint_and_exits_2() -> None:
    result = CliRunner().invoke(
        _app(ModelNotFound("no model.json under models/")), ["--count", "7"]
    )
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        "error: no model.json under models/",
        f"next: {ModelNotFound.hint}",
    ]


def test_a_hint_already_in_the_message_is_not_repeated() -> None:
    result = CliRunner().invoke(
        _app(UserError("no stack: run pulumi up", "run pulumi up")), ["--count", "7"]
    )
    assert result.stderr == "error: no stack: run pulumi up\n"


def test_a_long_message_prints_as_written_on_one_line() -> None:
    link = "https://docs.docker.com/engine/install/?from=1767484800000&to=1767744000000"
    message = f"cannot read list[str] from [bold]{link}[/] in /tmp/a folder/with spaces"
    result = CliRunner().invoke(_app(UserError(message, f"see {link}")), ["--count", "7"])
    # brackets are not markup, and nothing is wrapped at the console's 80 columns
    assert result.stderr.splitlines() == [f"error: {message}", f"next: see {link}"]


def test_a_failed_check_prints_each_problem_before_the_error() -> None:
    problem = ModelCheckFailed(
        "models/v2 does not pass `droughtwatch model check`",
        ["model.json: classes: needs at least 2", "model.pt2: does not load"],
    )
    result = CliRunner().invoke(_app(problem), ["--count", "7"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        "problem: model.json: classes: needs at least 2",
        "problem: model.pt2: does not load",
        "error: models/v2 does not pass `droughtwatch model check`",
        f"next: {ModelCheckFailed.hint}",
    ]


def test_an_error_stays_on_one_line_in_a_narrow_terminal(monkeypatch) -> None:
    monkeypatch.setattr(printer, "err", Console(stderr=True, width=40))
    message = "the stack has no output bastion_instance_id, database_address"
    result = CliRunner().invoke(_app(UserError(message)), ["--count", "7"])
    assert result.stderr == f"error: {message}\n"
