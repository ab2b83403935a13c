import pytest

from innreg.config import Config, RegLossKind, TranslatorKind
from innreg.errors import InnregInputError


def test_round_trip_and_partial_update(tmp_path):
    cfg = Config()
    assert Config.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "c.yaml"
    path.write_text("model: {translator: resnet}\nloss: {reg_loss: nmi, tau: 0.1}\n")
    loaded = Config.from_yaml(path)
    assert loaded.model.translator is TranslatorKind.RESNET and loaded.loss.reg_loss is RegLossKind.NMI
    assert loaded.train == Config().train
    assert cfg.updated(train={"steps": 7}).train.steps == 7


@pytest.mark.parametrize(
    "text, needle",
    [
        ("model: {translator: vae}\n", "model.translator"),
        ("optim: {}\n", "unknown section"),
        ("train: {stepz: 3}\n", "stepz"),
        ("model: {dim: 4}\n", "dim"),
        ("model: [1, 2\n", "not valid YAML"),
        ("refine: {factors: [4, 2], steps: [10]}\n", "one entry per level"),
        ("refine: {grid_factor: 0}\n", "grid_factor"),
        ("refine: {step_size: 0}\n", "step_size"),
        ("refine: {smooth_sigma: -1}\n", "smooth_sigma"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InnregInputError, match=needle) as err:
        Config.from_yaml(path)
    assert "bad.yaml" in str(err.value)


def test_refine_section_round_trips_and_old_files_get_its_defaults():
    cfg = Config().updated(refine={"enabled": False, "init": "network", "steps": [5, 5, 5, 5]})
    assert Config.from_dict(cfg.to_dict()) == cfg and cfg.refine.steps == (5, 5, 5, 5)
    # A model.pt written before the section existed loads with the default (refinement on).
    old = {k: v for k, v in Config().to_dict().items() if k != "refine"}
    assert Config.from_dict(old).refine.enabled
