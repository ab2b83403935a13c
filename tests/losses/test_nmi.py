import math

import pytest
import torch

from innreg.losses import NMIBarrierLoss, NMILoss, NMINormalization, nmi, nmi_barrier
from innreg.core.warp import warp

NORMS = [NMINormalization.SYMMETRIC, NMINormalization.STUDHOLME]


def smooth_image(shape=(24, 28), centre=None) -> torch.Tensor:
    """Two Gaussian blobs on a zero background, shape (1, 1, *shape); ``centre`` offsets them (voxels)."""
    centre = centre or [0.0] * len(shape)
    axes = [torch.arange(s, dtype=torch.float64) - (s - 1) / 2 - c for s, c in zip(shape, centre)]
    grid = torch.meshgrid(*axes, indexing="ij")
    r1 = sum((g / (0.22 * s)) ** 2 for g, s in zip(grid, shape))
    r2 = sum(((g - 0.15 * s) / (0.1 * s)) ** 2 for g, s in zip(grid, shape))
    return (torch.exp(-r1) + 0.8 * torch.exp(-r2)).view(1, 1, *shape)


def striped_image(widths=(3, 4, 3, 4), levels=(0.0, 1.0, 2.0, 3.0), rows=12) -> torch.Tensor:
    cols = [torch.full((rows, w), v) for w, v in zip(widths, levels)]
    return torch.cat(cols, dim=1).view(1, 1, rows, sum(widths))


def remap(image: torch.Tensor, mapping: dict[float, float]) -> torch.Tensor:
    out = torch.empty_like(image)
    for src, dst in mapping.items():
        out[image == src] = dst
    return out


@pytest.mark.parametrize("norm", NORMS)
def test_self_nmi_is_maximum_and_falls_with_shift(norm):
    x = smooth_image()
    values = [nmi(x, x.roll(s, dims=3), normalization=norm).item() for s in (0, 1, 2, 4)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_hard_binning_limit_reaches_upper_bounds():
    # Levels on the bin centres and a tiny kernel: the histogram is exact, so NMI(x, x) hits its bound.
    x = striped_image()
    assert nmi(x, x, bins=4, sigma=0.05).item() == pytest.approx(1.0, abs=1e-6)
    assert nmi(x, x, bins=4, sigma=0.05, normalization="studholme").item() == pytest.approx(2.0, abs=1e-6)


def test_two_level_image_matches_hand_computed_parzen_histogram():
    x = striped_image(widths=(5, 5), levels=(0.0, 1.0), rows=4)
    # bins=2, sigma=0.5: a voxel on centre 0 weights the centres (1, e^-2), normalised to (p, q).
    p, q = 1 / (1 + math.exp(-2)), math.exp(-2) / (1 + math.exp(-2))
    h_marginal = math.log(2)  # both levels cover half the image
    diag, off = (p * p + q * q) / 2, p * q
    h_joint = -2 * diag * math.log(diag) - 2 * off * math.log(off)
    expected_sym = 2 * (2 * h_marginal - h_joint) / (2 * h_marginal)
    expected_stud = 2 * h_marginal / h_joint
    assert nmi(x, x, bins=2).item() == pytest.approx(expected_sym, rel=1e-5)
    assert nmi(x, x, bins=2, normalization="studholme").item() == pytest.approx(expected_stud, rel=1e-5)


@pytest.mark.parametrize("norm", NORMS)
def test_invariant_to_invertible_non_monotone_remap(norm):
    x = striped_image(widths=(4, 4, 4, 4))
    g = remap(x, {0.0: 2.0, 1.0: 0.0, 2.0: 3.0, 3.0: 1.0})
    assert nmi(x, g, normalization=norm).item() == pytest.approx(nmi(x, x, normalization=norm).item(), abs=1e-5)
    # Unequal areas: levels sit on differently truncated kernels, so only approximately equal.
    x = striped_image(widths=(2, 5, 3, 4))
    g = remap(x, {0.0: 2.0, 1.0: 0.0, 2.0: 3.0, 3.0: 1.0})
    assert nmi(x, g, normalization=norm).item() == pytest.approx(nmi(x, x, normalization=norm).item(), rel=0.03)


def test_range_taken_from_data_not_clamped_to_unit_interval():
    x = smooth_image()
    assert nmi(x, 1000 * x - 500).item() == pytest.approx(nmi(x, x).item(), abs=1e-5)
    # A decreasing affine map mirrors the histogram; NMI is unchanged.
    assert nmi(x, -3 * x + 7).item() == pytest.approx(nmi(x, x).item(), abs=1e-5)


def test_shuffled_image_has_low_nmi():
    torch.manual_seed(0)
    x = smooth_image((64, 64))
    shuffled = x.flatten()[torch.randperm(x.numel())].view_as(x)
    assert nmi(x, shuffled).item() < 0.05 < 0.5 * nmi(x, x).item()
    assert nmi(x, shuffled, normalization="studholme").item() < 1.05


@pytest.mark.parametrize("norm", NORMS)
def test_symmetric_in_arguments_and_batched_per_sample(norm):
    torch.manual_seed(0)
    a = torch.cat([smooth_image(), torch.rand(1, 1, 24, 28, dtype=torch.float64)])
    b = torch.cat([smooth_image().roll(2, dims=2) ** 2, smooth_image()])
    ab, ba = nmi(a, b, normalization=norm), nmi(b, a, normalization=norm)
    assert ab.shape == (2,)
    torch.testing.assert_close(ab, ba)
    for i in range(2):
        torch.testing.assert_close(ab[i : i + 1], nmi(a[i : i + 1], b[i : i + 1], normalization=norm))


def test_mask_restricts_nmi_to_its_voxels():
    torch.manual_seed(0)
    a = smooth_image()
    noise = 5 * torch.rand_like(a) * (torch.arange(28) >= 20)  # only right of column 20, outside the mask
    b = (a - 0.4) ** 2 + noise  # inside the mask: a non-monotone but deterministic relation
    mask = torch.zeros_like(a)
    mask[..., 2:22, 3:20] = 1
    inside = nmi(a[..., 2:22, 3:20], b[..., 2:22, 3:20])
    torch.testing.assert_close(nmi(a, b, mask=mask), inside)
    assert nmi(a, b).item() < inside.item()
    # Weights are relative, and a (1, 1, ...) mask broadcasts over the batch.
    torch.testing.assert_close(nmi(a, b, mask=3 * mask), inside)
    batch = nmi(a.expand(2, -1, -1, -1), b.expand(2, -1, -1, -1), mask=mask)
    torch.testing.assert_close(batch, inside.expand(2))


def test_3d_matches_the_same_voxels_in_2d():
    x = smooth_image((8, 10, 6))
    y = smooth_image((8, 10, 6), centre=(1.0, 0.0, 0.5))
    value = nmi(x, y)
    assert value.shape == (1,)
    # NMI ignores voxel order: the same voxels laid out as a 2D image give the same value.
    torch.testing.assert_close(value, nmi(x.view(1, 1, 80, 6), y.view(1, 1, 80, 6)))
    assert nmi(x, x).item() > value.item()


def test_gradient_matches_finite_differences():
    # Fixed extreme voxels keep the bin range constant, so the analytic gradient is exact.
    torch.manual_seed(0)
    inner = (0.1 + 0.8 * torch.rand(1, 1, 4, 5, dtype=torch.float64)).requires_grad_()
    b = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    b[0, 0, 0, :2] = torch.tensor([0.0, 1.0], dtype=torch.float64)

    def f(inner):
        a = torch.cat([torch.tensor([[[[0.0, 1.0, 0.5, 0.5, 0.5]]]], dtype=torch.float64), inner], dim=2)
        return nmi(a, b, bins=6)

    assert torch.autograd.gradcheck(f, (inner,))


@pytest.mark.parametrize("norm", NORMS)
def test_degenerate_inputs_are_finite(norm):
    a = torch.rand(2, 1, 6, 7, requires_grad=True)
    constant = torch.full((2, 1, 6, 7), 3.0)
    empty_mask = torch.zeros(1, 1, 6, 7)
    degenerate_value = 0.0 if norm is NMINormalization.SYMMETRIC else 1.0
    for value in (nmi(a, constant, normalization=norm), nmi(constant, constant, normalization=norm)):
        torch.testing.assert_close(value, torch.full((2,), degenerate_value), atol=1e-6, rtol=0)
    value = nmi(a, a.detach() ** 2, mask=empty_mask, normalization=norm)
    assert torch.isfinite(value).all()
    grad = torch.autograd.grad((nmi(a, constant, normalization=norm) + value).sum(), a)[0]
    assert torch.isfinite(grad).all()


def test_rejects_bad_shapes_and_options():
    x = torch.rand(1, 1, 6, 7)
    with pytest.raises(ValueError, match="same shape"):
        nmi(x, torch.rand(1, 1, 6, 8))
    with pytest.raises(ValueError, match="N, 1"):
        nmi(torch.rand(1, 2, 6, 7), torch.rand(1, 2, 6, 7))
    with pytest.raises(ValueError, match="mask"):
        nmi(x, x, mask=torch.ones(1, 1, 6, 6))
    with pytest.raises(ValueError):
        nmi(x, x, normalization="entropy")
    with pytest.raises(ValueError, match="sigma"):
        nmi(x, x, sigma=0)


# --- barrier --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_barrier_value_and_gradient_on_both_sides(tau):
    eps = 0.01
    z = torch.tensor([-5.0, -0.5, 0.0, eps / 2, eps, 0.2, 0.7], dtype=torch.float64)
    value_in = (z + tau).requires_grad_()
    value = nmi_barrier(value_in, tau, eps)
    (grad,) = torch.autograd.grad(value.sum(), value_in)
    below = z < eps
    expected = torch.where(below, -math.log(eps) - (z - eps) / eps, -torch.log(z.clamp_min(eps)))
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, torch.where(below, torch.full_like(z, -1 / eps), -1 / z.clamp_min(eps)))
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()


def test_barrier_is_continuous_at_eps_and_decreasing():
    eps, tau = 0.01, 0.1
    at = nmi_barrier(torch.tensor(tau + eps, dtype=torch.float64), tau, eps).item()
    assert at == pytest.approx(-math.log(eps))
    for h in (1e-6, 1e-9):
        left = nmi_barrier(torch.tensor(tau + eps - h, dtype=torch.float64), tau, eps).item()
        right = nmi_barrier(torch.tensor(tau + eps + h, dtype=torch.float64), tau, eps).item()
        assert abs(left - at) < 2 * h / eps and abs(right - at) < 2 * h / eps
    values = nmi_barrier(torch.linspace(-1, 1, 401, dtype=torch.float64), tau, eps)
    assert (values.diff() < 0).all()


def test_barrier_module_wraps_functional_and_survives_constant_images():
    torch.manual_seed(0)
    warped = torch.rand(2, 1, 6, 7, requires_grad=True)
    fixed = torch.rand(2, 1, 6, 7)
    loss = NMIBarrierLoss(tau=0.05, eps=0.02, bins=16)(warped, fixed)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, nmi_barrier(nmi(warped, fixed, bins=16), 0.05, 0.02).mean())
    # NMI with a constant image is 0 = tau: the barrier is finite and so is its gradient.
    loss = NMIBarrierLoss()(warped, torch.ones_like(fixed))
    (grad,) = torch.autograd.grad(loss, warped)
    assert loss.item() == pytest.approx(-math.log(0.01) + 1, abs=1e-4)
    assert torch.isfinite(grad).all()


def test_plain_nmi_loss_is_one_minus_nmi():
    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 6, 7), torch.rand(2, 1, 6, 7)
    mask = torch.ones(1, 1, 6, 7)
    torch.testing.assert_close(NMILoss(bins=8)(a, b, mask), (1 - nmi(a, b, bins=8)).mean())


def test_barrier_descent_recovers_a_translation_across_modalities():
    shape, true_shift = (24, 24), torch.tensor([1.5, -1.0], dtype=torch.float64)
    fixed = smooth_image(shape)
    # Moving: the fixed anatomy displaced by +true_shift, in another "modality" (non-monotone remap).
    moving = (smooth_image(shape, centre=true_shift.tolist()) - 0.35) ** 2
    shift = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    loss_fn = NMIBarrierLoss()
    optimiser = torch.optim.Adam([shift], lr=0.1)
    initial_error = (shift - true_shift).norm().item()
    for _ in range(40):
        ddf = shift.view(1, 2, 1, 1).expand(1, 2, *shape)
        # Border padding: zeros would bring in an intensity the moving background never has.
        loss = loss_fn(warp(moving, ddf, padding="border"), fixed)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert (shift - true_shift).norm().item() < 0.25 * initial_error
