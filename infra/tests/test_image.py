"""The image component (ECR repository and the image built from the service's Dockerfile) and the
Dockerfile itself: its default command is a stage handler, the members are installed as
packages, torch comes from the CPU index. (That every handler imports is the service's test,
test_cold_start.py: these tests run without the service installed.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from droughtwatch_contract.stages import STAGES
from droughtwatch_infra.image import ImageArgs, ServiceImage
from droughtwatch_infra.naming import Namer

REPOSITORY = Path(__file__).resolve().parents[2]
DOCKERFILE = REPOSITORY / "services" / "inference" / "Dockerfile"


def build(keep: int = 10) -> Any:
    def program() -> Any:
        image = ServiceImage(
            "image",
            ImageArgs(Namer("droughtwatch", "dev"), REPOSITORY, DOCKERFILE, keep, False),
        )
        return {"uri": image.uri, "repository_url": image.repository_url}

    return program


def test_repository_scans_on_push_and_keeps_recent_images(infra: Any) -> None:
    stack = infra.run(build(keep=5))
    repository = stack.one("aws:ecr/repository:Repository").inputs
    assert repository["name"] == "droughtwatch-dev-inference"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    lifecycle = stack.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    (rule,) = lifecycle.json("policy")["rules"]
    assert rule["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": 5,
    }
    assert rule["action"] == {"type": "expire"}


def test_image_is_built_for_amd64_from_the_dockerfile_and_pushed_with_ecr_credentials(
    infra: Any,
) -> None:
    stack = infra.run(build())
    image = stack.one("docker:index/image:Image").inputs
    url = f"{infra.ACCOUNT}.dkr.ecr.{infra.REGION}.amazonaws.com/droughtwatch-dev-inference"
    assert Path(image["build"]["context"]).resolve() == REPOSITORY
    assert Path(image["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert not Path(image["build"]["context"]).is_absolute()
    assert image["build"]["platform"] == "linux/amd64"
    assert image["imageName"] == f"{url}:latest"
    assert image["registry"] == {"server": url, "username": "AWS", "password": "mock-ecr-password"}
    assert "registry" in stack.one("docker:index/image:Image").secrets
    assert image.get("skipPush") in (None, False)
    assert any(
        token == "aws:ecr/getAuthorizationToken:getAuthorizationToken" for token, _ in stack.calls
    )
    # The functions get repository@digest: a new push is a new URI, so `pulumi up` rolls out.
    assert re.fullmatch(rf"{re.escape(url)}@sha256:[0-9a-f]{{64}}", stack.value["uri"])


# -- the Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> str:
    # Joined continuation lines, comments dropped.
    text = DOCKERFILE.read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def dockerfile_handlers() -> list[str]:
    found = []
    for line in dockerfile().splitlines():
        if line.startswith("CMD "):
            found.extend(json.loads(line.removeprefix("CMD ")))
    return found


def test_dockerfile_default_command_is_a_stage_handler() -> None:
    assert dockerfile_handlers() == [STAGES["processing"].handler]


def test_dockerfile_builds_on_the_lambda_base_for_the_functions_python() -> None:
    bases = re.findall(r"^FROM (\S+)", dockerfile(), flags=re.MULTILINE)
    assert bases[-1] == "public.ecr.aws/lambda/python:${PYTHON_VERSION}"
    assert re.search(r"^ARG PYTHON_VERSION=3\.1[12]$", dockerfile(), flags=re.MULTILINE)


def test_dockerfile_installs_locked_dependencies_then_members_as_packages() -> None:
    text = dockerfile()
    export = re.search(r"uv export ([^&]+)", text)
    assert export is not None
    for flag in ("--frozen", "--no-emit-workspace", "--no-dev", "--package droughtwatch-inference"):
        assert flag in export[1]
    assert "--index-url https://download.pytorch.org/whl/cpu --requirements torch.txt" in text
    # Every workspace member the service depends on, and the service, installed without deps.
    pyproject = tomllib.loads((REPOSITORY / "services/inference/pyproject.toml").read_text())
    members = [
        name
        for name, source in pyproject["tool"]["uv"]["sources"].items()
        if source.get("workspace")
    ]
    install = re.search(r"uv pip install [^\n]*--no-deps --target /opt/app ([^\n]+)", text)
    assert install is not None
    installed = install[1].split()
    for member in members:
        path = f"./packages/{member.removeprefix('droughtwatch-')}"
        assert path in installed and (REPOSITORY / path / "pyproject.toml").exists()
    assert "./services/inference" in installed


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = (REPOSITORY / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile(), flags=re.MULTILINE):
        assert any(source == k or source.startswith(k + "/") for k in kept), source
