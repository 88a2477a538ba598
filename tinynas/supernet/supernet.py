"""The weight-sharing supernet: every subnet of a space is a slice of one network.

Each stage's block type (mb, fused or res; `SpaceSpec.stage_blocks`) is fixed
by the space, so every path has the same module names and only shapes vary.

The supernet *is* the largest subnet (`build_model(largest_arch(spec))`), so its
state_dict uses the same names as any subnet's. A subnet's tensor is a slice of
the supernet tensor of the same name, by one rule (`slice_index`):

* elastic kernel: a k x k kernel (depthwise, or the kxk convs of fused and
  res blocks) is the centre k x k crop of the largest kernel (spatial axes of
  a 4-D conv weight are centre-cropped);
* elastic expand: a block with expand ratio e keeps the first `cin * e`
  channels of its expand, depthwise and project tensors (every other axis is a
  prefix);
* elastic depth: a stage of depth d runs its first d blocks and skips the rest.

The forward pass, `get_subnet` and the optimizer's "which elements did this path
touch" mask all use that one rule, so the trained path, the extracted subnet
and the updated weights cannot disagree. Padding, strides and residuals come
from `layer_plan(arch)`, the same plan `build_model` uses, so a supernet path
computes exactly what the standalone subnet computes.
"""

from __future__ import annotations

import json
from typing import Mapping

import torch
import torch.nn.functional as F

from ..space.arch import ConvLayer, LayerPlan, largest_arch, layer_plan, validate_arch
from ..space.spec import SpaceSpec
from ..space.torch_model import ConvBN, MBConvNet, build_model

Index = tuple[slice, ...]
PLAN_CACHE_SIZE = 4096  # plans are ~10 KB; a long run revisits few resolutions x many genomes


def slice_index(full: torch.Size | tuple[int, ...], part: torch.Size | tuple[int, ...]) -> Index:
    """Where a subnet tensor of shape `part` sits in the supernet tensor of shape `full`.

    Axes 2 and 3 of a 4-D tensor are kernel axes and take the centre crop; all
    other axes (output/input channels, BN vectors, the classifier) take a prefix.
    """
    if len(full) != len(part):
        raise ValueError(f"rank mismatch: supernet {tuple(full)} vs subnet {tuple(part)}")
    idx = []
    for axis, (f, p) in enumerate(zip(full, part)):
        if p > f:
            raise ValueError(f"subnet tensor {tuple(part)} does not fit in supernet tensor {tuple(full)}")
        start = (f - p) // 2 if len(full) == 4 and axis >= 2 else 0
        idx.append(slice(start, start + p))
    return tuple(idx)


def _weight_shape(layer: ConvLayer) -> tuple[int, int, int, int]:
    cin = 1 if layer.kind == "dw" else layer.in_channels
    return (layer.out_channels, cin, layer.kernel, layer.kernel)


class Supernet(MBConvNet):
    """The largest subnet of `spec`, run along any subnet's path: `sn(x, arch)`.

    `arch` must belong to `spec` at the resolution of `x` (its "input" equals
    x's C, H, W); `sn(x)` runs the largest path at x's resolution.
    """

    def __init__(self, spec: SpaceSpec) -> None:
        super().__init__(largest_arch(spec))
        self.spec = spec
        self._convbn = {name: m for name, m in self.named_modules() if isinstance(m, ConvBN)}
        self._plans: dict[str, LayerPlan] = {}

    # ------------------------------------------------------------ paths

    def plan(self, arch: Mapping) -> LayerPlan:
        """The layer plan of an arch, cached: a training run revisits the same few shapes."""
        key = json.dumps(arch, sort_keys=True, separators=(",", ":"))
        plan = self._plans.get(key)
        if plan is None:
            self.check_arch(arch)
            plan = layer_plan(arch)
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def check_arch(self, arch: Mapping) -> None:
        """UserError naming the field unless `arch` is a subnet of this space (at its own resolution)."""
        a = validate_arch(arch)
        validate_arch(a, self.spec.with_config(resolution=tuple(a["input"][1:])))

    def largest(self, resolution: tuple[int, int] | None = None) -> dict:
        """The largest arch of this space at a resolution (default: the space's)."""
        spec = self.spec if resolution is None else self.spec.with_config(resolution=tuple(resolution))
        return largest_arch(spec)

    def path_indices(self, arch: Mapping) -> dict[str, Index]:
        """Parameter name -> the slice a path uses; parameters it skips are absent.

        The optimizer updates exactly these elements, so weights of an unsampled
        path do not move (see tinynas.train.optim.MaskedSGD).
        """
        plan = self.plan(arch)
        out: dict[str, Index] = {}
        for layer in plan.convs():
            m = self._convbn[layer.name]
            out[f"{layer.name}.conv.weight"] = slice_index(m.conv.weight.shape, _weight_shape(layer))
            c = (slice(0, layer.out_channels),)
            out[f"{layer.name}.bn.weight"] = out[f"{layer.name}.bn.bias"] = c
        w = self.classifier.weight
        out["classifier.weight"] = slice_index(w.shape, (plan.num_classes, plan.feature_channels))
        out["classifier.bias"] = (slice(0, plan.num_classes),)
        return out

    # ------------------------------------------------------------ forward

    def _conv_bn(self, layer: ConvLayer, x: torch.Tensor) -> torch.Tensor:
        m = self._convbn[layer.name]
        w = m.conv.weight[slice_index(m.conv.weight.shape, _weight_shape(layer))]
        groups = layer.in_channels if layer.kind == "dw" else 1
        if layer.symmetric:
            l_, _, t, _ = layer.pad
            y = F.conv2d(x, w, None, layer.stride, (t, l_), 1, groups)
        else:
            y = F.conv2d(F.pad(x, layer.pad), w, None, layer.stride, 0, 1, groups)
        bn, c = m.bn, layer.out_channels
        y = F.batch_norm(y, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                         self.training, bn.momentum if bn.momentum is not None else 0.0, bn.eps)
        return F.hardtanh(y, 0.0, 6.0) if layer.relu6 else y

    def forward(self, x: torch.Tensor, arch: Mapping | None = None) -> torch.Tensor:  # type: ignore[override]
        if arch is None:
            arch = self.largest(tuple(x.shape[2:]))
        plan = self.plan(arch)
        if tuple(x.shape[1:]) != plan.input:
            raise ValueError(f"input {tuple(x.shape[1:])} does not match arch input {plan.input}")
        x = self._conv_bn(plan.stem, x)
        for block in plan.blocks:
            y = x
            for layer in block.convs:
                y = self._conv_bn(layer, y)
            if block.shortcut is not None:
                x = self._conv_bn(block.shortcut, x) + y
            else:
                x = x + y if block.residual else y
        w = self.classifier.weight[:plan.num_classes, :plan.feature_channels]
        return F.linear(x.mean(dim=(2, 3)), w, self.classifier.bias[:plan.num_classes])

    # ------------------------------------------------------------ extraction

    def _sliced(self, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        full = self.state_dict()
        out = {}
        for name, t in like.items():
            src = full[name]
            out[name] = src[slice_index(src.shape, t.shape)].detach().clone()
        return out

    def get_subnet(self, arch: Mapping) -> MBConvNet:
        """A standalone build_model(arch) holding this supernet's weights for that path."""
        self.plan(arch)  # checks that the arch belongs to this space
        model = build_model(validate_arch(arch))
        model.load_state_dict(self._sliced(model.state_dict()), strict=True)
        p = next(self.parameters())
        return model.to(device=p.device, dtype=p.dtype)
