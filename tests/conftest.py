"""Suite-wide settings and shared fixtures: one torch thread (fast when another process shares the
CPU), deterministic ANTs, a tiny labelled phantom data set and a small network config."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from innreg.config import Config
from innreg.data import generate_phantom_dataset

torch.set_num_threads(1)
# ANTs samples its affine metric at random and its multi-threaded sums differ run to run: fix the
# seed and use one ITK thread (read when ANTs first runs), so its tests give the same result every time.
os.environ.setdefault("ANTS_RANDOM_SEED", "1")
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

TINY = {
    "model": {
        "inn_blocks": 2, "inn_hidden": 8, "resnet_channels": 8, "resnet_blocks": 1,
        "unet_encoder": [8, 8], "unet_decoder": [8, 8, 8], "disc_channels": 8, "disc_layers": 2,
    },
    "train": {"batch_size": 1, "device": "cpu"},
}  # fmt: skip


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> dict[str, Path]:
    """4 T2 -> T1 phantom pairs of 32x32 with labels and true fields: 2 train, 2 test."""
    out = tmp_path_factory.mktemp("phantom") / "data"
    return generate_phantom_dataset(out, n=4, dim=2, size=(32, 32), seed=0, test_fraction=0.5, progress=False)


@pytest.fixture
def mixed_size_records(phantom, tmp_path) -> list:
    """The phantom's two training pairs as records, the second cropped to 32x24: two image sizes."""
    import nibabel as nib

    from innreg.data import read_manifest
    from innreg.data.pairs import PairRecord

    records = read_manifest(phantom["train"])
    cropped = {}
    for role in ("moving", "fixed"):
        image = nib.load(getattr(records[1], role))
        cropped[role] = tmp_path / f"cropped_{role}.nii.gz"
        nib.save(nib.Nifti1Image(image.get_fdata()[:, :24], image.affine), cropped[role])
    return [PairRecord(records[0].moving, records[0].fixed), PairRecord(**cropped)]


@pytest.fixture(scope="session")
def torchrun():
    """``torchrun(*train_args, nproc=2)``: ``torchrun --standalone -m innreg train`` with this checkout's
    ``src`` first on the path, one CPU thread per process; returns the completed process."""
    import shutil
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[1] / "src"
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}

    def run(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
        cmd = [launcher, "--standalone", f"--nproc_per_node={nproc}", "-m", "innreg", "train", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)

    return run


@pytest.fixture(scope="session")
def group_ends():
    """``group_ends(pgid, seconds=20)``: whether every process of the process group ``pgid`` has ended within
    ``seconds`` (a stopped command's workers must not outlive it)."""
    import time

    def ends(pgid: int, seconds: float = 20) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    return ends


@pytest.fixture
def tiny_config() -> Config:
    return Config.from_dict(TINY)


@pytest.fixture(scope="session")
def tiny_dict() -> dict:
    """The tiny config as a plain nested dict (e.g. to write a YAML config file)."""
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture
def lose_a_stop():
    """``lose_a_stop()`` sends this process SIGTERM from inside a finalizer, where Python prints and drops the
    exception that :func:`innreg.errors.stop_signals_interrupt`'s handler raises: the stop a run could miss.
    POSIX only."""

    class SignalsWhenDropped:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)

    def lose() -> None:
        SignalsWhenDropped()

    return lose
