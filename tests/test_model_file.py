"""model.pt has one owner: written atomically, read with a format check, older files upgraded."""

import pytest
import torch

import innreg

from innreg.config import Config
from innreg.errors import InnregInputError
from innreg.model import INNReg
from innreg.model_file import MODEL_FORMAT, read_model, save_model

TINY = {"model": {"inn_blocks": 1, "inn_hidden": 4, "unet_encoder": [4, 4], "unet_decoder": [4, 4, 4]}}


@pytest.fixture
def saved(tmp_path):
    config = Config.from_dict(TINY).updated(train={"disc_channels": 6, "steps": 3})
    torch.manual_seed(0)
    model = INNReg(config.model)
    path = tmp_path / "model.pt"
    save_model(model, config, path, {"steps": 3})
    return path, model, config


def test_round_trip_restores_config_weights_and_info(saved):
    path, model, config = saved
    loaded = read_model(path)
    versions = {"innreg_version": innreg.__version__, "torch_version": str(torch.__version__)}
    assert loaded.config == config and loaded.info == {**versions, "steps": 3}
    network = loaded.network()
    for name, value in model.state_dict().items():
        assert torch.equal(network.state_dict()[name], value), name
    assert list(path.parent.iterdir()) == [path], "no temporary file left beside model.pt"


def test_round_trip_keeps_a_guide(tmp_path):
    config = Config.from_dict(TINY).updated(model={"guide": "unet"})
    torch.manual_seed(0)
    model = INNReg(config.model)
    save_model(model, config, tmp_path / "model.pt", {})
    network = read_model(tmp_path / "model.pt").network()
    assert network.guide is not None
    for name, value in model.guide.state_dict().items():
        assert torch.equal(network.guide.state_dict()[name], value), name


def test_round_trip_keeps_the_translators_latent_channels(tmp_path):
    config = Config.from_dict(TINY).updated(model={"inn_latent": 1})
    torch.manual_seed(0)
    model = INNReg(config.model)
    save_model(model, config, tmp_path / "model.pt", {})
    network = read_model(tmp_path / "model.pt").network()
    assert network.translator.latent_channels == 1
    x = torch.rand(1, 1, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(network.translator(x), model.translator(x))


def test_old_file_with_discriminator_size_in_model_section_loads(saved, tmp_path):
    path, _, config = saved
    ckpt = torch.load(path, weights_only=False)
    ckpt["config"]["model"]["disc_channels"] = ckpt["config"]["train"].pop("disc_channels")
    ckpt["config"]["model"]["disc_layers"] = ckpt["config"]["train"].pop("disc_layers")
    torch.save(ckpt, tmp_path / "old.pt")
    assert read_model(tmp_path / "old.pt").config == config


def test_old_file_without_affine_head_keys_loads_the_global_pooling_head(tmp_path):
    config = Config.from_dict(TINY).updated(model={"affine_pool": 1, "affine_hidden": 0})
    torch.manual_seed(0)
    model = INNReg(config.model)
    with torch.no_grad():
        model.registration.affine.head.weight.normal_(0, 0.1)
    save_model(model, config, tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=False)
    del ckpt["config"]["model"]["affine_pool"], ckpt["config"]["model"]["affine_hidden"]
    torch.save(ckpt, tmp_path / "old.pt")
    loaded = read_model(tmp_path / "old.pt")
    assert loaded.config == config
    network = loaded.network()  # the old weights fit: a linear head on globally pooled features
    assert network.registration.affine.head.in_features == 32
    x = torch.rand(1, 1, 32, 32)
    matrix, translation = network.registration.affine(x, x)
    assert translation.abs().max() > 0 and torch.equal(matrix, model.registration.affine(x, x)[0])


def test_old_file_without_cascades_loads_one_unet_pass(tmp_path):
    config = Config.from_dict(TINY).updated(model={"cascades": 1})
    torch.manual_seed(0)
    model = INNReg(config.model)
    save_model(model, config, tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=False)
    del ckpt["config"]["model"]["cascades"]
    torch.save(ckpt, tmp_path / "old.pt")
    loaded = read_model(tmp_path / "old.pt")
    assert loaded.config == config and Config().model.cascades == 2
    network = loaded.network()  # strict load: the file's single pass, no further passes expected
    assert len(network.registration.cascade) == 0


@pytest.mark.parametrize(
    "content, needle",
    [
        ({"format": "innreg-model/7", "config": {}, "state_dict": {}}, "model format innreg-model/7 is not readable"),
        ({"format": "something-else/1"}, f"not an innreg model file \\(expected {MODEL_FORMAT}\\)"),
        ([1, 2, 3], "not an innreg model file"),
    ],
)
def test_foreign_or_newer_files_give_one_clear_line(tmp_path, content, needle):
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(InnregInputError, match=needle) as err:
        read_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_truncated_files(tmp_path, saved):
    with pytest.raises(InnregInputError, match="model file not found"):
        read_model(tmp_path / "none.pt")
    path = saved[0]
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(InnregInputError, match="cannot read model"):
        read_model(tmp_path / "cut.pt")


@pytest.mark.parametrize(
    ("key", "old"),
    [("reference_spacing", 0.0), ("mind_presmooth", 0.0), ("inverse_weight", 0.0), ("inverse_factor", 1)],
)
def test_old_file_without_a_refine_key_keeps_the_refinement_it_had(saved, tmp_path, key, old):
    # Before reference_spacing: voxel units; before mind_presmooth: unsmoothed MIND; before
    # inverse_weight: no channel of the translator's inverse; before inverse_factor: the inverse at the
    # working resolution.
    path, _, config = saved
    assert getattr(config.refine, key) != old
    ckpt = torch.load(path, weights_only=False)
    del ckpt["config"]["refine"][key]  # as files from before the key
    torch.save(ckpt, tmp_path / "old.pt")
    assert getattr(read_model(tmp_path / "old.pt").config.refine, key) == old


def test_old_file_without_inn_latent_loads_a_translator_without_latent_channels(tmp_path):
    config = Config.from_dict(TINY).updated(model={"inn_latent": 0})
    assert Config().model.inn_latent == 1
    torch.manual_seed(0)
    model = INNReg(config.model)
    save_model(model, config, tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=False)
    del ckpt["config"]["model"]["inn_latent"]  # as files from before the key
    torch.save(ckpt, tmp_path / "old.pt")
    network = read_model(tmp_path / "old.pt").network()
    assert network.translator.latent_channels == 0
    for name, value in model.state_dict().items():
        assert torch.equal(network.state_dict()[name], value), name


def test_old_file_without_affine_slope_loads_plain_relu_units(tmp_path):
    config = Config.from_dict(TINY).updated(model={"affine_slope": 0.0})
    torch.manual_seed(0)
    model = INNReg(config.model)
    with torch.no_grad():  # a head whose units are negative for some inputs: ReLU and leaky ReLU differ
        model.registration.affine.head[0].bias.normal_(0, 1)
        model.registration.affine.head[-1].weight.normal_(0, 0.1)
    save_model(model, config, tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=False)
    del ckpt["config"]["model"]["affine_slope"]
    torch.save(ckpt, tmp_path / "old.pt")
    loaded = read_model(tmp_path / "old.pt")
    assert loaded.config == config and loaded.config.model.affine_slope == 0.0
    x, y = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    leaky = INNReg(config.updated(model={"affine_slope": 0.2}).model)
    leaky.load_state_dict(model.state_dict())
    old = loaded.network().registration.affine(x, y)[1]
    assert torch.equal(old, model.registration.affine(x, y)[1])
    assert not torch.allclose(old, leaky.registration.affine(x, y)[1])


def test_old_file_without_hu_curve_keeps_percentiles_for_ct_in_hu(tmp_path):
    config = Config.from_dict(TINY).updated(model={"hu_curve": False})
    assert Config().model.hu_curve
    save_model(INNReg(config.model), config, tmp_path / "model.pt")
    ckpt = torch.load(tmp_path / "model.pt", weights_only=False)
    del ckpt["config"]["model"]["hu_curve"]  # as files from before the key
    torch.save(ckpt, tmp_path / "old.pt")
    assert read_model(tmp_path / "old.pt").config == config


def _edited_copy(source, edit, path):
    """A copy of the model file ``source`` at ``path`` with ``edit`` applied to its contents."""
    ckpt = torch.load(source, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    "edit, needle",
    [
        # A config edited after training: the weights no longer fit the network it describes.
        (lambda ckpt: ckpt["config"]["model"].update(inn_hidden=8), r"translator\..* has shape \("),
        (lambda ckpt: ckpt["config"]["model"].update(dim=3), r"has shape \("),
        (lambda ckpt: ckpt["config"]["model"].update(cascades=3), r"registration\.cascade\.1\..* missing"),
        (lambda ckpt: ckpt["state_dict"].update(extra=torch.zeros(1)), "extra is not in the config's network"),
    ],
)
def test_weights_that_do_not_fit_the_config_give_one_clear_line(saved, tmp_path, edit, needle):
    path = _edited_copy(saved[0], edit, tmp_path / "edited.pt")
    with pytest.raises(InnregInputError, match=needle) as err:
        read_model(path).network()
    message = str(err.value)
    assert message.startswith(f"{path}: weights do not match the model its config describes (") and "\n" not in message


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda ckpt: ckpt.pop("config"), "model file without config"),
        (lambda ckpt: ckpt.pop("state_dict"), "model file without state_dict"),
        (lambda ckpt: ckpt.update(config=[1, 2]), "config: expected a mapping"),
        (lambda ckpt: ckpt["config"].update(model="inn"), "config: expected a mapping"),
        (lambda ckpt: ckpt.update(state_dict=None), "state_dict: expected a mapping"),
        (lambda ckpt: ckpt["config"]["train"].update(lr=float("nan")), r"train\.lr: invalid value nan"),
    ],
)
def test_a_file_of_this_format_without_its_parts_gives_one_clear_line(saved, tmp_path, edit, needle):
    path = _edited_copy(saved[0], edit, tmp_path / "damaged.pt")
    with pytest.raises(InnregInputError, match=needle) as err:
        read_model(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


class _RunsCode:
    """An object whose unpickling would call a function: a model file from an untrusted source."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_a_file_holding_other_objects_is_refused_without_running_them(tmp_path, capsys):
    path = tmp_path / "model.pt"
    torch.save({"format": MODEL_FORMAT, "config": {}, "state_dict": {}, "info": {"note": _RunsCode()}}, path)
    with pytest.raises(InnregInputError, match="not a plain model file"):
        read_model(path)
    assert "unpickled code ran" not in capsys.readouterr().out


def test_weights_with_nan_are_refused_as_a_diverged_training(saved, tmp_path):
    name = next(k for k, v in saved[1].state_dict().items() if v.is_floating_point())
    path = _edited_copy(saved[0], lambda ckpt: ckpt["state_dict"][name].fill_(float("nan")), tmp_path / "nan.pt")
    with pytest.raises(InnregInputError, match=f"{name} holds NaN or infinite values"):
        read_model(path).network()
