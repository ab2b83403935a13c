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
        ("model: {cascades: 0}\n", "model.cascades"),
        ("model: {inn_latent: -1}\n", "model.inn_latent"),
        ("model: {dim: 3, guide_slices: true}\n", "model.guide_slices: needs dim 3 and a guide"),
        ("model: {guide: inn, guide_slices: true}\n", "model.guide_slices: needs dim 3 and a guide"),
        ("model: {affine_slope: -0.2}\n", "affine_slope"),
        ("train: {disc_blur: -1}\n", "train.disc_blur"),
        ("train: {translator_inverse_l1: -0.5}\n", "train.translator_inverse_l1"),
        ("train: {translator_inverse_smoothing: -1}\n", "train.translator_inverse_smoothing"),
        ("train: {data_workers: -1}\n", "train.data_workers"),
        ("train: {checkpoint_every: 0}\n", "checkpoint_every"),
        ("train: {batch_size: 0}\n", "batch_size"),
        ("train: {steps: -3}\n", "steps"),
        ("train: {lr: 0}\n", "lr"),
        ("train: {distil_steps: -1}\n", "train.distil_steps"),
        ("model: [1, 2\n", "not valid YAML"),
        ("refine: {factors: [4, 2], steps: [10]}\n", "one entry per level"),
        ("refine: {grid_factor: 0}\n", "grid_factor"),
        ("refine: {step_size: 0}\n", "step_size"),
        ("refine: {smooth_sigma: -1}\n", "smooth_sigma"),
        ("refine: {inverse_weight: -1}\n", "inverse_weight"),
        ("refine: {inverse_factor: 0}\n", "inverse_factor"),
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


def test_discriminator_size_moved_from_model_to_train_loads_from_old_files(tmp_path):
    # Older YAML files and model files kept disc_* in the model section: they are moved to train.
    path = tmp_path / "old.yaml"
    path.write_text("model: {disc_channels: 8, disc_layers: 2, inn_blocks: 2}\n")
    loaded = Config.from_yaml(path)
    assert (loaded.train.disc_channels, loaded.train.disc_layers, loaded.model.inn_blocks) == (8, 2, 2)
    assert not hasattr(loaded.model, "disc_channels")
    assert Config().updated(model={"disc_layers": 5}).train.disc_layers == 5
    based = Config.from_yaml(path, base=Config().updated(train={"steps": 3}))
    assert (based.train.disc_channels, based.train.steps) == (8, 3)


def test_discriminator_size_in_both_sections_is_refused(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("model: {disc_channels: 8}\ntrain: {disc_channels: 16}\n")
    with pytest.raises(InnregInputError, match="both.yaml: disc_channels is set in both model and train"):
        Config.from_yaml(path)
