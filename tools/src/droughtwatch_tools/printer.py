"""The one printer of the `droughtwatch` command: results to standard output, errors and
progress to standard error, and every user-facing error printed the same way."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

import typer
from droughtwatch_inference.errors import DroughtwatchError
from rich.console import Console
from rich.markup import escape

from droughtwatch_tools.errors import UserError

console = Console()
err = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def _say(prefix: str, text: str) -> None:
    """One line on stderr, the text as written: brackets in it are not markup, and the line is
    not wrapped at the console's width (that would cut paths, links and commands in two)."""
    err.print(f"{prefix} {escape(text)}", highlight=False, soft_wrap=True)


def problems(found: Iterable[object]) -> None:
    """What a check found, one ``problem: ...`` a line, on stderr."""
    for problem in found:
        _say("[red]problem:[/]", str(problem))


def error(problem: UserError | DroughtwatchError) -> None:
    """``error: <what went wrong>`` and, when known, ``next: <what to do>``, on stderr; after
    the problems the error lists (a failed model check names each)."""
    problems(getattr(problem, "problems", ()))
    _say("[bold red]error:[/]", str(problem))
    if problem.hint and problem.hint not in str(problem):
        next_step(problem.hint)


def next_step(hint: str) -> None:
    """``next: <what to do>``, on stderr, on one line."""
    _say("[yellow]next:[/]", hint)


def warning(message: str) -> None:
    _say("[yellow]warning:[/]", message)


def fail(problem: UserError | DroughtwatchError) -> typer.Exit:
    """Print the problem; the Exit to raise (a pipeline error exits as a usage error, 2)."""
    error(problem)
    return typer.Exit(code=problem.exit_code if isinstance(problem, UserError) else 2)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: a UserError or a pipeline error raised inside it is printed by
    :func:`error` and ends the command with its exit code, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (UserError, DroughtwatchError) as problem:
            raise fail(problem) from None

    return wrapper
