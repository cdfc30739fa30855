"""The errors the `droughtwatch` command shows its user, and the exit codes it ends with.

Every command raises :class:`UserError` (or a pipeline error, which carries its own hint) for a
problem the user can fix; :func:`droughtwatch_tools.printer.reports_errors` prints it the one
way ("error: ..." then "next: ...") and exits with its code. The model's checks and publishing
raise pipeline errors of their own (below): only the tools raise them."""

from __future__ import annotations

from enum import IntEnum

from droughtwatch_inference.errors import DroughtwatchError, InvalidModel


class ExitCode(IntEnum):
    """The command's exit codes (documented in the README); cron and CI read them."""

    DONE = 0  # the work succeeded (for a run: the execution, and none of its files failed)
    USAGE = 2  # a bad option, configuration or environment: nothing ran, or nothing changed
    FILES_FAILED = 3  # the execution succeeded, but files failed (or used up their attempts)
    EXECUTION_FAILED = 4  # the execution failed: a stage could not work at all


class UserError(Exception):
    """A problem the user can fix: ``str(error)`` says what went wrong, ``hint`` what to do
    next, ``exit_code`` how the command ends."""

    def __init__(self, message: str, hint: str = "", exit_code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = int(exit_code)


class ModelCheckFailed(InvalidModel):
    """`model check` found problems; ``problems`` lists each, naming its file and key."""

    hint = "Fix each problem named above and run `droughtwatch model check DIR` again."

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class VersionConflict(DroughtwatchError):
    """A model version is already published with other content (versions are immutable)."""

    hint = (
        "Give the model a new version in model.json; to roll back, publish the folder that "
        "version was made from."
    )
