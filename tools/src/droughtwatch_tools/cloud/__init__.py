"""A deployed stack, driven from the operator's machine: its outputs (`outputs`), raw uploads
(`upload`), executions started and followed (`executions`), the database tunnel (`tunnel`).
The commands over them are in droughtwatch_tools.commands.cloud.

The names below are the ones grafana.py reads the stack through."""

from droughtwatch_contract.outputs import StackOutput

from droughtwatch_tools.cloud.outputs import find_project_dir, stack_outputs

# The cloud modules raise the tools' one user-facing error; grafana.py still catches it under
# its earlier name.
from droughtwatch_tools.errors import UserError as CloudError

__all__ = ["CloudError", "StackOutput", "find_project_dir", "stack_outputs"]
