"""The forward pass of K stacked members written out layer by layer, for the layers of the built-in models.

``torch.func.vmap`` over ``functional_call`` runs any architecture, but on a CPU it runs the digits CNN slowly: it
lays the K members' channels side by side as ``(B, K·C, H, W)`` in the default (channels-first) memory format, in
which oneDNN's grouped convolution takes 1.8× (forward and backward; 2.7× forward alone) and the adaptive average
pooling 10× the time they take in channels-last memory (one thread, K = 16, batch 32); and an evaluation batch
run for all members at once outgrows the caches. ``StackedForward`` runs the same layers explicitly:

- image layers (``Conv2d``, ``ReLU``, ``AdaptiveAvgPool2d``) on the members' channels side by side, ``(B, K·C,
  H, W)`` in channels-last memory (the layout oneDNN's grouped convolution is fast in): member k's channels
  are ``k·C … (k+1)·C - 1``, and a convolution with ``groups=K`` keeps each member on its own channels. On
  inputs every member shares (evaluation data) the first convolution is one matmul of the image patches with
  the K members' filters stacked (``_shared_conv``);
- on a CPU, a ``Conv2d`` followed by ``ReLU`` (and by an ``AdaptiveAvgPool2d`` whose windows tile the image) is
  one ``_ConvReLU``, whose backward pass is written out (ReLU and pooling in one pass, the bias gradient as a
  sum); ``FUSED_CONV`` turns it off, and other devices run the layers one by one;
- ``Flatten`` turns that into member-major ``(K, B, C·H·W)``, in the order a member's own ``Flatten`` gives;
- ``Linear`` (the trunk's, and all heads at once with their weights side by side) is one batched matmul
  ``baddbmm`` over the K members, with a backward that hands back contiguous gradients (``_StackedLinear``).

Measured on the digits CNN at K = 16 (one thread, this project's 2-core AMD EPYC; interleaved A/B in one process):
oneDNN's convolutions take ~10 ms of a ~17 ms training step (the forward pass at the core's peak, ~55 GMAC/s,
the backward at ~35) and ~28 ms of a ~50 ms evaluation of 300 images, so what is left to trim is the work
around them: ``_ConvReLU`` saves ~5 % of a step, ``_shared_conv`` ~6 % of an evaluation, ``_StackedLinear`` the
optimiser's copy of a transposed gradient. Measured and dropped: the convolutions as ``unfold`` + batched matmul
(2× slower: MKL's ``bmm`` runs at half oneDNN's rate here, and the patches cost copies), and the trunk run in
groups of 2–8 members to keep its activations in the caches (no faster than one group of 16).

``MemberStack`` runs evaluation data through it in slices (``tuner.engine.population.stack.FORWARD_ROWS``). Each
member's output
is what its own model computes, up to the rounding of other float32 kernels. A model with any other layer, or a
``MultiTaskModel`` subclass (which may rewire ``features``/``head_input``), gets no plan: ``MemberStack`` then
runs it under ``vmap``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tuner.engine.model import MultiTaskModel

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
        return self._heads(params, self._trunk(params, x, k, shared))

    def _trunk(self, params: Params, x: torch.Tensor, k: int, shared: bool) -> torch.Tensor:
        """The trunk's features per member, ``(K, B, features)``."""
        act: torch.Tensor | _Grouped | None = None  # None: still the shared input
        fresh = False  # whether ``act`` is the output of a convolution or a matmul of this call
        fuse = _fused_conv(x)
        i = 0
        while i < len(self.layers):
            name, layer = self.layers[i]
            i += 1
            if isinstance(layer, nn.Conv2d):
                source = x if act is None else act
                first_shared = act is None and shared
                if fuse and not first_shared and i < len(self.layers) and isinstance(self.layers[i][1], nn.ReLU):
                    pool = self._fusable_pool(i + 1, source, layer)
                    act = self._conv_relu(params, name, layer, source, k, pool)
                    i += 2 if pool is not None else 1
                    fresh = False
                    continue
                act = self._conv(params, name, layer, source, k, shared=first_shared)
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
        return act.member_major() if isinstance(act, _Grouped) else act

    def _fusable_pool(self, at: int, source: torch.Tensor | _Grouped, conv: nn.Conv2d) -> tuple[int, int] | None:
        """The window of the ``AdaptiveAvgPool2d`` at layer ``at``, if there is one there and its windows tile the
        convolution's output exactly (then it is a plain average pooling), else None."""
        if at >= len(self.layers) or not isinstance(self.layers[at][1], nn.AdaptiveAvgPool2d):
            return None
        images = source.x if isinstance(source, _Grouped) else source
        h, w = _conv_output_size(images.shape[-2:], conv)
        pool = self.layers[at][1]
        assert isinstance(pool, nn.AdaptiveAvgPool2d)
        size = pool.output_size
        oh, ow = (size, size) if isinstance(size, int) or size is None else size
        oh, ow = oh or h, ow or w  # None: the input's size
        return (h // oh, w // ow) if h % oh == 0 and w % ow == 0 else None

    def _heads(self, params: Params, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's output: one batched matmul with the heads' weights side by side, split by head (one
        kernel and one autograd node instead of one per head)."""
        names = [f"heads.{head}" for head in self.heads]
        biases = [params.get(f"{name}.bias") for name in names]
        if len(names) == 1 or any(b is None for b in biases):
            return {head: _linear(params, name, features) for head, name in zip(self.heads, names, strict=True)}
        weights = [params[f"{name}.weight"] for name in names]
        fused = {"w.weight": torch.cat(weights, dim=1), "w.bias": torch.cat(biases, dim=1)}  # type: ignore[arg-type]
        out = _linear(fused, "w", features)
        return dict(zip(self.heads, out.split([w.shape[1] for w in weights], dim=-1), strict=True))

    @staticmethod
    def _conv(params: Params, name: str, conv: nn.Conv2d, act: torch.Tensor | _Grouped, k: int,
              shared: bool) -> _Grouped:
        weight = params[f"{name}.weight"]
        bias = params.get(f"{name}.bias")
        filters = weight.reshape(k * weight.shape[1], *weight.shape[2:])
        flat_bias = bias.reshape(-1) if bias is not None else None
        if shared:  # one batch for every member: a plain convolution with all members' filters
            assert isinstance(act, torch.Tensor)
            return _Grouped(_shared_conv(act, filters, flat_bias, conv), k)
        grouped = act if isinstance(act, _Grouped) else _grouped(act)
        return _Grouped(F.conv2d(grouped.x, filters, flat_bias, conv.stride, conv.padding, conv.dilation, k), k)

    @staticmethod
    def _conv_relu(params: Params, name: str, conv: nn.Conv2d, act: torch.Tensor | _Grouped, k: int,
                   pool: tuple[int, int] | None) -> _Grouped:
        """``_conv`` of each member on its own images, then ReLU, then (with ``pool``) the average pooling of
        that window, as one ``_ConvReLU``."""
        weight = params[f"{name}.weight"]
        bias = params.get(f"{name}.bias")
        filters = weight.reshape(k * weight.shape[1], *weight.shape[2:])
        flat_bias = bias.reshape(-1) if bias is not None else None
        x = (act if isinstance(act, _Grouped) else _grouped(act)).x
        geometry = (tuple(conv.stride), _padding(conv), tuple(conv.dilation), k)
        return _Grouped(_ConvReLU.apply(x, filters, flat_bias, geometry, pool), k)


def _shared_conv(x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv2d) -> torch.Tensor:
    """``conv2d(x, filters, bias)`` of one batch ``x`` ``(B, C, H, W)`` with every member's filters, ``(B, K·C',
    H', W')`` in channels-last memory, as one matmul of the image patches (``unfold``) with the filters: its
    result rows are channels-last pixels. A first layer has few input channels, which oneDNN's convolution runs
    at a fraction of its speed (a third of this matmul's on the digits CNN's evaluation batches)."""
    b, h, w = x.shape[0], *_conv_output_size(x.shape[-2:], conv)
    patches = F.unfold(x, conv.kernel_size, conv.dilation, _padding(conv), conv.stride)  # (B, C·kh·kw, H'·W')
    rows = patches.transpose(1, 2).reshape(b * h * w, patches.shape[1])
    flat = filters.reshape(filters.shape[0], -1).t()
    out = rows @ flat if bias is None else torch.addmm(bias, rows, flat)
    return out.view(b, h, w, filters.shape[0]).permute(0, 3, 1, 2)


#: Whether a CPU runs ``Conv2d`` + ``ReLU`` (+ ``AdaptiveAvgPool2d``) as one ``_ConvReLU`` (tests turn it off to
#: check the general path, which other devices run).
FUSED_CONV = True


def _fused_conv(x: torch.Tensor) -> bool:
    """Whether ``_ConvReLU`` runs on ``x``: on a CPU, where it was measured (see the module docstring)."""
    return FUSED_CONV and x.device.type == "cpu"


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    """``conv``'s zero padding (``plan`` refuses the string forms)."""
    assert not isinstance(conv.padding, str)
    return int(conv.padding[0]), int(conv.padding[1])


def _conv_output_size(size: torch.Size, conv: nn.Conv2d) -> tuple[int, int]:
    """The height and width of ``conv``'s output on images of ``size`` (height, width)."""
    h, w = (
        (n + 2 * pad - dil * (kernel - 1) - 1) // stride + 1
        for n, kernel, stride, pad, dil in zip(size, conv.kernel_size, conv.stride, _padding(conv), conv.dilation,
                                               strict=True)
    )
    return h, w


class _ConvReLU(torch.autograd.Function):
    """``relu(conv2d(x, weight, bias))``, then with ``pool`` an average pooling of windows ``pool``.

    Forward: the convolution, its ReLU in place and ``avg_pool2d`` (what ``AdaptiveAvgPool2d`` computes when its
    windows tile the image, bit for bit, in half the time on channels-last memory). Backward written out: the
    pooling's and the ReLU's in one pass (``threshold_backward`` of the pooled gradient broadcast over each
    window, scaled by 1 / window size as the pooling's backward does), the convolution's by
    ``convolution_backward``, and the bias's as a sum of the gradient (oneDNN's own bias gradient of a grouped
    convolution costs ~0.8 ms a step at K = 16, the sum ~0.3 ms). Numerics: the forward pass is that of the
    layers one by one; the bias gradient sums in another order.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                geometry: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int],
                pool: tuple[int, int] | None) -> torch.Tensor:
        stride, padding, dilation, groups = geometry
        y = torch.relu_(F.conv2d(x, weight, bias, stride, padding, dilation, groups))
        ctx.save_for_backward(x, weight, y)
        ctx.geometry, ctx.pool = geometry, pool
        return F.avg_pool2d(y, pool) if pool is not None else y

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, y = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        grad = grads[0]
        grad_y = torch.empty_like(y)  # channels-last as ``y``: the layout the convolution's backward is fast in
        if ctx.pool is not None:
            (ph, pw), (b, c, h, w) = ctx.pool, grad.shape
            spread = (grad * (1.0 / (ph * pw))).reshape(b, c, h, 1, w, 1).expand(b, c, h, ph, w, pw)

            def windows(t: torch.Tensor) -> torch.Tensor:
                return t.unflatten(2, (h, ph)).unflatten(4, (w, pw))

            torch.ops.aten.threshold_backward.grad_input(spread, windows(y), 0, grad_input=windows(grad_y))
        else:
            torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=grad_y)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_y, x, weight, None, list(stride), list(padding), list(dilation), False, [0, 0], groups,
            [need_x, need_w, False])
        grad_b = grad_y.sum((0, 2, 3)) if need_b else None
        return grad_x, grad_w, grad_b, None, None


def _relu(x: torch.Tensor, in_place: bool) -> torch.Tensor:
    """ReLU; in place on the fresh output of a convolution or a matmul (whose backward does not read its output),
    which spares one pass over the largest activations: a fifth of a CNN step at K = 16."""
    return torch.relu_(x) if in_place else torch.relu(x)


def _linear(params: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """``Linear`` of each member on its own rows: ``x`` is ``(K, ..., in)``, the result ``(K, ..., out)``."""
    weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    return _StackedLinear.apply(rows, weight, bias).reshape(*x.shape[:-1], weight.shape[1])


class _StackedLinear(torch.autograd.Function):
    """``rows @ weightᵀ + bias`` per member (``(K, R, in)``, ``(K, out, in)``, ``(K, out)``), one ``baddbmm``.

    Its own backward so that both gradients come out contiguous: autograd's would hand the weight's gradient
    back as the transpose of ``rowsᵀ @ grad``, which the fused optimiser copies into place every step (and the
    transposed formulation ``weight @ rowsᵀ`` would instead hand back a transposed gradient of the rows, which
    slows every elementwise kernel of the image layers below it).
    """

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None
        wt = weight.transpose(1, 2)
        return torch.bmm(rows, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), rows, wt)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, weight = ctx.saved_tensors
        grad = grads[0]
        need_rows, need_weight, need_bias = ctx.needs_input_grad
        grad_rows = torch.bmm(grad, weight) if need_rows else None
        grad_weight = torch.bmm(grad.transpose(1, 2), rows) if need_weight else None
        grad_bias = grad.sum(1) if need_bias and ctx.has_bias else None
        return grad_rows, grad_weight, grad_bias


def plan(model: nn.Module) -> StackedForward | None:
    """A ``StackedForward`` for ``model``'s architecture, or None when it has a layer the plan does not run.

    Runs: a plain ``MultiTaskModel`` whose trunk is an ``nn.Sequential`` of ``Conv2d`` (zero padding, one group),
    ``ReLU``, ``AdaptiveAvgPool2d``, ``Flatten`` (of everything but the batch dimension) and ``Linear``, image
    layers first, and ``Linear`` heads; that covers ``tuner.engine.model.mlp_trunk`` and ``cnn_trunk``.
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
