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
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InnregInputError, match=needle) as err:
        Config.from_yaml(path)
    assert "bad.yaml" in str(err.value)
