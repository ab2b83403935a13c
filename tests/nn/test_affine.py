import torch

from innreg.nn import warp
from innreg.nn.affine import AffineNet
from innreg.nn.registration import RegistrationNet
from innreg.core.warp import compose


def test_affine_net_starts_at_identity_and_is_orientation_preserving():
    net = AffineNet(dim=3)
    a, t = net(torch.rand(2, 1, 9, 10, 11), torch.rand(2, 1, 9, 10, 11))
    assert torch.allclose(a, torch.eye(3).expand(2, 3, 3)) and torch.all(t == 0)
    with torch.no_grad():
        net.head.bias.normal_(0, 0.5)
    a, _ = net(torch.rand(1, 1, 9, 10, 11), torch.rand(1, 1, 9, 10, 11))
    assert torch.linalg.det(a).item() > 0


def test_registration_with_affine_stage_recovers_a_shift_after_training():
    torch.manual_seed(0)
    x = torch.zeros(1, 1, 32, 32)
    x[..., 10:22, 8:20] = 1.0
    fixed = warp(x, torch.full((1, 2, 32, 32), 2.0))  # content moves by -2 voxels on both axes
    net = RegistrationNet(dim=2, encoder=(8, 8), decoder=(8, 8, 8), affine=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        out = net(x, fixed, with_inverse=False)
        loss = ((warp(x, out.ddf) - fixed) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = net(x, fixed)
    assert ((warp(x, out.ddf) - fixed) ** 2).mean() < 0.25 * ((x - fixed) ** 2).mean()
    assert out.affine is not None and out.local_ddf.shape == out.ddf.shape
    # inverse_ddf undoes ddf inside the image
    roundtrip = compose(out.inverse_ddf, out.ddf)
    assert roundtrip[..., 4:-4, 4:-4].abs().max() < 0.2
