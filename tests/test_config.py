import pytest

from innreg.config import Config, RegLossKind, TranslatorKind, refine_overrides_from_yaml
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


@pytest.mark.parametrize(
    "text, needle",
    [
        # Values that used to pass the reading and fail later with a traceback.
        ("train: {lr: .nan}\n", r"train\.lr: invalid value nan \(expected a finite number\)"),
        ("loss: {w_smooth: .inf}\n", r"loss\.w_smooth: invalid value inf \(expected a finite number\)"),
        ("refine: {smooth_sigma: .nan}\n", r"refine\.smooth_sigma: invalid value nan"),
        ("model: {unet_encoder: []}\n", r"model\.unet_encoder: invalid value \[\] \(expected at least one entry\)"),
        ("model: {unet_decoder: [4, 0, 4, 4, 4]}\n", r"model\.unet_decoder: entries must be >= 1"),
        ("model: {unet_encoder: [4, 4, 4], unet_decoder: [4, 4]}\n", r"model\.unet_decoder: needs at least one entry"),
        ("model: {inn_hidden: -8}\n", r"model\.inn_hidden: must be >= 1, got -8"),
        ("model: {inn_blocks: 0}\n", r"model\.inn_blocks: must be >= 1"),
        ("model: {resnet_channels: 0}\n", r"model\.resnet_channels: must be >= 1"),
        ("model: {ddc_kernel: 4}\n", r"model\.ddc_kernel: must be odd"),
        ("model: {clamp: 0}\n", r"model\.clamp: must be > 0"),
        ("train: {disc_layers: 0}\n", r"train\.disc_layers: must be >= 1"),
        ("train: {betas: [0.9]}\n", r"train\.betas: invalid value \[0\.9\] \(expected 2 entries\)"),
        ("train: {betas: [1.0, 0.999]}\n", r"train\.betas: entries must be < 1"),
        ("loss: {nmi_bins: 1}\n", r"loss\.nmi_bins: must be >= 2"),
        ("refine: {affine_factors: [4], affine_steps: [3, 3]}\n", "affine_factors and affine_steps need one entry"),
        # YAML booleans and fractions are not silently made integers (true was 1, 2.5 was 2).
        ("train: {steps: true}\n", r"train\.steps: invalid value True \(expected a number, not true/false\)"),
        ("train: {lr: false}\n", r"train\.lr: invalid value False"),
        ("train: {steps: 2.5}\n", r"train\.steps: invalid value 2\.5 \(expected an integer\)"),
        ("refine: {steps: [20, 15, 10.5, 5]}\n", r"refine\.steps: invalid value .* \(expected an integer\)"),
        ("train: {device: 5}\n", r"train\.device: invalid value 5 \(expected a string\)"),
        ("1: {}\nmodel: {}\n", r"unknown section\(s\) \['1'\]"),
    ],
)
def test_bad_values_are_refused_when_the_config_is_read(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InnregInputError, match=needle) as err:
        Config.from_yaml(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_integral_values_and_zero_where_it_means_off_are_kept(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("train: {steps: 5.0, lr: 1}\nmodel: {inn_latent: 0, affine_hidden: 0}\nrefine: {remap_bins: 0}\n")
    config = Config.from_yaml(path)
    assert config.train.steps == 5 and isinstance(config.train.steps, int)
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert (config.model.inn_latent, config.model.affine_hidden, config.refine.remap_bins) == (0, 0, 0)


def test_a_config_file_that_is_not_utf8_text_names_the_file(tmp_path):
    path = tmp_path / "random.yaml"
    path.write_bytes(bytes(range(128, 256)) * 4)
    for read in (Config.from_yaml, refine_overrides_from_yaml):
        with pytest.raises(InnregInputError, match="not a UTF-8 text file") as err:
            read(path)
        assert str(err.value).startswith(f"{path}: ")
