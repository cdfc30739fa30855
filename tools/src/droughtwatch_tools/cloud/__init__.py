"""A deployed stack, driven from the operator's machine: its outputs (`outputs`), raw uploads
(`upload`), executions started and followed (`executions`), the database tunnel (`tunnel`).
The commands over them are in droughtwatch_tools.commands.cloud."""
