"""Memory-saving backpropagation through a stack of exactly invertible blocks (RevNet-style).

:func:`run_invertible` applies a sequence of invertible blocks (forward or inverse direction). With
``memory_efficient=True`` and autograd recording, it runs the blocks under ``no_grad`` and stores
only the stack's *output*; the backward pass walks the blocks in reverse, reconstructs each block's
input from its output with the block's exact inverse, re-runs that one block with autograd on and
backpropagates through it. Peak activation memory is then that of one block instead of all of them,
at the cost of one extra inverse and one extra forward per block.

Float error: the reconstructed inputs differ from the true ones by the inverse's rounding error
(~1e-6 relative in float32 per block, growing with the number of blocks and the coupling scales), so
the gradients match the stored-activation ones to that tolerance, not bit for bit.

A block is any module with ``forward(x, mask)`` and ``inverse(y, mask)``, both ``(N, K, *S) -> (N, K, *S)``,
deterministic and free of state updates (no dropout, no batch-norm statistics), as in
:mod:`innreg.nn.coupling`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def _apply(block: nn.Module, x: Tensor, mask: Tensor | None, reverse: bool) -> Tensor:
    return block.inverse(x, mask) if reverse else block(x, mask)


def _undo(block: nn.Module, y: Tensor, mask: Tensor | None, reverse: bool) -> Tensor:
    return block(y, mask) if reverse else block.inverse(y, mask)


class _InvertibleStackFunction(torch.autograd.Function):
    """Autograd node for a whole block stack; saves its output only (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor | None, blocks: Sequence[nn.Module], reverse: bool, *params: Tensor):
        order = list(reversed(blocks)) if reverse else list(blocks)
        # Parameters are leaves, so keeping them on ctx holds no graph alive.
        ctx.order, ctx.mask, ctx.reverse, ctx.params = order, mask, reverse, params
        # The backward pass must re-run the blocks under the same autocast state as this pass.
        device_type = x.device.type
        ctx.autocast = (
            device_type,
            torch.is_autocast_enabled(device_type),
            torch.get_autocast_dtype(device_type),
        )
        with torch.no_grad():
            y = x
            for block in order:
                y = _apply(block, y, mask, reverse)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        (y,) = ctx.saved_tensors
        mask, reverse = ctx.mask, ctx.reverse
        device_type, autocast_on, autocast_dtype = ctx.autocast
        grads: dict[int, Tensor] = {}  # by id: tensors compare elementwise
        y = y.detach()
        for block in reversed(ctx.order):
            with torch.no_grad(), torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_on):
                x = _undo(block, y, mask, reverse).to(y.dtype)
            params = [p for p in block.parameters() if p.requires_grad]
            with torch.enable_grad(), torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_on):
                x_leaf = x.detach().requires_grad_(True)
                out = _apply(block, x_leaf, mask, reverse)
                block_grads = torch.autograd.grad(out, [x_leaf, *params], grad_y.to(out.dtype), allow_unused=True)
            grad_y = block_grads[0]
            for p, g in zip(params, block_grads[1:]):
                if g is not None:
                    grads[id(p)] = grads[id(p)] + g if id(p) in grads else g
            y = x
        param_grads = tuple(grads.get(id(p)) for p in ctx.params)
        return (grad_y, None, None, None, *param_grads)


def run_invertible(
    blocks: Sequence[nn.Module], x: Tensor, mask: Tensor | None = None, reverse: bool = False, memory_efficient: bool = True
) -> Tensor:
    """Apply ``blocks`` in order (``reverse=False``, each block's ``forward``) or their inverses in
    reverse order (``reverse=True``).

    Args:
        blocks: invertible blocks (see the module docstring).
        x: ``(N, K, *S)``.
        mask: passed to every block (``(1, K, *S)`` or ``None``).
        memory_efficient: store only the output and reconstruct activations in backward; falls back
            to plain autograd when nothing needs a gradient.

    Returns:
        ``(N, K, *S)``.
    """
    params = [p for block in blocks for p in block.parameters() if p.requires_grad]
    if not (memory_efficient and torch.is_grad_enabled() and (x.requires_grad or params)):
        for block in reversed(blocks) if reverse else blocks:
            x = _apply(block, x, mask, reverse)
        return x
    # Parameters go in as inputs so autograd (and DDP's gradient hooks) see them as used.
    return _InvertibleStackFunction.apply(x, mask, list(blocks), reverse, *params)
