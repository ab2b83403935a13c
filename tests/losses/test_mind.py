import pytest
import torch

from innreg.losses import mind_descriptor, mind_offsets


def test_offsets_are_eight_neighbours_in_2d_and_six_in_3d():
    assert len(mind_offsets(2)) == 8 and len(mind_offsets(3)) == 6
    assert (1, 0) in mind_offsets(2) and (1, 1) in mind_offsets(2)
    assert (0, 0, -1) in mind_offsets(3) and (1, 1, 0) not in mind_offsets(3)


def test_constant_image_gives_all_ones():
    out = mind_descriptor(torch.full((1, 1, 9, 10), 0.4))
    assert out.shape == (1, 8, 9, 10)
    torch.testing.assert_close(out, torch.ones_like(out))


def test_invariant_to_linear_intensity_maps_and_bounded():
    image = torch.rand(2, 1, 16, 18, generator=torch.Generator().manual_seed(0))
    a = mind_descriptor(image)
    b = mind_descriptor(3.0 - 2.5 * image)  # contrast inversion: the multi-modal case MIND is for
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert a.min() > 0 and torch.allclose(a.amax(dim=1), torch.ones(2, 16, 18))


def test_hand_computed_step_edge():
    # Step edge between columns 3 and 4, radius 0, dilation 1: at (row 2, column 3) only the offsets
    # that reach column 4 see a difference (1), so D = (0, 0, 0, 1, 0, 1, 0, 1) for the offset order
    # of mind_offsets, V = 3/8 and the descriptor is exp(-D / V): 1 for the same-side neighbours.
    image = torch.zeros(1, 1, 6, 8)
    image[..., 4:] = 1.0
    out = mind_descriptor(image, radius=0, dilation=1)[0, :, 2, 3]
    expected = torch.tensor([float(o[1] == 1) for o in mind_offsets(2)])
    torch.testing.assert_close(out, torch.exp(-expected / (expected.mean())))


def test_three_dimensional_and_bad_input():
    assert mind_descriptor(torch.rand(1, 1, 6, 7, 8)).shape == (1, 6, 6, 7, 8)
    with pytest.raises(ValueError, match="spatial"):
        mind_descriptor(torch.rand(1, 2, 6, 7))
    with pytest.raises(ValueError, match="dilation"):
        mind_descriptor(torch.rand(1, 1, 6, 7), dilation=0)


def test_same_values_with_and_without_autograd_and_differentiable():
    # Without autograd the quotients are taken in place (the refinement's path); with it, out of place.
    image = torch.rand(1, 1, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    image.requires_grad_(True)
    with torch.no_grad():
        registering = mind_descriptor(image)
    assert torch.equal(registering, mind_descriptor(image))
    assert torch.autograd.gradcheck(lambda x: mind_descriptor(x, radius=1, dilation=2), (image,))
