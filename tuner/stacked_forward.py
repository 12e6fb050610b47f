"""The forward pass of K stacked members written out layer by layer, for the layers of the built-in models.

``torch.func.vmap`` over ``functional_call`` runs any architecture, but on a CPU it runs the digits CNN slowly: it
lays the K members' channels side by side as ``(B, K·C, H, W)`` in the default (channels-first) memory format, in
which oneDNN's grouped convolution takes 1.8× (forward and backward; 2.7× forward alone) and the adaptive average
pooling 10× the time they take in channels-last memory (one thread, K = 16, batch 32); and an evaluation batch
run for all members at once outgrows the caches. ``StackedForward`` runs the same layers explicitly:

- image layers (``Conv2d``, ``ReLU``, ``AdaptiveAvgPool2d``) on the members' channels side by side, ``(B, K·C,
  H, W)`` in channels-last memory (the layout oneDNN's grouped convolution is fast in): member k's channels
  are ``k·C … (k+1)·C - 1``, and a convolution with ``groups=K`` keeps each member on its own channels (on
  inputs every member shares, such as evaluation data, the first convolution is a plain one with the K
  members' filters stacked);
- ``Flatten`` turns that into member-major ``(K, B, C·H·W)``, in the order a member's own ``Flatten`` gives;
- ``Linear`` (the trunk's and every head) is one batched matmul ``baddbmm`` over the K members.

``MemberStack`` runs evaluation data through it in slices (``tuner.stacked.FORWARD_ROWS``). Each member's output
is what its own model computes, up to the rounding of other float32 kernels. A model with any other layer, or a
``MultiTaskModel`` subclass (which may rewire ``features``/``head_input``), gets no plan: ``MemberStack`` then
runs it under ``vmap``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tuner.model import MultiTaskModel

Params = dict[str, torch.Tensor]
#: Layers a plan runs, and which of them work on images (the rest on member-major tensors).
_IMAGE_LAYERS = (nn.Conv2d, nn.AdaptiveAvgPool2d)
_PLAIN_LAYERS = (nn.ReLU, nn.Flatten, nn.Linear)


class _Grouped:
    """Activations of K members as images side by side: ``x`` is ``(B, K·C, H, W)``, channels-last."""

    def __init__(self, x: torch.Tensor, k: int):
        self.x, self.k = x, k

    def member_major(self) -> torch.Tensor:
        """``(K, B, C, H, W)``: member k's images.

        Taken apart along the channels-last memory (``(B, H, W, K·C)``), so that the gradient flowing back
        arrives channels-last too: the pooling's backward kernel is many times slower on any other layout.
        """
        b, kc, h, w = self.x.shape
        return self.x.permute(0, 2, 3, 1).reshape(b, h, w, self.k, kc // self.k).permute(3, 0, 4, 1, 2)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` ``(N, C, H, W)`` in channels-last memory whose strides say so even where C = 1.

    (``x.contiguous(memory_format=torch.channels_last)`` keeps a contiguous one-channel tensor as it is, and
    oneDNN then reads its strides as channels-first and runs every convolution after it channels-first.)
    """
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


def _grouped(x: torch.Tensor) -> _Grouped:
    """Member-major images ``(K, B, C, H, W)`` as ``_Grouped`` (copied into channels-last memory)."""
    k, b, c, h, w = x.shape
    return _Grouped(_channels_last(x.transpose(0, 1).reshape(b, k * c, h, w)), k)


class StackedForward:
    """The explicit batched forward pass of one ``MultiTaskModel`` architecture; built by ``plan``."""

    def __init__(self, layers: list[tuple[str, nn.Module]], heads: list[str]):
        self.layers, self.heads = layers, heads
        #: Whether it runs image layers, whose activations (K·C channels of H × W) can outgrow the caches.
        self.images = any(isinstance(layer, _IMAGE_LAYERS) for _, layer in layers)

    def __call__(self, params: Params, x: torch.Tensor, k: int, shared: bool) -> dict[str, torch.Tensor]:
        """Every head's output per member, ``(K, B, out)``.

        Args:
            params: the stacked parameters (``MemberStack.params``), each ``(K, ...)``.
            x: member k's inputs at ``x[k]`` (``(K, B, ...)``), or with ``shared`` one batch ``(B, ...)`` for all.
            k: the number of members.
        """
        act: torch.Tensor | _Grouped | None = None  # None: still the shared input
        fresh = False  # whether ``act`` is the output of a convolution or a matmul of this call
        for name, layer in self.layers:
            if isinstance(layer, nn.Conv2d):
                act = self._conv(params, name, layer, x if act is None else act, k, shared=act is None and shared)
                fresh = True
                continue
            if act is None:
                act = x.expand(k, *x.shape) if shared else x
            if isinstance(layer, nn.ReLU):
                act = _Grouped(_relu(act.x, fresh), k) if isinstance(act, _Grouped) else _relu(act, fresh)
            elif isinstance(layer, nn.AdaptiveAvgPool2d):
                act = act if isinstance(act, _Grouped) else _grouped(act)
                act = _Grouped(F.adaptive_avg_pool2d(act.x, layer.output_size), k)
            elif isinstance(layer, nn.Flatten):
                act = (act.member_major() if isinstance(act, _Grouped) else act).flatten(2)
            else:  # Linear
                act = _linear(params, name, act.member_major() if isinstance(act, _Grouped) else act)
            fresh = isinstance(layer, nn.Linear)
        if act is None:
            act = x.expand(k, *x.shape) if shared else x
        features = act.member_major() if isinstance(act, _Grouped) else act
        return {head: _linear(params, f"heads.{head}", features) for head in self.heads}

    @staticmethod
    def _conv(params: Params, name: str, conv: nn.Conv2d, act: torch.Tensor | _Grouped, k: int,
              shared: bool) -> _Grouped:
        weight = params[f"{name}.weight"]
        bias = params.get(f"{name}.bias")
        filters = weight.reshape(k * weight.shape[1], *weight.shape[2:])
        flat_bias = bias.reshape(-1) if bias is not None else None
        if shared:  # one batch for every member: a plain convolution with all members' filters
            assert isinstance(act, torch.Tensor)
            x = _channels_last(act)
            return _Grouped(F.conv2d(x, filters, flat_bias, conv.stride, conv.padding, conv.dilation), k)
        grouped = act if isinstance(act, _Grouped) else _grouped(act)
        return _Grouped(F.conv2d(grouped.x, filters, flat_bias, conv.stride, conv.padding, conv.dilation, k), k)


def _relu(x: torch.Tensor, in_place: bool) -> torch.Tensor:
    """ReLU; in place on the fresh output of a convolution or a matmul (whose backward does not read its output),
    which spares one pass over the largest activations: a fifth of a CNN step at K = 16."""
    return torch.relu_(x) if in_place else torch.relu(x)


def _linear(params: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """``Linear`` of each member on its own rows: ``x`` is ``(K, ..., in)``, the result ``(K, ..., out)``."""
    weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    out = torch.bmm(rows, weight.transpose(1, 2)) if bias is None else \
        torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))
    return out.reshape(*x.shape[:-1], weight.shape[1])


def plan(model: nn.Module) -> StackedForward | None:
    """A ``StackedForward`` for ``model``'s architecture, or None when it has a layer the plan does not run.

    Runs: a plain ``MultiTaskModel`` whose trunk is an ``nn.Sequential`` of ``Conv2d`` (zero padding, one group),
    ``ReLU``, ``AdaptiveAvgPool2d``, ``Flatten`` (of everything but the batch dimension) and ``Linear``, image
    layers first, and ``Linear`` heads; that covers ``tuner.model.mlp_trunk`` and ``cnn_trunk``.
    """
    if type(model) is not MultiTaskModel or type(model.trunk) is not nn.Sequential:
        return None
    if any(type(head) is not nn.Linear for head in model.heads.values()):
        return None
    layers: list[tuple[str, nn.Module]] = []
    flat = False  # past a Flatten or a Linear: no image layer may follow
    for name, layer in model.trunk.named_children():
        kind = type(layer)
        if kind not in (*_IMAGE_LAYERS, *_PLAIN_LAYERS) or (flat and kind in _IMAGE_LAYERS):
            return None
        if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros"
                                             or isinstance(layer.padding, str)):
            return None
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            return None
        if isinstance(layer, nn.ReLU) and layer.inplace:
            return None
        flat = flat or kind in (nn.Flatten, nn.Linear)
        layers.append((f"trunk.{name}", layer))
    return StackedForward(layers, list(model.heads))
