"""The baseline network for 65 x 65 droughtwatch images, and its export to the two artifact
formats of the model contract (torch.export ``.pt2`` and ONNX). Imports torch. Training and
the benchmark use it; the Inference handler loads the exported files without this class."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from droughtwatch_inference.model.layout import input_shape
from droughtwatch_inference.model.manifest import Layout
from droughtwatch_preprocess import CLASS_NAMES, IMAGE_SIZE
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

WIDTHS = (32, 64, 128, 256)
# Largest batch the exported programs accept (the batch dimension is dynamic up to this).
MAX_BATCH = 8192
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class ConvBlock(nn.Sequential):
    """3x3 convolution (stride 2 halves the image), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class BaselineCNN(nn.Module):
    """Four stride-2 conv-bn-relu blocks (32, 64, 128, 256 channels: 65 -> 33 -> 17 -> 9 -> 5
    pixels), global average pooling and a linear layer to ``num_classes`` logits.

    390,212 parameters with 4 input channels and 4 classes (389,732 once batch norm is folded
    into the convolutions for export). Built for CPU throughput: every convolution downsamples,
    so a forward pass costs about 20 M multiply-adds per image.
    """

    def __init__(self, in_channels: int = 4, num_classes: int = len(CLASS_NAMES)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        blocks = []
        channels = in_channels
        for width in WIDTHS:
            blocks.append(ConvBlock(channels, width))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images).mean(dim=(2, 3))
        return self.classifier(self.dropout(features))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def for_inference(model: BaselineCNN) -> BaselineCNN:
    """A copy in eval mode with each batch norm folded into the convolution before it (the same
    function, one layer less per block; onnxruntime would fold it anyway)."""
    # contiguous weights: torch.export.save cannot package channels_last ones cleanly
    model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    for block in model.features:
        if isinstance(block, ConvBlock) and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()
    return model


def _example(model: BaselineCNN, layout: Layout = "NCHW") -> torch.Tensor:
    # A batch of 2: a batch of 1 would let the exporter specialise the batch dimension.
    shape = input_shape(layout, model.in_channels, IMAGE_SIZE)
    return torch.zeros(2, *shape[1:])


def _dynamic_batch() -> dict[str, dict[int, torch.export.Dim]]:
    return {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}


class _Named(nn.Module):
    """Gives the exported program's input the contract's name (``images``); with layout NHWC
    it takes channels-last images (as Keras models do) and with ``probabilities`` it ends in a
    softmax (as Keras classifiers do)."""

    def __init__(
        self, model: nn.Module, layout: Layout = "NCHW", probabilities: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.channels_last_input = layout == "NHWC"
        self.probabilities = probabilities

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last_input:
            images = images.permute(0, 3, 1, 2)
        out = self.model(images)
        return torch.softmax(out, dim=1) if self.probabilities else out


def export_program(model: BaselineCNN, *, layout: Layout = "NCHW") -> torch.export.ExportedProgram:
    """The torch.export program of ``model`` for inference (batch norm folded, batch dimension
    dynamic), taking images in ``layout``."""
    module = _Named(for_inference(model), layout).eval()
    with torch.no_grad():
        return torch.export.export(
            module, (_example(model, layout),), dynamic_shapes=_dynamic_batch()
        )


def export_torch(
    model: BaselineCNN, path: str | os.PathLike[str], *, layout: Layout = "NCHW"
) -> Path:
    """Write ``model`` as a torch.export program (``model.pt2``); load it with
    ``torch.export.load(path).module()``. The file is tied to the torch version (pinned)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(export_program(model, layout=layout), path)
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the ONNX exporter's own noise, by name: torch 2.13's exporter trips over a
    deprecation inside torch (FutureWarning "isinstance(treespec, LeafSpec) is deprecated") and
    logs a warning line per torchvision operator it cannot register (torchvision is not used).
    The exported model is checked by comparing its outputs, not by these messages."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning
            )
            yield
    finally:
        registration.setLevel(level)


def export_onnx(
    model: BaselineCNN,
    path: str | os.PathLike[str],
    *,
    layout: Layout = "NCHW",
    probabilities: bool = False,
) -> Path:
    """Write ``model`` as one self-contained ONNX file (input ``images`` N x C x 65 x 65, output
    ``logits`` N x K, batch dimension dynamic), exported with torch's dynamo-based exporter.

    ``layout="NHWC", probabilities=True`` gives what tf2onnx makes of a Keras classifier:
    input N x 65 x 65 x C, output ``probabilities`` (a softmax at the end)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _Named(for_inference(model), layout, probabilities).eval()
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            (_example(model, layout),),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=["probabilities" if probabilities else OUTPUT_NAME],
            dynamic_shapes=_dynamic_batch(),
            optimize=True,
            verbose=False,
        )
        program.save(str(path), external_data=False)
    return path
