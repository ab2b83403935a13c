"""The peer methods (Greedy, elastix, ConvexAdam): better than identity on an easy phantom pair, and
their displacement fields in innreg's convention (checked by warping with innreg's own warp and
comparing with the peer's own resampling)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from innreg.baselines import make_method
from innreg.data import generate_phantom_dataset, load_pair, read_manifest, voxel_spacing
from innreg.errors import InnregInputError
from innreg.evaluation import overlap_metrics
from innreg.nn import warp

PACKAGES = {"greedy": "picsl_greedy", "elastix": "itk", "convexadam": "convexAdam"}


def _needs(name: str):
    return pytest.mark.skipif(
        importlib.util.find_spec(PACKAGES[name]) is None, reason=f"{name}: its package {PACKAGES[name]} is not installed"
    )


def _pair(tmp_path_factory, dim: int, size: tuple[int, ...]):
    out = tmp_path_factory.mktemp(f"peers{dim}d") / "data"
    paths = generate_phantom_dataset(out, n=2, dim=dim, size=size, seed=1, test_fraction=0.5, progress=False)
    return load_pair(read_manifest(paths["test"])[0])


@pytest.fixture(scope="module")
def pair2d(tmp_path_factory):
    return _pair(tmp_path_factory, 2, (96, 80))


@pytest.fixture(scope="module")
def pair3d(tmp_path_factory):
    return _pair(tmp_path_factory, 3, (48, 48, 48))


def _pull(array: np.ndarray, ddf: np.ndarray, mode: str) -> np.ndarray:
    out = warp(torch.from_numpy(array.astype(np.float32))[None, None], torch.from_numpy(ddf)[None], mode=mode)
    return out[0, 0].numpy()


def _check(name: str, pair, dim: int, own_resampling: bool, min_gain: float | None = 0.1) -> None:
    """Register ``pair`` with ``name``: Dice at least ``min_gain`` above the identity (``None``: not
    checked), fields and resampling consistent."""
    moving, fixed, moving_seg, fixed_seg = pair
    result = make_method(name, dim=dim).register(moving.array, fixed.array, moving_seg.array)
    spacing = voxel_spacing(fixed)
    dice = overlap_metrics(result.warped_seg, fixed_seg.array, spacing).dice_mean
    identity = overlap_metrics(moving_seg.array, fixed_seg.array, spacing).dice_mean
    assert min_gain is None or dice > identity + min_gain, f"{name}: Dice {dice:.3f} vs identity {identity:.3f}"
    assert result.ddf.shape == result.inverse_ddf.shape == (dim, *fixed.shape)
    assert result.warped_seg.dtype == moving_seg.array.dtype
    assert set(np.unique(result.warped_seg)) <= set(np.unique(moving_seg.array))
    if own_resampling:
        # The peer resampled with its own transform; innreg's warp with the exported ddf must agree.
        assert (_pull(moving_seg.array, result.ddf, "nearest") == result.warped_seg).mean() > 0.98
        assert np.corrcoef(_pull(moving.array, result.ddf, "bilinear").ravel(), result.warped.ravel())[0, 1] > 0.99
    # The inverse maps the warped labels back onto the moving labels.
    back = _pull(result.warped_seg, result.inverse_ddf, "nearest")
    interior = np.zeros_like(back, dtype=bool)
    interior[(slice(4, -4),) * dim] = True  # the border may map from outside the fixed grid
    assert (back == moving_seg.array)[interior].mean() > 0.9
    assert result.seconds > 0


@_needs("greedy")
def test_greedy_beats_identity_with_fields_in_innreg_convention(pair2d):
    _check("greedy", pair2d, 2, own_resampling=True)


class _Stop(Exception):
    pass


@_needs("greedy")
def test_greedy_takes_itks_thread_setting_and_one_thread_without_one(pair2d, monkeypatch):
    from innreg.threads import ITK_THREADS_VARIABLE

    commands = []

    class Recorder:
        def execute(self, command, **images):
            commands.append(command)
            raise _Stop  # the command line is all this test needs

    method = make_method("greedy", dim=2)
    monkeypatch.setattr(method, "greedy", SimpleNamespace(Greedy2D=Recorder))
    for value, expected in (("3", "-threads 3 "), (None, "-threads 1 ")):
        if value is None:
            monkeypatch.delenv(ITK_THREADS_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(ITK_THREADS_VARIABLE, value)
        with pytest.raises(_Stop):
            method.register(pair2d[0].array, pair2d[1].array)
        assert expected in commands[-1]


@_needs("greedy")
def test_greedy_starts_the_deformable_stage_from_the_last_sane_linear_stage(pair2d, monkeypatch):
    """With every linear stage judged run off, Greedy registers from the identity (no Dice gain asked:
    this pair's head motion needs the linear stages), and its fields and resampling stay consistent,
    so every chain leaves the linear transform out."""
    import innreg.baselines.greedy as greedy

    monkeypatch.setattr(greedy, "plausible_affine", lambda matrix, shape: False)
    _check("greedy", pair2d, 2, own_resampling=True, min_gain=None)


def test_greedy_plausible_affine_hand_cases():
    from innreg.baselines.greedy import plausible_affine

    shape = (224, 192)  # rows, columns: ITK x runs along the 192 columns
    centre = np.array([-(192 - 1) / 2, -(224 - 1) / 2])  # RAS negates ITK's x and y
    angle = np.deg2rad(10.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def affine(linear, shift):
        out = np.eye(3)
        out[:2, :2], out[:2, 2] = linear, shift
        return out

    assert plausible_affine(np.eye(3), shape)
    assert plausible_affine(affine(rotation, centre - rotation @ centre), shape)  # about the centre
    assert plausible_affine(affine(1.2 * np.eye(2), (8.0, -8.0)), shape)
    assert not plausible_affine(affine(np.eye(2), (0.0, 48.0)), shape)  # a quarter of 192 columns
    assert plausible_affine(affine(np.eye(2), (0.0, 47.0)), shape)
    assert not plausible_affine(affine([[2.93, -3.22], [-3.30, 20.51]], (-195.0, 464.0)), shape)  # the one seen
    assert not plausible_affine(affine([[0.4, 0.0], [0.0, 1.0]], (0.0, 0.0)), shape)  # shrinks an axis 2.5x
    assert not plausible_affine(affine([[-1.0, 0.0], [0.0, 1.0]], (0.0, 0.0)), shape)  # a flip
    assert not plausible_affine(affine(np.eye(2), (np.nan, 0.0)), shape)
    volume = np.eye(4)
    volume[2, 3] = 12.0
    assert plausible_affine(volume, (96, 128, 64)) and not plausible_affine(volume, (96, 128, 32))


@_needs("elastix")
def test_elastix_beats_identity_with_fields_in_innreg_convention(pair2d):
    _check("elastix", pair2d, 2, own_resampling=True)


@_needs("convexadam")
def test_convexadam_beats_identity_in_3d(pair3d):
    _check("convexadam", pair3d, 3, own_resampling=False)


@_needs("convexadam")
def test_convexadam_refuses_2d_with_a_clear_message():
    with pytest.raises(InnregInputError, match="3D volumes only"):
        make_method("convexadam", dim=2)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_missing_peer_package_is_a_clear_input_error(name, monkeypatch):
    import builtins

    real_import = builtins.__import__
    blocked = {"picsl_greedy", "SimpleITK", "itk", "convexAdam"}

    def no_peer(module, *args, **kwargs):
        if module.split(".")[0] in blocked:
            raise ImportError(f"No module named {module!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_peer)
    monkeypatch.setattr("importlib.import_module", lambda module: no_peer(module))
    with pytest.raises(InnregInputError, match=r"pip install 'innreg\[peers\]'"):
        make_method(name, dim=3)


def test_benchmark_smoke_with_the_peers(tmp_path_factory, tiny_dict, capsys):
    """``innreg benchmark --methods identity,ants-syn,greedy,elastix,innreg`` on tiny phantom pairs:
    a row per installed method, a clear 'not run' line per missing package."""
    import csv

    import yaml

    from innreg.cli import main

    root = tmp_path_factory.mktemp("bench_peers")
    paths = generate_phantom_dataset(root / "data", n=3, dim=2, size=(64, 64), seed=2, test_fraction=0.34, progress=False)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict))
    methods = ["identity", "ants-syn", "greedy", "elastix", "innreg"]
    status = main([
        "benchmark", "--train", str(paths["train"]), "--test", str(paths["test"]), "--out", str(root / "out"),
        "--methods", ",".join(methods), "--steps", "2", "--device", "cpu", "--config", str(config),
        "--in-process", "--quiet",
    ])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    with (root / "out" / "results.csv").open(newline="") as fh:
        rows = {row["method"]: row for row in csv.DictReader(fh)}
    text = (root / "out" / "results.md").read_text()
    packages = PACKAGES | {"ants-syn": "ants"}
    for name in methods:
        if name in packages and importlib.util.find_spec(packages[name]) is None:
            assert f"`{name}` not run: {name}: needs the" in text
            continue
        assert 0.0 < float(rows[name]["dice_mean"]) <= 1.0 and float(rows[name]["seconds_per_pair"]) > 0
    for peer in ("greedy", "elastix"):
        if peer in rows:
            assert float(rows[peer]["dice_mean"]) > float(rows["identity"]["dice_mean"]), rows
