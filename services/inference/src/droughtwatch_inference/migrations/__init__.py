"""Numbered SQL migrations, applied in order by adapters.database.migrate."""
