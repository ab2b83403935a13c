"""The CUDA paths on a GPU: field maths, the depthwise convolution's gradients and the INN agree with the
CPU, training runs in fp32, bf16 and fp16 (with the GPU's default data workers), a GPU-trained model loads
on a CPU, registration on the GPU matches the CPU's, 3D trains and registers, and torchrun trains with
NCCL. Skipped where CUDA is not available (CI has no GPU); ``benchmarks/gpu_check.sh`` runs them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from innreg.cli import main
from innreg.config import Config
from innreg.core import compose, integrate_velocity, invert_field, jacobian_determinant, warp
from innreg.data import load_pair, read_manifest
from innreg.inference import load_model
from innreg.metrics import dice_per_label, mean_ignore_nan
from innreg.model import build_translator
from innreg.warping import apply
from innreg.nn.ddc import depthwise_conv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("dim", [2, 3])
def test_field_maths_match_the_cpu(dim):
    gen = torch.Generator().manual_seed(dim)
    size = [12] * dim
    # A smooth velocity (coarse noise, upsampled): the inverse's fixed point is then well defined, and
    # the devices' rounding differences do not grow through it.
    coarse = torch.randn((1, dim, *([4] * dim)), generator=gen) * 1.5
    velocity = F.interpolate(coarse, size=size, mode="bilinear" if dim == 2 else "trilinear", align_corners=True)
    image = torch.rand((1, 1, *size), generator=gen)
    ops = {
        "integrate": lambda v, im: integrate_velocity(v),
        "warp": lambda v, im: warp(im, integrate_velocity(v)),
        "compose": lambda v, im: compose(v, integrate_velocity(v)),
        "invert": lambda v, im: invert_field(integrate_velocity(v)),
        "jacobian": lambda v, im: jacobian_determinant(integrate_velocity(v)),
    }
    for name, op in ops.items():
        cpu = op(velocity, image)
        gpu = op(velocity.cuda(), image.cuda())
        assert gpu.is_cuda, name
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("shape", [(2, 4, 9, 7), (2, 4, 6, 5, 4)])
def test_depthwise_conv_and_its_gradients_match_the_cpu(shape, monkeypatch):
    # The CPU runs innreg's own backward, the GPU cuDNN's: both must give the same gradients (cuDNN
    # in full float32 here; its default TF32 rounds to about 1e-3).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    weight = torch.randn((shape[1], 1, *([3] * (len(shape) - 2))), generator=gen)
    bias = torch.randn(shape[1], generator=gen)
    results = {}
    for device in ("cpu", "cuda"):
        inputs = [t.detach().to(device).requires_grad_() for t in (x, weight, bias)]
        out = depthwise_conv(*inputs)
        out.pow(2).sum().backward()
        results[device] = [out.detach().cpu(), *(t.grad.cpu() for t in inputs)]
    for name, cpu, gpu in zip(("out", "dx", "dw", "db"), results["cpu"], results["cuda"]):
        torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-4, msg=name)


def test_inn_inverts_exactly_on_the_gpu(tiny_config):
    torch.manual_seed(0)
    translator = build_translator(tiny_config.model).cuda().eval()
    x = torch.rand(2, 1, 32, 32, device="cuda")
    with torch.no_grad():
        y = translator(x)
        back = translator.inverse(y)
    assert y.is_cuda and float((back - x).abs().max()) < 1e-4


def _train(phantom, tiny_dict, out: Path, *extra: str) -> Path:
    cfg = out.parent / f"{out.name}.yaml"
    cfg.write_text(yaml.safe_dump(tiny_dict))
    code = main(["train", "--pairs", str(phantom["train"]), "--out", str(out), "--config", str(cfg), "--steps", "3",
                 "--quiet", *extra])  # fmt: skip
    assert code == 0
    return out / "model.pt"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_the_gpu_gives_a_model_a_cpu_loads(phantom, tiny_dict, tmp_path, precision):
    path = _train(phantom, tiny_dict, tmp_path / "run", "--device", "cuda", "--precision", precision)
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert len(history) == 3 and all(np.isfinite(float(row["total"])) for row in history)
    state = torch.load(path, map_location="cpu", weights_only=False)
    # A GPU-trained model is usable on a machine without one: every tensor is saved on the CPU or mapped.
    model = load_model(path, "cpu")
    record = read_manifest(phantom["test"])[0]
    moving, fixed, _, _ = load_pair(record)
    result = model.register(moving.array, fixed.array)
    assert np.isfinite(result.ddf).all() and state["info"]["steps"] == 3


def test_registration_on_the_gpu_matches_the_cpu(phantom, tiny_dict, tmp_path):
    path = _train(phantom, tiny_dict, tmp_path / "run", "--device", "cpu")
    record = read_manifest(phantom["test"])[0]
    moving, fixed, moving_seg, fixed_seg = load_pair(record)
    results = {d: load_model(path, d).register(moving.array, fixed.array, moving_seg.array) for d in ("cpu", "cuda")}
    # The refinement is iterative (hundreds of steps): float rounding differs between the devices, so the
    # fields agree to a small fraction of a voxel rather than bit for bit.
    diff = np.abs(results["cpu"].ddf - results["cuda"].ddf)
    assert float(diff.mean()) < 0.05 and float(np.percentile(diff, 99)) < 0.25, (diff.mean(), diff.max())
    dice = {d: mean_ignore_nan(dice_per_label(r.warped_seg, fixed_seg.array)) for d, r in results.items()}
    assert abs(dice["cpu"] - dice["cuda"]) < 0.02, dice


def test_apply_on_the_gpu_matches_the_cpu(phantom, tiny_dict, tmp_path):
    path = _train(phantom, tiny_dict, tmp_path / "run", "--device", "cpu")
    record = read_manifest(phantom["test"])[0]
    reg = tmp_path / "reg"
    assert main(["register", "--model", str(path), "--moving", str(record.moving), "--fixed", str(record.fixed),
                 "--out", str(reg), "--device", "cpu"]) == 0  # fmt: skip
    for labels, source in ((True, record.moving_seg), (False, record.moving)):
        cpu, gpu = (apply(reg, source, labels=labels, device=d).array for d in ("cpu", "cuda"))
        if labels:  # nearest neighbour: a coordinate exactly halfway may round differently, nothing more
            assert (cpu == gpu).mean() > 0.999
        else:
            np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_evaluate_cli_on_the_gpu(phantom, tiny_dict, tmp_path):
    path = _train(phantom, tiny_dict, tmp_path / "run", "--device", "cpu")
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(path), "--pairs", str(phantom["test"]), "--out", str(out), "--device",
                 "cuda", "--quiet"]) == 0  # fmt: skip
    rows = list(csv.DictReader((out / "per_pair.csv").open()))
    assert len(rows) == 2 and all(0.0 <= float(r["dice_mean"]) <= 1.0 for r in rows)


def test_three_dimensional_training_and_registration_on_the_gpu(tmp_path, tiny_dict):
    from innreg.data import generate_phantom_dataset
    from innreg.training import train

    data = generate_phantom_dataset(tmp_path / "d", n=2, dim=3, size=(16, 16, 16), test_fraction=0.5, progress=False)
    config = Config.from_dict(tiny_dict).updated(model={"dim": 3}, train={"steps": 2, "device": "cuda"})
    model = load_model(train(data["train"], tmp_path / "run", config, progress=False), "cuda")
    vol = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    result = model.register(vol, vol)
    assert result.ddf.shape == (3, 16, 16, 16) and np.isfinite(result.ddf).all()


def test_torchrun_trains_with_nccl(phantom, tiny_dict, tmp_path, torchrun):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_dict))
    n = torch.cuda.device_count()
    done = torchrun("--pairs", str(phantom["train"]), "--out", str(tmp_path / "run"), "--config", str(cfg), "--steps", "2",
                    "--device", "cuda", "--quiet", nproc=n)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    info = torch.load(tmp_path / "run" / "model.pt", map_location="cpu", weights_only=False)["info"]
    assert info.get("world_size", 1) == n and info["steps"] == 2  # one process writes no world_size
