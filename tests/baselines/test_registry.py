from __future__ import annotations

import numpy as np
import pytest

from innreg.baselines import METHODS, TRAINED_METHODS, IdentityMethod, make_method
from innreg.baselines.configured import ConfiguredMethod
from innreg.config import Config, RegInput, RegLossKind, SubnetKind, TranslatorKind
from innreg.errors import InnregInputError

EXPECTED = {
    "identity", "ants-syn", "ants-syn-cc", "innreg", "innreg-no-refine", "innreg-no-inn", "innreg-no-ddc", "innreg-no-barrier",
    "innreg-no-translation", "voxelmorph-nmi", "reggan", "cyclegan-voxelmorph", "greedy", "elastix", "convexadam",
}  # fmt: skip
PEERS = {"ants-syn", "ants-syn-cc", "greedy", "elastix", "convexadam"}  # optional packages; tested in test_ants.py, test_peers.py


def test_registry_names():
    assert set(METHODS) == EXPECTED
    assert TRAINED_METHODS == EXPECTED - {"identity"} - PEERS


@pytest.mark.parametrize("name", sorted(EXPECTED - PEERS))
def test_make_method_builds_each(name):
    method = make_method(name, dim=2)
    assert method.name == name
    assert method.trains == (name in TRAINED_METHODS)
    assert make_method(name, dim=3).dim == 3


def test_make_method_rejects_unknown_names_and_dims():
    with pytest.raises(InnregInputError, match="unknown method 'nosuch'"):
        make_method("nosuch")
    with pytest.raises(InnregInputError, match="--dim"):
        make_method("identity", dim=4)


def test_identity_returns_zero_field_and_unchanged_images():
    rng = np.random.default_rng(0)
    moving, fixed = rng.random((12, 14)) * 100, rng.random((12, 14))
    seg = rng.integers(0, 4, (12, 14)).astype(np.uint8)
    result = IdentityMethod(dim=2).register(moving, fixed, seg)
    assert result.ddf.shape == (2, 12, 14) and not result.ddf.any() and not result.inverse_ddf.any()
    np.testing.assert_allclose(result.warped, moving, rtol=1e-6)
    np.testing.assert_array_equal(result.warped_seg, seg)
    assert result.warped_seg.dtype == np.uint8
    assert 0.0 <= result.translated.min() and result.translated.max() <= 1.0
    assert result.seconds >= 0.0


def test_identity_checks_the_pair():
    with pytest.raises(InnregInputError, match="differ in shape"):
        IdentityMethod(dim=2).register(np.zeros((12, 14)), np.zeros((12, 15)))
    with pytest.raises(InnregInputError, match="registers 3D images"):
        IdentityMethod(dim=3).register(np.zeros((12, 14)), np.zeros((12, 14)))


def test_variant_switches():
    def switches(name):
        c = make_method(name).config
        return (TranslatorKind(c.model.translator), SubnetKind(c.model.subnet), RegLossKind(c.loss.reg_loss),
                RegInput(c.model.reg_input), c.model.diffeomorphic)  # fmt: skip

    inn, res, none = TranslatorKind.INN, TranslatorKind.RESNET, TranslatorKind.NONE
    ddc, conv = SubnetKind.DDC, SubnetKind.CONV
    bar, nmi = RegLossKind.BARRIER, RegLossKind.NMI
    tr, raw = RegInput.TRANSLATED, RegInput.RAW
    assert switches("innreg") == (inn, ddc, bar, tr, True)
    assert switches("innreg-no-refine") == (inn, ddc, bar, tr, True)
    assert switches("innreg-no-inn") == (res, ddc, bar, tr, True)
    assert switches("innreg-no-ddc") == (inn, conv, bar, tr, True)
    assert switches("innreg-no-barrier") == (inn, ddc, nmi, tr, True)
    assert switches("innreg-no-translation") == (none, ddc, bar, raw, True)
    assert switches("voxelmorph-nmi") == (none, ddc, nmi, raw, True)
    assert switches("reggan") == (res, ddc, bar, tr, False)
    reggan = make_method("reggan").config
    assert (reggan.loss.w_sim, reggan.loss.w_l1, reggan.loss.w_smooth, reggan.loss.w_adv) == (0.0, 20.0, 10.0, 1.0)
    assert reggan.train.lr == pytest.approx(1e-4)
    # Only the full method refines per pair; ablations and baselines are networks alone.
    assert {name for name in EXPECTED - {"identity"} - PEERS if make_method(name).config.refine.enabled} == {"innreg"}


def test_base_config_keeps_sizes_but_not_switches():
    base = Config.from_dict({"model": {"translator": "none", "inn_blocks": 3}, "loss": {"reg_loss": "nmi"}, "train": {"seed": 7}})
    method = make_method("innreg", dim=3, config=base)
    assert isinstance(method, ConfiguredMethod)
    c = method.config
    assert TranslatorKind(c.model.translator) is TranslatorKind.INN and RegLossKind(c.loss.reg_loss) is RegLossKind.BARRIER
    assert (c.model.inn_blocks, c.model.dim, c.train.seed) == (3, 3, 7)
    assert make_method("identity", config=base).name == "identity"  # ignored by methods that do not train


def test_configured_method_must_be_fitted_first():
    with pytest.raises(RuntimeError, match="fit"):
        make_method("innreg").register(np.zeros((8, 8)), np.zeros((8, 8)))
