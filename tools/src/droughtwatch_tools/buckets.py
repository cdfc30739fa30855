"""Where the commands that write into a bucket (`model publish`, `labels upload`) write: the
local runs' buckets (folders under the data folder) or a deployed stack's, through S3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from droughtwatch_contract.outputs import StackOutput
    from droughtwatch_inference.adapters.folder_store import FolderStore
    from droughtwatch_inference.adapters.storage import ObjectStore


def local_store() -> FolderStore:
    """The local runs' buckets, as `droughtwatch local run` reads them."""
    from droughtwatch_inference.adapters.folder_store import FolderStore

    from droughtwatch_tools.local.state import store_root

    return FolderStore(store_root())


def stack_store(
    wanted: Sequence[StackOutput],
    overrides: Mapping[StackOutput, str | None],
    stack: str | None,
    cwd: Path | None,
) -> tuple[ObjectStore, dict[str, Any]]:
    """S3 in the stack's region, and the ``wanted`` outputs of the stack (each one given in
    ``overrides`` wins)."""
    from types import SimpleNamespace

    from droughtwatch_contract.outputs import StackOutput
    from droughtwatch_inference.adapters.storage import ObjectStore

    from droughtwatch_tools.cloud.outputs import resolve_outputs

    outputs = resolve_outputs(wanted, overrides, stack, cwd)
    region = outputs.get(StackOutput.REGION)
    return ObjectStore(SimpleNamespace(aws_endpoint_url=None, aws_region=region)), outputs
