"""The `droughtwatch` command's sub-commands, one module per group; `droughtwatch_tools.cli`
wires them into the app."""
