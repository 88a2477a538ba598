"""The PyTorch network of an arch: what gets trained and fine-tuned.

Module paths are the contract with the supernet and with the Keras mirror:

    stem.{conv,bn}
    first_block.{dw,project}.{conv,bn}              (absent when the arch has none)
    stages.<i>.blocks.<j>.{expand,dw,project}.{conv,bn}     "mb" blocks
    stages.<i>.blocks.<j>.{expand,project}.{conv,bn}        "fused"
    stages.<i>.blocks.<j>.{conv1,conv2[,shortcut]}.{conv,bn} "res"
    stages.<i>.blocks.<j>.{dw,project}.{conv,bn}            "ds"
    classifier

A supernet's `get_subnet(arch)` produces exactly this state_dict by slicing its
largest tensors: a kernel k is the centre k x k crop of the 7x7 depthwise
weight, an expand ratio keeps the first `in * expand` channels of the expand,
dw and project tensors, and a shorter stage drops its trailing blocks.

Padding copies TF 'same' so the Keras mirror and the int8 export match this
model exactly and the converter needs no PAD op: where 'same' is asymmetric
(stride 2 on an even size) a `ZeroPad2d` precedes a padding-0 conv; elsewhere
the conv pads symmetrically itself. Padding depends on the input size, which the
arch fixes.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .arch import BlockLayers, ConvLayer, layer_plan, validate_arch

BN_EPS = 1e-5


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU6); BN folds into the conv bias on export."""

    def __init__(self, layer: ConvLayer) -> None:
        super().__init__()
        l, r, t, b = layer.pad
        sym = layer.symmetric
        self.pad = nn.Identity() if sym else nn.ZeroPad2d(layer.pad)
        groups = layer.in_channels if layer.kind == "dw" else 1
        self.conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                              padding=(t, l) if sym else 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(layer.out_channels, eps=BN_EPS)
        self.act = nn.ReLU6() if layer.relu6 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class MBBlock(nn.Module):
    """Any block type: its main path of ConvBNs in order, plus an identity or projection shortcut.

    The name stays MBBlock (the inverted residual is the space's block); the
    layer plan says which convs a type has (see `arch` module doc).
    """

    def __init__(self, block: BlockLayers) -> None:
        super().__init__()
        for conv in block.convs:  # registers expand (if any), dw, project under those names
            self.add_module(conv.name.rsplit(".", 1)[1], ConvBN(conv))
        self._main = [conv.name.rsplit(".", 1)[1] for conv in block.convs]
        if block.shortcut is not None:
            self.shortcut = ConvBN(block.shortcut)
        self.residual = block.residual

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN that ends the main path (zeroed so a residual block starts as its shortcut)."""
        return getattr(self, self._main[-1]).bn

    def ends_in_relu(self) -> bool:
        """A main path ending in ReLU6 ("ds") must not be zero-initialised: ReLU6 has no
        gradient at 0, so a zeroed BN scale would never move and the block stay the identity."""
        return isinstance(getattr(self, self._main[-1]).act, nn.ReLU6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for name in self._main:
            y = getattr(self, name)(y)
        if self.residual:
            return x + y
        return self.shortcut(x) + y if hasattr(self, "shortcut") else y


class Stage(nn.Module):
    def __init__(self, blocks: list[BlockLayers]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBBlock(b) for b in blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


class MBConvNet(nn.Module):
    """stem -> first_block -> stages -> global average pool -> linear logits (no softmax)."""

    def __init__(self, arch: Mapping) -> None:
        super().__init__()
        self.arch = validate_arch(arch)
        plan = layer_plan(self.arch)
        self.stem = ConvBN(plan.stem)
        self.first_block = nn.Identity()
        per_stage: list[list[BlockLayers]] = [[] for _ in self.arch["stages"]]
        for b in plan.blocks:
            if b.name == "first_block":
                self.first_block = MBBlock(b)
            else:
                per_stage[int(b.name.split(".")[1])].append(b)
        self.stages = nn.ModuleList(Stage(bs) for bs in per_stage)
        self.classifier = nn.Linear(plan.feature_channels, plan.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for s in self.stages:
            x = s(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def zero_init_residual(model: MBConvNet) -> int:
    """Zero the last BN scale of every residual block, so each block starts as the identity.

    Called before training from random weights (standalone and supernet). A
    deep residual net then starts as a shallow one, and in a supernet the
    output scale no longer depends on which depth a step samples; without it
    SPOS loss climbs above chance in the first epoch (see bench_recipe.py).
    Blocks whose main path ends in ReLU6 ("ds") are left alone (see
    MBBlock.ends_in_relu). Returns how many blocks were zeroed.
    """
    n = 0
    for m in model.modules():
        if isinstance(m, MBBlock) and (m.residual or hasattr(m, "shortcut")) and not m.ends_in_relu():
            nn.init.zeros_(m.last_bn().weight)
            n += 1
    return n


def build_model(arch: Mapping) -> MBConvNet:
    """A plain nn.Module for an arch; its input is NCHW of arch["input"]."""
    return MBConvNet(arch)
