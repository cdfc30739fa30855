"""The deploy and the image agree on the migrations: the digest the Pulumi program computes from
the repository's files (keying the migrate function's invocation) is the one the migrate
handler computes from its installed package (and checks the deploy's against)."""

from __future__ import annotations

from pathlib import Path

from droughtwatch_contract.database import migrations_digest
from droughtwatch_inference.adapters.database import migration_files, migrations_sha256
from droughtwatch_infra.migration import repository_migrations_digest

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_program_and_the_image_digest_the_same_migrations() -> None:
    assert repository_migrations_digest(REPOSITORY) == migrations_sha256()


def test_the_digest_covers_every_migration_in_order_and_nothing_else() -> None:
    files = [(name, sql.encode()) for _, name, sql in migration_files()]
    assert len(files) >= 3
    digest = migrations_digest(files)
    assert digest == migrations_digest(reversed(files))  # order of listing does not matter
    assert digest == migrations_digest([*files, ("__init__.py", b""), ("README.md", b"x")])
    renamed = [(f"9{name}", body) for name, body in files[:1]] + files[1:]
    assert migrations_digest(renamed) != digest
