"""A deploy needs the Pulumi SDKs, pydantic and the contract package only: infra's locked
dependencies hold none of the service's heavy libraries, and no infra file imports the service.
(CI also runs these tests in an environment with infra's dependencies alone.)"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
INFRA = REPOSITORY / "infra"
SERVICE_ONLY = {"torch", "evidently", "onnxruntime", "pandas", "droughtwatch-inference"}
# What infra's code and tests may import beyond the standard library.
ALLOWED_IMPORTS = {
    "droughtwatch_contract",
    "droughtwatch_infra",
    "pulumi",
    "pulumi_aws",
    "pulumi_docker",
    "pulumi_random",
    "pydantic",
    "pytest",
    "yaml",
}


def locked_closure(package: str) -> set[str]:
    """``package`` and everything it needs, as uv.lock resolves it (no dev groups)."""
    lock = tomllib.loads((REPOSITORY / "uv.lock").read_text())
    needs = {
        p["name"]: {
            d["name"]
            for d in [*p.get("dependencies", []), *(
                d for extra in p.get("optional-dependencies", {}).values() for d in extra
            )]
        }
        for p in lock["package"]
    }  # fmt: skip
    found, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(needs[name])
    return found


def test_infra_locks_none_of_the_service_libraries() -> None:
    closure = locked_closure("droughtwatch-infra")
    assert {"pulumi", "pulumi-aws", "pulumi-docker", "droughtwatch-contract"} <= closure
    assert closure & SERVICE_ONLY == set()


def test_infra_imports_only_the_contract_pulumi_and_pydantic() -> None:
    imported: dict[str, set[str]] = {}
    for path in INFRA.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                imported.setdefault(name.split(".")[0], set()).add(path.name)
    outside = {
        name: files
        for name, files in imported.items()
        if name not in sys.stdlib_module_names and name not in ALLOWED_IMPORTS
    }
    assert outside == {}
