"""A torch.export program (``model.pt2``) under torch. Imports torch: only models in that
format pay for it."""

from __future__ import annotations

import ctypes
import functools
import zipfile
from pathlib import Path

import numpy as np
import torch

from droughtwatch_inference.model.fit import choose_input
from droughtwatch_inference.model.layout import to_layout
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Signature

# Images per forward pass of a torch program: at 64 images the largest activation of
# BaselineCNN (the first block's output, 64 x 32 x 33 x 33 float32 = 8.9 MB) stays in cache and
# well under glibc's largest mmap threshold (32 MiB, see _keep_freed_memory); larger passes ran
# slower (the README's benchmarks).
TORCH_SLICE = 64
_M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3


@functools.cache
def _keep_freed_memory() -> bool:
    """Make glibc keep freed activation memory for the next forward pass.

    torch allocates each activation with malloc; by default glibc serves blocks of several MB
    with mmap and gives freed memory back to the OS, so every forward pass page-faults its
    activations in again (a large share of inference time: the README's benchmarks). A fixed mmap
    threshold at its maximum (32 MiB) and a high trim threshold keep that memory in the heap.
    Once per process; does nothing where libc has no mallopt (not glibc).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trimmed = mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    mapped = mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(trimmed and mapped)


def _dims(value: object) -> tuple[int | None, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in shape)  # SymInt: dynamic


def program_signature(program: torch.export.ExportedProgram, wanted: str | None) -> Signature:
    """The program's user input (``wanted`` or its only one) and output shapes."""
    name = choose_input(list(program.graph_signature.user_inputs), [], wanted)
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    output = next(n for n in program.graph.nodes if n.op == "output")
    first = output.args[0][0] if output.args and output.args[0] else None
    return Signature(
        input_name=name,
        input_shape=_dims(nodes[name].meta.get("val")) if name in nodes else None,
        output_shape=_dims(first.meta.get("val")) if first is not None else None,
    )


class TorchExportPredictor:
    """A torch.export program (``torch.export.load(path).module()``) on ``threads`` threads.

    An NCHW program runs in channels_last memory format (oneDNN's convolutions are much faster
    with it on CPU than with NCHW); an NHWC program gets its channels-last input directly.
    Either way each batch is copied once. Runs in slices of TORCH_SLICE images, with glibc
    told to keep freed memory.
    """

    def __init__(
        self, path: Path, manifest: ModelManifest, *, threads: int, channels_last: bool = True
    ) -> None:
        # torch.export.load logs a traceback before raising on a cut-off archive; a .pt2 is a
        # zip whose directory sits at its end, so a truncated file fails this check first.
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{Path(path).name} is not a complete .pt2 archive (no zip directory at its "
                "end): the file is truncated or not a torch.export program"
            )
        program = torch.export.load(str(path))
        self.signature = program_signature(program, manifest.input_name)
        self.module = program.module()
        self.layout = manifest.layout
        self.channels_last = channels_last and manifest.layout == "NCHW"
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.outputs = manifest.outputs
        self.threads = threads
        _keep_freed_memory()

    def predict(self, images: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.threads)
        images = to_layout(images, self.layout)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), TORCH_SLICE):
                x = torch.from_numpy(images[start : start + TORCH_SLICE])
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out = self.module(x)
                if self.outputs == "logits":
                    out = torch.softmax(out, dim=1)
                parts.append(out.float().numpy())
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
