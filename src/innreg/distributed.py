"""Multi-process training plumbing: torch.distributed set-up from torchrun's environment, DDP
wrapping, mixed precision. The training loop itself stays in :mod:`innreg.training`.

``torchrun --nproc_per_node=N -m innreg train ...`` (or ``--nnodes``/``--rdzv_endpoint`` for several
machines) sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; the process
group is then initialised with ``env://`` rendezvous, NCCL on GPUs and gloo on CPUs. Without those
variables (a plain ``innreg train``) everything here is a no-op on one process.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from innreg.config import Precision
from innreg.errors import InnregInputError


# How long a rank waits in :func:`barrier` for the others to finish uneven work (each rank aligns its own
# share of the training pairs for the translator stages: minutes to hours in 3D on a CPU, not equally
# fast everywhere): far past the default collective timeouts (gloo 30 min, NCCL 10 min), which would
# abort a rank waiting in a collective of the default group. A rank that dies still ends the job:
# torchrun stops the others.
UNEVEN_WORK_TIMEOUT = timedelta(days=2)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) run. ``wait_group``: a gloo group (a CPU
    barrier, whatever the backend) with the timeout :data:`UNEVEN_WORK_TIMEOUT`, for :func:`barrier`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    wait_group: dist.ProcessGroup | None = None

    @property
    def enabled(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, ``model.pt``, history and logs."""
        return self.rank == 0


def setup(device: torch.device | str) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device.

    Args:
        device: the run's device choice; under torchrun, ``cuda`` becomes ``cuda:LOCAL_RANK``.

    Returns:
        ``(context, device)``.
    """
    device = torch.device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InnregInputError(f"LOCAL_RANK {local_rank}: only {torch.cuda.device_count()} CUDA device(s) here")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    wait_group = dist.new_group(backend="gloo", timeout=UNEVEN_WORK_TIMEOUT)
    return DistContext(rank, world_size, local_rank, wait_group), device


def barrier(ctx: DistContext) -> None:
    """A barrier on ``ctx.wait_group``: however long the other ranks take to get here (up to
    :data:`UNEVEN_WORK_TIMEOUT`). A no-op on one process."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier(group=ctx.wait_group)


def teardown(ctx: DistContext) -> None:
    """Wait for every rank (:func:`barrier`: rank 0 writes ``model.pt`` alone), then leave the process group.

    The caller drops its DDP wrappers first; the collection here frees them (they sit in reference
    cycles). A wrapper still alive at the interpreter's exit can abort it ("terminate called without an
    active exception"). Launches of a minimal two-rank gloo run that aborted: 11 of 40 keeping the
    wrapper, 11 of 40 deleting it, 0 of 40 deleting and collecting it (``benchmarks/gloo_exit_abort.md``).
    """
    if ctx.enabled and dist.is_initialized():
        gc.collect()
        barrier(ctx)
        dist.destroy_process_group()


def wrap(module: nn.Module | None, ctx: DistContext, device: torch.device) -> nn.Module | None:
    """``DistributedDataParallel(module)`` in a multi-process run (gradients all-reduced in backward),
    else ``module`` itself. DDP broadcasts rank 0's weights at construction, so all ranks start equal."""
    if module is None or not ctx.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def mean_over_ranks(values: dict[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Average logged loss values over all ranks (each rank saw other batches)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / ctx.world_size).tolist()))


def max_over_ranks(value: int, ctx: DistContext, device: torch.device) -> int:
    """The largest ``value`` over all ranks (``value`` itself on one process); every rank must call it."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)  # NCCL reduces device tensors only
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def loop_agreement(ctx: DistContext, device: torch.device) -> Callable[[int], int] | None:
    """The ``agree`` of :func:`innreg.loop.run_loop` for this process: :func:`max_over_ranks` under torchrun,
    ``None`` (nothing to agree on) for one process."""
    return functools.partial(max_over_ranks, ctx=ctx, device=device) if ctx.enabled else None


def union_over_ranks(values: set, ctx: DistContext) -> set:
    """The union of every rank's ``values`` (picklable), on every rank; ``values`` on one process.
    Gathered over ``ctx.wait_group`` (gloo, long timeout): the ranks may arrive after unequal work."""
    if not ctx.enabled or not dist.is_initialized():
        return set(values)
    gathered: list[set | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, set(values), group=ctx.wait_group)
    return set().union(*gathered)


def check_precision(precision: Precision | str, device: torch.device, where: str = "--precision") -> Precision:
    """The precision, refused with a one-line error naming ``where`` it came from where the device cannot run it."""
    precision = Precision(precision)
    if precision is Precision.FP16 and device.type != "cuda":
        raise InnregInputError(f"{where} fp16: needs a CUDA device (this run uses {device}); use bf16 or fp32")
    return precision


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast context for the networks' forward passes (losses stay in float32)."""
    if precision is Precision.FP32:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision is Precision.BF16 else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: Precision, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaler: active for fp16 only (bf16 has float32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=precision is Precision.FP16)
