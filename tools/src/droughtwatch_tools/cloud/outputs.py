"""A deployed stack's outputs: from `pulumi stack output --json`, or from the flags that stand in
for them when the Pulumi CLI is not at hand.

The output names (`StackOutput`) are the contract package's (droughtwatch_contract.outputs): the
Pulumi program (infra/__main__.py) exports under these names.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from droughtwatch_contract.outputs import StackOutput

from droughtwatch_tools.errors import UserError

# The flag that stands in for each output a command needs.
FLAGS: dict[StackOutput, str] = {
    StackOutput.REGION: "--region",
    StackOutput.DATA_BUCKET: "--data-bucket",
    StackOutput.MODEL_BUCKET: "--model-bucket",
    StackOutput.MODEL_PREFIX: "--model-prefix",
    StackOutput.STATE_MACHINE_ARN: "--state-machine-arn",
    StackOutput.BASTION_INSTANCE_ID: "--bastion-id",
    StackOutput.DATABASE_ADDRESS: "--db-host",
    StackOutput.DATABASE_PORT: "--db-port",
}


def flags_hint(needed: Iterable[StackOutput]) -> str:
    """How to pass the ``needed`` outputs as flags ("" when no flag stands in for them)."""
    flags = " ".join(f"{FLAGS[o]} <{o.value}>" for o in needed if o in FLAGS)
    return f"pass the stack's outputs as flags instead: {flags}" if flags else ""


def stack_outputs(
    stack: str | None,
    cwd: Path | str | None = None,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    needed: Sequence[StackOutput] = (),
) -> dict[str, Any]:
    """The stack's outputs from `pulumi stack output --json` (run in ``cwd``, the directory of
    Pulumi.yaml). No secrets are asked for: the stack exports none."""
    command = ["pulumi", "stack", "output", "--json"]
    if stack:
        command += ["--stack", stack]
    try:
        result = run(command, capture_output=True, text=True, check=False, cwd=cwd)
    except FileNotFoundError:
        raise UserError(
            "the Pulumi CLI is not installed (no `pulumi` on PATH)",
            "install it (https://www.pulumi.com/docs/install/) or " + flags_hint(needed),
        ) from None
    if result.returncode != 0:
        raise UserError(
            f"`{shlex.join(command)}` failed: {result.stderr.strip() or 'no message'}",
            "run it from the repository (or pass --cwd), name the stack with --stack, log in "
            "with `pulumi login`; or " + flags_hint(needed),
        )
    try:
        outputs = json.loads(result.stdout or "{}")
    except ValueError:
        raise UserError(f"`{shlex.join(command)}` did not print JSON") from None
    if not isinstance(outputs, dict):
        raise UserError(f"`{shlex.join(command)}` printed {type(outputs).__name__}, not an object")
    return outputs


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` holding Pulumi.yaml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    return None


def resolve_outputs(
    needed: Sequence[StackOutput],
    given: Mapping[StackOutput, Any],
    stack: str | None,
    cwd: Path | None,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> dict[str, Any]:
    """Outputs from flags, and from the stack for what the flags leave out."""
    flags = {k.value: v for k, v in given.items() if v is not None}
    if all(o.value in flags for o in needed):
        return flags
    project = cwd or find_project_dir()
    outputs = {**stack_outputs(stack, project, run=run, needed=needed), **flags}
    missing = [o for o in needed if outputs.get(o.value) in (None, "")]
    if missing:
        names = ", ".join(o.value for o in missing)
        raise UserError(
            f"the stack has no output {names}",
            "deploy it with `pulumi up` (check the stack name), or " + flags_hint(missing),
        )
    return outputs
