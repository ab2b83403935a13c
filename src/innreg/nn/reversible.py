"""Memory-saving backpropagation through a chain of exactly invertible steps (RevNet-style).

:func:`run_invertible` applies a sequence of :class:`InvertibleStep` (forward or inverse direction).
With ``memory_efficient=True`` and autograd recording, it runs the steps under ``no_grad`` and stores
only the chain's *output*; the backward pass walks the steps in reverse, reconstructs each step's
input from its output with the step's exact inverse, re-runs that one step with autograd on and
backpropagates through it. Peak activation memory is then that of one step (one coupling subnet in
the translator) instead of all of them, for one extra inverse and one extra forward per step.

Float error: the reconstructed inputs differ from the true ones by the inverse's rounding error
(~1e-6 relative in float32 per step, growing with the number of steps and the coupling scales), so
the gradients match the stored-activation ones to that tolerance, not bit for bit (float64: ~1e-12).

Steps must be deterministic and free of state updates (no dropout, no batch-norm statistics), as
the blocks of :mod:`innreg.nn.coupling` are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

StepFn = Callable[[Tensor, "Tensor | None"], Tensor]


@dataclass(frozen=True)
class InvertibleStep:
    """One invertible map ``(N, K, *S) -> (N, K, *S)`` of a chain.

    Attributes:
        forward: ``forward(x, mask) -> y``.
        inverse: ``inverse(y, mask) -> x``, exact inverse of ``forward``.
        module: the module holding the step's parameters.
    """

    forward: StepFn
    inverse: StepFn
    module: nn.Module

    def apply(self, x: Tensor, mask: Tensor | None, reverse: bool) -> Tensor:
        """``forward`` (``reverse=False``) or ``inverse``."""
        return self.inverse(x, mask) if reverse else self.forward(x, mask)

    def params(self) -> list[Tensor]:
        """Parameters that need a gradient."""
        return [p for p in self.module.parameters() if p.requires_grad]


class _InvertibleChainFunction(torch.autograd.Function):
    """Autograd node for a whole chain; saves its output only (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor | None, steps: list[InvertibleStep], reverse: bool, *params: Tensor):
        # ``steps`` are in the order applied. Parameters are leaves: keeping them on ctx holds no graph.
        ctx.steps, ctx.mask, ctx.reverse, ctx.params = steps, mask, reverse, params
        # The backward pass must re-run the steps under the same autocast state as this pass.
        device_type = x.device.type
        ctx.autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        with torch.no_grad():
            for step in steps:
                x = step.apply(x, mask, reverse)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: Tensor):
        (y,) = ctx.saved_tensors
        mask, reverse = ctx.mask, ctx.reverse
        device_type, autocast_on, autocast_dtype = ctx.autocast
        grads: dict[int, Tensor] = {}  # by id: tensors compare elementwise
        for step in reversed(ctx.steps):
            with torch.no_grad(), torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_on):
                x = step.apply(y, mask, not reverse).to(y.dtype)
            params = step.params()
            with torch.enable_grad(), torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_on):
                x_leaf = x.requires_grad_(True)
                out = step.apply(x_leaf, mask, reverse)
                step_grads = torch.autograd.grad(out, [x_leaf, *params], grad_y.to(out.dtype), allow_unused=True)
            del out
            grad_y = step_grads[0]
            for p, g in zip(params, step_grads[1:]):
                if g is not None:
                    grads[id(p)] = grads[id(p)] + g if id(p) in grads else g
            y = x.detach()
        return (grad_y, None, None, None, *(grads.get(id(p)) for p in ctx.params))


def run_invertible(
    steps: Sequence[InvertibleStep],
    x: Tensor,
    mask: Tensor | None = None,
    reverse: bool = False,
    memory_efficient: bool = True,
) -> Tensor:
    """Apply ``steps`` in order (``reverse=False``) or their inverses in reverse order (``reverse=True``).

    Args:
        steps: the chain, in forward order.
        x: ``(N, K, *S)``.
        mask: passed to every step (``(1, K, *S)`` or ``None``).
        memory_efficient: store only the output and reconstruct activations in backward; plain
            autograd when off or when nothing needs a gradient.

    Returns:
        ``(N, K, *S)``.
    """
    order = list(reversed(steps)) if reverse else list(steps)
    if memory_efficient and torch.is_grad_enabled():
        # Collected here only: registering (no autograd) skips 24 walks over the subnets' parameters a pair.
        params = [p for step in order for p in step.params()]
        if x.requires_grad or params:
            # Parameters go in as inputs, so autograd (and DDP's gradient hooks) see them as used.
            return _InvertibleChainFunction.apply(x, mask, order, reverse, *params)
    for step in order:
        x = step.apply(x, mask, reverse)
    return x
