"""The service image: an ECR repository (scanned on push, recent images kept) and the image built
from services/inference/Dockerfile for linux/amd64 and pushed with ECR credentials. The
functions use `uri` (repository@sha256:digest), so a code change rolls out on `pulumi up`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer

PLATFORM = "linux/amd64"  # the functions' architecture is x86_64
TAG = "latest"


@dataclass(frozen=True)
class ImageArgs:
    namer: Namer
    # The build context is the repository root: the image installs workspace members.
    context: Path
    dockerfile: Path
    keep_count: int
    # When true (dev), `pulumi destroy` deletes the repository with its images.
    force_delete: bool


def lifecycle_policy(keep_count: int) -> dict:
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the {keep_count} most recent images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_count,
                },
                "action": {"type": "expire"},
            }
        ]
    }


class ServiceImage(pulumi.ComponentResource):
    repository_url: pulumi.Output[str]
    uri: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:ServiceImage", name, None, opts)
        child = ChildNames(self, name)
        repository = aws.ecr.Repository(
            child.name("repository"),
            name=args.namer.name("inference"),
            image_scanning_configuration={"scan_on_push": True},
            image_tag_mutability="MUTABLE",  # TAG moves; the functions pin the digest
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=args.force_delete,
            opts=child.opts("repository"),
        )
        aws.ecr.LifecyclePolicy(
            child.name("keep-recent"),
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(args.keep_count)),
            opts=child.opts("keep-recent"),
        )
        credentials = aws.ecr.get_authorization_token_output(registry_id=repository.registry_id)
        image = docker.Image(
            child.name(),
            build=docker.DockerBuildArgs(
                # Relative to the program's directory, so that the state does not depend on
                # where the repository is checked out.
                context=os.path.relpath(args.context),
                dockerfile=os.path.relpath(args.dockerfile),
                platform=PLATFORM,
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
            ),
            image_name=repository.repository_url.apply(lambda url: f"{url}:{TAG}"),
            registry=docker.RegistryArgs(
                server=repository.repository_url,
                username=credentials.user_name,
                password=pulumi.Output.secret(credentials.password),
            ),
            opts=child.opts(),
        )
        self.repository_url = repository.repository_url
        # repository@sha256:...: unique per pushed content.
        self.uri = image.repo_digest
        self.register_outputs({"repository_url": self.repository_url, "uri": self.uri})
