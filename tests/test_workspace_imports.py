"""Each workspace member declares every package it imports, not only what reaches it through
another member: a member installed alone (`uv sync --package <member>`, as the Lambda image and
a deploy-only environment are) then has all it needs. And the boundaries hold: the Lambda
image's code never imports the tools or their CLI libraries, and the contract imports nothing
beyond pydantic. Read from the source with ``ast``, no import run."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = ("packages/preprocess", "packages/contract", "services/inference", "tools", "infra")


def _normalise(distribution: str) -> str:
    """A distribution's name as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


@dataclass(frozen=True)
class Member:
    folder: Path
    label: str  # the folder as the messages name it: "services/inference"
    distribution: str
    packages: frozenset[str]  # the import names under its src/
    declared: frozenset[str]  # normalised names of the distributions it depends on

    @classmethod
    def read(cls, label: str, root: Path = ROOT) -> Member:
        folder = root / label
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        declared = set()
        for requirement in project.get("dependencies", []):
            name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            assert name, f"{folder}/pyproject.toml: cannot read the requirement {requirement!r}"
            declared.add(_normalise(name.group()))
        packages = {p.name for p in (folder / "src").iterdir() if (p / "__init__.py").is_file()}
        return cls(
            folder, label, _normalise(project["name"]), frozenset(packages), frozenset(declared)
        )

    def where(self, module: Path) -> str:
        return f"{self.label}/{module.relative_to(self.folder)}"

    def modules(self) -> list[Path]:
        """Every module of the member: those under src/, and a program at its root (infra's
        Pulumi __main__.py)."""
        return sorted([*(self.folder / "src").rglob("*.py"), *self.folder.glob("*.py")])


def provided_by() -> dict[str, set[str]]:
    """Import name -> the normalised names of the distributions that provide it: the installed
    ones, and the workspace members (installed editable, so the metadata does not map them)."""
    names: dict[str, set[str]] = {}
    for name, distributions in importlib.metadata.packages_distributions().items():
        names.setdefault(name, set()).update(_normalise(d) for d in distributions)
    for folder in MEMBERS:
        member = Member.read(folder)
        for package in member.packages:
            names.setdefault(package, set()).add(member.distribution)
    return names


def imports(module: Path) -> list[tuple[str, int]]:
    """The top-level names ``module`` imports (``a`` of ``import a.b``, ``from a.b import c``),
    with their lines: every absolute import, also those inside functions (the heavy ones are
    there on purpose) and under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.Import):
            found.extend((alias.name.partition(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.partition(".")[0], node.lineno))
    return found


def undeclared(member: Member, providers: dict[str, set[str]]) -> list[str]:
    """Each import of the member that is neither the standard library, nor its own package, nor
    provided by a distribution its pyproject.toml declares, as ``module:line imports name``."""
    problems = []
    for module in member.modules():
        for name, line in imports(module):
            if name in sys.stdlib_module_names or name in member.packages:
                continue
            if providers.get(name, set()) & member.declared:
                continue
            provided = ", ".join(sorted(providers.get(name, ()))) or "nothing installed"
            problems.append(
                f"{member.where(module)}:{line} imports {name}, which no dependency in"
                f" {member.label}/pyproject.toml provides (provided by: {provided})"
            )
    return problems


def imported_names(member: Member) -> dict[str, list[str]]:
    """Each top-level name the member imports, with the places (``module:line``)."""
    names: dict[str, list[str]] = {}
    for module in member.modules():
        for name, line in imports(module):
            names.setdefault(name, []).append(f"{member.where(module)}:{line}")
    return names


@pytest.fixture(scope="module")
def providers() -> dict[str, set[str]]:
    return provided_by()


@pytest.mark.parametrize("folder", MEMBERS)
def test_a_member_declares_every_package_it_imports(folder: str, providers) -> None:
    member = Member.read(folder)
    assert member.modules(), f"no modules found under {folder}/src"
    problems = undeclared(member, providers)
    assert not problems, "undeclared imports:\n" + "\n".join(problems)


def test_the_service_imports_neither_the_tools_nor_their_cli_libraries() -> None:
    names = imported_names(Member.read("services/inference"))
    forbidden = {n: names[n] for n in ("droughtwatch_tools", "typer", "rich") if n in names}
    assert forbidden == {}, f"the Lambda image's code imports {forbidden}"


def test_the_contract_imports_only_pydantic_and_the_standard_library() -> None:
    member = Member.read("packages/contract")
    allowed = {"pydantic", "pydantic_settings", *member.packages}
    names = imported_names(member)
    beyond = {
        n: places
        for n, places in names.items()
        if n not in allowed and n not in sys.stdlib_module_names
    }
    assert beyond == {}, f"the contract imports {beyond}"


def test_the_check_names_an_undeclared_import(tmp_path: Path, providers) -> None:
    """The check itself: a member that imports what it does not declare is named, module and
    import; what it declares, the standard library and its own package pass."""
    package = tmp_path / "planted" / "src" / "planted"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core.py").write_text(
        "import json\nimport numpy as np\nfrom planted import core\nfrom . import core\n\n"
        "def lazy():\n    import boto3\n"
    )
    (tmp_path / "planted" / "pyproject.toml").write_text(
        '[project]\nname = "planted"\ndependencies = ["NumPy>=1.26"]\n'
    )
    (problem,) = undeclared(Member.read("planted", root=tmp_path), providers)
    assert problem == (
        "planted/src/planted/core.py:7 imports boto3, which no dependency in"
        " planted/pyproject.toml provides (provided by: boto3)"
    )
