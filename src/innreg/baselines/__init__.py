"""Registration methods compared by the benchmark, behind one interface.

Every method is a :class:`Method`: ``fit(train_pairs, out_dir, steps, device, progress)`` learns
whatever it needs (nothing for the optimisation-based ones) and ``register(moving, fixed,
moving_seg)`` returns an :class:`innreg.inference.RegistrationResult` in innreg's field convention
(voxels of the fixed grid, channel k along array axis k, pull-back ``warped(x) = moving(x + ddf(x))``).
Because all methods return the same result type, :func:`innreg.evaluation.evaluate` scores
them with one metrics code path.

Methods (``make_method(name)``):

* ``identity``: the zero field (the "before registration" row).
* ``ants-syn``: ANTs SyN with Mattes MI, affine + deformable (needs the ``antspyx`` extra).
* ``ants-syn-cc``: the recipe of ``antsRegistrationSyN.sh``: rigid + affine with MI, SyN with local
  cross-correlation (the stronger ANTs on whole-head scans).
* ``innreg`` (network + per-pair refinement), ``innreg-no-refine`` (the network alone, as in the
  paper) and the network ablations ``innreg-no-inn``, ``innreg-no-ddc``, ``innreg-no-barrier``,
  ``innreg-no-translation``; ``voxelmorph-nmi`` (direct learned registration with plain NMI) and
  ``reggan`` (ResNet translator, plain displacement, RegGAN's loss weights): all trained by
  :func:`innreg.training.train` with a variant of the run config.
* ``cyclegan-voxelmorph``: a CycleGAN translator trained first, then a VoxelMorph registration of
  the translated pair (two stages, one step budget).
"""

from __future__ import annotations

from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING, Any, Callable

from innreg.baselines.variants import VARIANTS
from innreg.errors import InnregInputError
from innreg.lazy import lazy_exports

if TYPE_CHECKING:
    from innreg.baselines.base import Method
    from innreg.config import Config


def _factory(module: str, name: str) -> Callable[..., Method]:
    """A factory importing ``innreg.baselines.<module>`` (and torch, ANTs, ...) only when called."""

    def make(*args: Any, **kwargs: Any) -> Method:
        return getattr(import_module(f"innreg.baselines.{module}"), name)(*args, **kwargs)

    make.__qualname__ = make.__name__ = name
    return make


METHODS: dict[str, Callable[..., Method]] = {
    "identity": _factory("identity", "IdentityMethod"),
    "ants-syn": _factory("ants", "AntsSyN"),
    "ants-syn-cc": _factory("ants", "AntsSyNScript"),
    "greedy": _factory("greedy", "Greedy"),
    "elastix": _factory("elastix", "Elastix"),
    "convexadam": _factory("convexadam", "ConvexAdam"),
    **{name: partial(_factory("configured", "ConfiguredMethod"), name) for name in VARIANTS},
    "cyclegan-voxelmorph": _factory("cyclegan", "CycleGanVoxelMorph"),
}
"""Method name -> factory ``(dim=2, **kw) -> Method``, in the order tables list them."""


TRAINED_METHODS = frozenset({*VARIANTS, "cyclegan-voxelmorph"})
"""The methods that learn from training pairs (and so take a base ``config`` and the step budget)."""


def make_method(name: str, dim: int = 2, config: Config | None = None, **kwargs) -> Method:
    """Build the method called ``name`` (see :data:`METHODS`) for ``dim``-D images.

    Args:
        name: a key of :data:`METHODS`.
        dim: 2 or 3.
        config: base config of the learned methods (network sizes, batch size, seed, ...), under
            the method's own switches; ignored by the methods that do not train.
        **kwargs: further constructor arguments, e.g. ``reg_iterations`` for ``ants-syn``.
    """
    if name not in METHODS:
        raise InnregInputError(f"--methods: unknown method {name!r}; known: {', '.join(METHODS)}")
    if config is not None and name in TRAINED_METHODS:
        kwargs["config"] = config
    return METHODS[name](dim=dim, **kwargs)


# The classes and helpers, imported on first use.
_EXPORTS = {
    "ants": ("AntsSyN", "AntsSyNScript"),
    "base": ("FitInfo", "Method", "fit_info", "peak_memory"),
    "configured": ("ConfiguredMethod",),
    "cyclegan": ("CycleGanVoxelMorph",),
    "identity": ("IdentityMethod",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ += ["METHODS", "TRAINED_METHODS", "make_method"]
