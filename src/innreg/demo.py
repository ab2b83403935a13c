"""``innreg demo``: the whole method end to end on phantom data, sized to finish in minutes on a CPU.

Generates simulated T2 (moving) -> T1 (fixed) brain slices with known deformations, trains INNReg,
evaluates it against the identity on held-out pairs and writes ``OUT/report.html``.
"""

from __future__ import annotations

from pathlib import Path

from innreg.config import Config
from innreg.results import TABLE_KEYS

DEMO_PAIRS = 60
DEMO_SIZE = (192, 160)
DEMO_STEPS = 600


def run_demo(out_dir: str | Path, steps: int | None = None, device: str = "auto", n_pairs: int = DEMO_PAIRS) -> Path:
    """Run the demo into ``out_dir`` and return the path of its HTML report."""
    from innreg.data import generate_phantom_dataset
    from innreg.evaluation import evaluate
    from innreg.inference import load_model
    from innreg.reports import ReportSection, html_report
    from innreg.results import read_per_pair
    from innreg.training import train

    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    if (data_dir / "test.csv").is_file():  # a rerun reuses the data (and resumes or reuses the model)
        print(f"[1/3] reusing the phantom pairs in {data_dir}")
        data = {name: data_dir / f"{name}.csv" for name in ("train", "test")} | {"contact_sheet": data_dir / "contact_sheet.png"}
    else:
        print(f"[1/3] generating {n_pairs} phantom T2->T1 pairs in {data_dir}")
        data = generate_phantom_dataset(data_dir, moving="t2", fixed="t1", n=n_pairs, dim=2, size=DEMO_SIZE, seed=0, overwrite=True)
    joint = steps or DEMO_STEPS
    # The later stages get half the joint budget each (a translator round and the distillation), so the
    # demo stays a demo; the rounds are the default's.
    stages = {"translator_steps": max(1, joint // 2), "distil_steps": max(1, joint // 2)}
    config = Config().updated(train={"steps": joint, "device": device} | stages)
    print("[2/3] training INNReg (labels are not used; its first line gives the steps)")
    run_dir = out_dir / "run"
    model_path = train(data["train"], run_dir, config, resume=(run_dir / "checkpoint.pt").exists())
    print("[3/3] evaluating on the held-out pairs")
    summary = evaluate(load_model(model_path, device), data["test"], out_dir / "evaluation")
    network_only = evaluate(
        load_model(model_path, device, refine=False), data["test"], out_dir / "evaluation-network-only",
        overview_pairs=0, method="innreg network only",
    )  # fmt: skip
    untranslated = evaluate(
        load_model(model_path, device, translate=False), data["test"], out_dir / "evaluation-no-translate",
        overview_pairs=0, method="innreg --no-translate",
    )  # fmt: skip
    share = translation_share(read_per_pair(out_dir / "evaluation"), read_per_pair(out_dir / "evaluation-no-translate"))
    print(f"Dice {summary.dice_mean:.3f} (network alone {network_only.dice_mean:.3f}, --no-translate "
          f"{untranslated.dice_mean:.3f}, unregistered {summary.identity.dice_mean:.3f}). {share}")
    columns = ["method", *TABLE_KEYS, "epe_mm"]
    overviews = sorted((out_dir / "evaluation").glob("overview_*.png"))
    sections = [
        ReportSection(
            heading="Results on held-out pairs",
            text=(
                f"{summary.n_pairs} test pairs of simulated whole-head T2 (moving) and T1 (fixed) slices of "
                f"{DEMO_SIZE[0]}x{DEMO_SIZE[1]} voxels. Dice and HD95 (mm) over CSF, GM and WM; "
                "neg_jacobian_percent is the share of voxels whose Jacobian determinant is <= 0; "
                "epe_mm is the mean endpoint error against the known deformation inside the brain labels. "
                "innreg refines the network's field for each pair; 'network only' is the network alone; "
                "'--no-translate' runs innreg's pipeline on the untranslated moving image. " + share
            ),
            rows=summary.table_rows() + network_only.table_rows()[1:] + untranslated.table_rows()[1:],
            columns=columns,
        ),
        ReportSection(heading="Registrations", text="Moving, fixed, translated, warped, checkerboard, deformation grid and Jacobian.", images=overviews),
        ReportSection(heading="Training", text=f"{config.train.steps} steps; loss terms per step.", images=[out_dir / "run" / "loss_curve.png"]),
        ReportSection(heading="Data", text="A few generated pairs with their tissue labels.", images=[Path(data["contact_sheet"])]),
    ]
    report = out_dir / "report.html"
    html_report(report, "innreg demo: T2 -> T1 phantom registration", sections)
    return report


def translation_share(translated: dict, untranslated: dict) -> str:
    """The report's sentence on what the translation adds: Dice with it minus without, paired by pair
    (:func:`innreg.paired.paired_by_key`); empty under two shared pairs."""
    from innreg.paired import paired_by_key

    try:
        diff = paired_by_key(translated, untranslated)
    except ValueError:
        return ""
    return f"What the translation adds (Dice, innreg minus --no-translate, paired): {diff.describe()}."
