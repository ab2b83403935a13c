"""Invertible modality translator (the INN of INNReg).

``forward`` maps the moving image's modality to the fixed image's modality, ``inverse`` maps back;
``inverse(forward(x)) == x`` up to float rounding, for any spatial size (odd sizes included), unless
latent channels are asked for (``latent_channels``; then only the blocks' map on all channels is exact).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from innreg.core.enums import SqueezeKind, SubnetKind
from innreg.nn.coupling import InvertibleBlock, squeeze, unsqueeze
from innreg.nn.haar import haar_mix
from innreg.nn.layers import check_dim, crop_to, pad_to_multiple
from innreg.nn.layers import to_channels_last
from innreg.nn.reversible import run_invertible


class INNTranslator(nn.Module):
    """Invertible image-to-image translator: squeeze, ``n_blocks`` x (LU 1x1 conv + affine coupling), unsqueeze.

    The image is zero-padded to even sizes, squeezed (2x2 or 2x2x2 cells to channels, so a 1-channel
    image has 4 or 8 splittable channels at half resolution), transformed, unsqueezed and cropped.
    On odd sizes the blocks get a mask of real voxels and keep the padded slots at exactly zero (see
    :mod:`innreg.nn.coupling`), which makes the cropped map exactly invertible.

    At initialisation the couplings and the 1x1 convolutions are identities, so the translator starts
    as the identity map and learns the modality change from there.

    Args:
        dim: 2 or 3.
        in_channels: image channels ``C``.
        n_blocks: number of invertible blocks.
        hidden_channels: width of the coupling subnetworks (they run at half resolution).
        subnet: ``ddc`` (dynamic depthwise conv + local attention) or ``conv`` (plain convolutions).
        kernel_size: odd spatial kernel size of the subnetworks.
        clamp: soft bound on the coupling log-scales.
        squeeze: ``cells`` (pixel phases as channels) or ``haar`` (their Haar bands, see
            :mod:`innreg.nn.haar`).
        memory_efficient: backpropagate without storing the blocks' activations, reconstructing them
            with the exact inverse (see :mod:`innreg.nn.reversible`); same gradients up to float error.
        latent_channels: ``L`` zero channels appended to the image before the squeeze and dropped after
            the unsqueeze (an augmented flow; the released INNReg code runs its blocks on a duplicated
            image and drops one channel). The blocks stay exactly invertible on the ``C + L`` channels,
            and they get room to put what the translation should not show (the moving image's noise,
            what its contrast cannot decide) in the dropped channels; the price is that ``inverse`` (run
            from zero latents) is an inverse only as far as training makes it one. 0 = the exact
            image-to-image inverse of the paper.

    Shapes:
        ``forward``/``inverse``: ``(N, C, *spatial) -> (N, C, *spatial)``.
    """

    # Local: a voxel's output depends on a bounded window around it, so training on crops trains the
    # whole-image map (the translator stages draw crops, ``train.translator_crop``).
    local = True

    def __init__(
        self,
        dim: int = 2,
        in_channels: int = 1,
        n_blocks: int = 4,
        hidden_channels: int = 32,
        subnet: SubnetKind | str = SubnetKind.DDC,
        kernel_size: int = 5,
        clamp: float = 1.5,
        squeeze: SqueezeKind | str = SqueezeKind.CELLS,
        memory_efficient: bool = True,
        latent_channels: int = 0,
    ) -> None:
        super().__init__()
        self.dim = check_dim(dim)
        self.haar = SqueezeKind(squeeze) is SqueezeKind.HAAR
        self.in_channels = in_channels
        self.memory_efficient = memory_efficient
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        if latent_channels < 0:
            raise ValueError(f"latent_channels must be >= 0, got {latent_channels}")
        self.latent_channels = latent_channels
        channels = (in_channels + latent_channels) * 2**dim
        self.blocks = nn.ModuleList(
            InvertibleBlock(channels, dim, hidden_channels, subnet, kernel_size, clamp) for _ in range(n_blocks)
        )

    @property
    def exact_inverse(self) -> bool:
        """Whether :meth:`inverse` undoes :meth:`forward` exactly (no latent channels)."""
        return self.latent_channels == 0

    def forward(self, x: Tensor) -> Tensor:
        """Translate moving modality -> fixed modality."""
        return self._run(self._with_latents(x), reverse=False)[:, : self.in_channels]

    def inverse(self, y: Tensor) -> Tensor:
        """Translate fixed modality -> moving modality (the exact inverse of :meth:`forward` when
        :attr:`exact_inverse`)."""
        return self._run(self._with_latents(y), reverse=True)[:, : self.in_channels]

    def _with_latents(self, x: Tensor) -> Tensor:
        """``(N, C, *S) -> (N, C + L, *S)``: the image and ``L`` zero channels, after checking its shape."""
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (N, {self.in_channels}, *spatial) with {self.dim} spatial dims, got {tuple(x.shape)}"
            )
        if not self.latent_channels:
            return x
        return torch.cat([x, x.new_zeros((x.shape[0], self.latent_channels, *x.shape[2:]))], dim=1)

    def _run(self, x: Tensor, reverse: bool) -> Tensor:
        """The invertible map on all ``C + L`` channels: ``(N, C + L, *S) -> (N, C + L, *S)``."""
        padded, shape = pad_to_multiple(x, 2)
        mask = None
        if padded.shape != x.shape:
            real = torch.ones((1, x.shape[1], *shape), dtype=x.dtype, device=x.device)
            mask = to_channels_last(squeeze(pad_to_multiple(real, 2)[0]))
        z = to_channels_last(squeeze(padded))
        full_cells = None if mask is None else mask.amin(dim=1, keepdim=True).bool()
        if self.haar:
            z = to_channels_last(haar_mix(z, self.dim, full_cells))
        steps = [step for block in self.blocks for step in block.steps()]
        z = run_invertible(steps, z, mask, reverse, self.memory_efficient)
        if self.haar:
            z = to_channels_last(haar_mix(z, self.dim, full_cells))
        return crop_to(unsqueeze(z, self.dim), shape).contiguous()
