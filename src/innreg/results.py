"""Typed evaluation results and the one place they are turned into files.

:class:`PairMetrics` is one registered pair, :class:`EvaluationSummary` the means over a method's
pairs. Their column and key names (``dice_3``, ``identity_dice_mean``, ``per_label``, ...) are written
here and only here: ``per_pair.csv``, ``summary.json``, ``summary.md`` and the summary stored in a
benchmark's ``result.json`` are all produced by :func:`write_results` / :meth:`EvaluationSummary.to_dict`
and read back by :meth:`EvaluationSummary.from_dict`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from innreg.atomic import write_text
from innreg.reports.tables import csv_text, markdown_table, record_keys

# The headline metrics of a method, in table order (optional ones only where measured).
SUMMARY_KEYS = ("dice_mean", "hd95_mean", "neg_jacobian_fraction", "seconds_per_pair")
# Tables show folding in percent: typical fractions (1e-4) would print as 0.000.
TABLE_KEYS = ("dice_mean", "hd95_mean", "neg_jacobian_percent", "seconds_per_pair")
TRANSLATION_KEYS = ("translation_ncc", "translation_ssim")
_OPTIONAL_KEYS = ("epe_mm", *TRANSLATION_KEYS)
_LABEL_METRICS = ("dice", "hd95")
PER_PAIR_FILE = "per_pair.csv"


def nan_mean(values: Iterable[float | None]) -> float:
    """Mean of the values that are neither ``None`` nor NaN (NaN when none is left)."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _sample_std(values: Sequence[float]) -> float:
    """Standard deviation with Bessel's correction over the non-NaN values (NaN below two)."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.std(kept, ddof=1)) if len(kept) > 1 else float("nan")


def _phase_means(pairs: Sequence[PairMetrics]) -> dict[str, float] | None:
    """Mean seconds per phase over the pairs that timed their phases, phases in their first order
    (``None`` when no pair did); a phase a pair did not run counts 0 for it."""
    timed = [p.phase_seconds for p in pairs if p.phase_seconds]
    if not timed:
        return None
    names = list(dict.fromkeys(name for phases in timed for name in phases))
    return {name: float(np.mean([phases.get(name, 0.0) for phases in timed])) for name in names}


@dataclass
class Overlap:
    """Dice and HD95 (mm) per label of a warped label map against the fixed one."""

    dice: dict[int, float]
    hd95: dict[int, float]

    @property
    def dice_mean(self) -> float:
        return nan_mean(self.dice.values())

    @property
    def hd95_mean(self) -> float:
        return nan_mean(self.hd95.values())

    def to_row(self) -> dict[str, float]:
        """``dice_<label>``..., ``hd95_<label>``..., ``dice_mean``, ``hd95_mean``."""
        row = {f"dice_{k}": v for k, v in self.dice.items()} | {f"hd95_{k}": v for k, v in self.hd95.items()}
        return row | {"dice_mean": self.dice_mean, "hd95_mean": self.hd95_mean}


@dataclass
class TranslationFidelity:
    """NCC and SSIM of the translated moving image against ``moving_as_fixed``; ``identity_*`` score the
    untranslated moving image (the floor)."""

    ncc: float
    ssim: float
    identity_ncc: float
    identity_ssim: float

    def to_row(self) -> dict[str, float]:
        return {
            "translation_ncc": self.ncc,
            "translation_ssim": self.ssim,
            "identity_translation_ncc": self.identity_ncc,
            "identity_translation_ssim": self.identity_ssim,
        }


@dataclass
class PairMetrics:
    """Everything measured for one pair (one row of ``per_pair.csv``)."""

    pair: int
    moving: str
    fixed: str
    moving_seg: str
    fixed_seg: str
    warped_seg: str
    overlap: Overlap
    neg_jacobian_fraction: float
    nmi_before: float
    nmi_after: float
    seconds: float
    identity: Overlap  # the moving labels unwarped
    epe_mm: float | None = None  # where the manifest has the true field
    identity_epe_mm: float | None = None
    translation: TranslationFidelity | None = None  # where the manifest has ``moving_as_fixed``
    phase_seconds: dict[str, float] | None = None  # ``seconds`` by phase, for methods that time their phases

    def to_row(self) -> dict[str, Any]:
        """The CSV row; optional metrics are left out (an empty cell) where not measured."""
        row: dict[str, Any] = {
            "pair": self.pair,
            "moving": self.moving,
            "fixed": self.fixed,
            "moving_seg": self.moving_seg,
            "fixed_seg": self.fixed_seg,
            "warped_seg": self.warped_seg,
        }
        row |= self.overlap.to_row()
        row |= {
            "neg_jacobian_fraction": self.neg_jacobian_fraction,
            "nmi_before": self.nmi_before,
            "nmi_after": self.nmi_after,
            "seconds": self.seconds,
            "identity_dice_mean": self.identity.dice_mean,
            "identity_hd95_mean": self.identity.hd95_mean,
        }
        if self.epe_mm is not None:
            row |= {"epe_mm": self.epe_mm, "identity_epe_mm": self.identity_epe_mm}
        if self.translation is not None:
            row |= self.translation.to_row()
        return row


@dataclass
class IdentitySummary:
    """The identity transform's means over the same pairs (no folding, no run time)."""

    dice_mean: float
    hd95_mean: float
    neg_jacobian_fraction: float = 0.0
    seconds_per_pair: float = 0.0
    epe_mm: float | None = None
    translation_ncc: float | None = None
    translation_ssim: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class EvaluationSummary:
    """Means over pairs (NaN-aware) of a method's :class:`PairMetrics`, and of the identity."""

    method: str
    n_pairs: int
    dice_mean: float
    dice_std: float
    hd95_mean: float
    neg_jacobian_fraction: float
    seconds_per_pair: float
    nmi_before: float
    nmi_after: float
    identity: IdentitySummary
    per_label_dice: dict[int, float] = field(default_factory=dict)
    per_label_hd95: dict[int, float] = field(default_factory=dict)
    epe_mm: float | None = None
    translation_ncc: float | None = None
    translation_ssim: float | None = None
    phase_seconds_per_pair: dict[str, float] | None = None

    @classmethod
    def of_pairs(cls, pairs: Sequence[PairMetrics], method: str) -> EvaluationSummary:
        """Summarise ``pairs``; an optional metric is averaged where any pair has it."""
        labels = sorted({k for p in pairs for k in p.overlap.dice} | {k for p in pairs for k in p.overlap.hd95})
        with_epe = any(p.epe_mm is not None for p in pairs)
        with_translation = any(p.translation is not None for p in pairs)

        def mean_of(get, present: bool) -> float | None:
            return nan_mean(get(p) for p in pairs) if present else None

        def translation(name: str):
            return lambda p: None if p.translation is None else getattr(p.translation, name)

        return cls(
            method=method,
            n_pairs=len(pairs),
            dice_mean=nan_mean(p.overlap.dice_mean for p in pairs),
            dice_std=_sample_std([p.overlap.dice_mean for p in pairs]),
            hd95_mean=nan_mean(p.overlap.hd95_mean for p in pairs),
            neg_jacobian_fraction=nan_mean(p.neg_jacobian_fraction for p in pairs),
            seconds_per_pair=nan_mean(p.seconds for p in pairs),
            nmi_before=nan_mean(p.nmi_before for p in pairs),
            nmi_after=nan_mean(p.nmi_after for p in pairs),
            per_label_dice={k: nan_mean(p.overlap.dice.get(k) for p in pairs) for k in labels},
            per_label_hd95={k: nan_mean(p.overlap.hd95.get(k) for p in pairs) for k in labels},
            identity=IdentitySummary(
                dice_mean=nan_mean(p.identity.dice_mean for p in pairs),
                hd95_mean=nan_mean(p.identity.hd95_mean for p in pairs),
                epe_mm=mean_of(lambda p: p.identity_epe_mm, with_epe),
                translation_ncc=mean_of(translation("identity_ncc"), with_translation),
                translation_ssim=mean_of(translation("identity_ssim"), with_translation),
            ),
            epe_mm=mean_of(lambda p: p.epe_mm, with_epe),
            translation_ncc=mean_of(translation("ncc"), with_translation),
            translation_ssim=mean_of(translation("ssim"), with_translation),
            phase_seconds_per_pair=_phase_means(pairs),
        )

    def per_label(self) -> dict[str, float]:
        """``{"dice_<label>": mean, "hd95_<label>": mean}``, keys sorted as strings (the JSON layout)."""
        by_metric = zip(_LABEL_METRICS, (self.per_label_dice, self.per_label_hd95))
        named = {f"{metric}_{k}": v for metric, values in by_metric for k, v in values.items()}
        return dict(sorted(named.items()))

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` layout (optional metrics only where measured)."""
        out: dict[str, Any] = {
            "method": self.method,
            "n_pairs": self.n_pairs,
            "dice_mean": self.dice_mean,
            "dice_std": self.dice_std,
            "hd95_mean": self.hd95_mean,
            "neg_jacobian_fraction": self.neg_jacobian_fraction,
            "seconds_per_pair": self.seconds_per_pair,
            "nmi_before": self.nmi_before,
            "nmi_after": self.nmi_after,
            "per_label": self.per_label(),
            "identity": self.identity.to_dict(),
        }
        if self.phase_seconds_per_pair is not None:
            out["phase_seconds_per_pair"] = self.phase_seconds_per_pair
        return out | {k: getattr(self, k) for k in _OPTIONAL_KEYS if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationSummary:
        """Read back :meth:`to_dict` (e.g. the ``summary`` of a benchmark's ``result.json``)."""
        per_label: dict[str, dict[int, float]] = {metric: {} for metric in _LABEL_METRICS}
        for key, value in data.get("per_label", {}).items():
            metric, label = key.rsplit("_", 1)
            per_label[metric][int(label)] = value
        plain = {k: data[k] for k in ("method", "n_pairs", "dice_mean", "dice_std", "hd95_mean",
                                      "neg_jacobian_fraction", "seconds_per_pair", "nmi_before", "nmi_after")}
        return cls(
            **plain,
            identity=IdentitySummary(**data["identity"]),
            per_label_dice=per_label["dice"],
            per_label_hd95=per_label["hd95"],
            **{k: data[k] for k in _OPTIONAL_KEYS if k in data},
            phase_seconds_per_pair=data.get("phase_seconds_per_pair"),
        )

    def table_rows(self) -> list[dict[str, Any]]:
        """The identity and the method as two table rows (headline metrics only, folding in percent)."""
        main = {"method": self.method} | {k: getattr(self, k) for k in SUMMARY_KEYS}
        main |= {k: getattr(self, k) for k in _OPTIONAL_KEYS if getattr(self, k) is not None}
        rows = []
        for row in ({"method": "identity", **self.identity.to_dict()}, main):
            fraction = row.pop("neg_jacobian_fraction")
            rows.append(row | {"neg_jacobian_percent": 100.0 * fraction})
        return rows

    def table_columns(self) -> list[str]:
        """Columns of :meth:`table_rows`: the headline metrics, then the optional ones measured."""
        return ["method", *TABLE_KEYS] + [k for k in _OPTIONAL_KEYS if getattr(self, k) is not None]


def write_results(
    pairs: Sequence[PairMetrics], summary: EvaluationSummary, out_dir: Path, run: Mapping[str, Any] | None = None
) -> None:
    """``per_pair.csv``, ``summary.json`` and ``summary.md`` in ``out_dir``, each written atomically.
    ``summary.json`` also records under ``"run"`` the innreg version and ``run`` (what produced the
    results, e.g. :meth:`innreg.inference.RegistrationModel.describe`); :meth:`EvaluationSummary.from_dict`
    ignores it."""
    from innreg import __version__

    rows = [p.to_row() for p in pairs]
    write_text(out_dir / PER_PAIR_FILE, csv_text(rows, record_keys(rows)))
    record = summary.to_dict() | {"run": {"innreg_version": __version__} | dict(run or {})}
    write_text(out_dir / "summary.json", json.dumps(record, indent=2))
    write_text(out_dir / "summary.md", markdown_table(summary.table_rows(), summary.table_columns()) + "\n")


def read_run(path: str | Path) -> dict[str, Any]:
    """The ``run`` record (:func:`write_results`) of the ``summary.json`` in an evaluation folder, or beside
    its ``per_pair.csv``; empty where there is none (an evaluation written before innreg recorded it, a CSV alone)."""
    path = Path(path)
    summary = (path if path.is_dir() else path.parent) / "summary.json"
    try:
        run = json.loads(summary.read_text()).get("run", {})
    except (OSError, ValueError, AttributeError):  # absent, unreadable or not a JSON object: nothing recorded
        return {}
    return run if isinstance(run, dict) else {}


def run_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``"key: A -> B"`` for each setting two ``run`` records both hold with different values (nested
    keys dotted, e.g. ``refine.steps``), sorted by key."""

    def flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, Mapping):
                out |= flat(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value
        return out

    fa, fb = flat(a), flat(b)
    return [f"{k}: {fa[k]} -> {fb[k]}" for k in sorted(fa.keys() & fb.keys()) if fa[k] != fb[k]]


def read_per_pair(path: str | Path, metric: str = "dice_mean") -> dict[tuple[str, str], float]:
    """One metric of a ``per_pair.csv`` (or of the evaluation folder holding one), keyed by the pair's
    ``(moving, fixed)`` paths.

    An undefined value reads as NaN (left out of paired comparisons): the evaluation writes ``nan`` where
    a metric has no value for the pair (e.g. Dice of a label absent from both label maps) and leaves the
    cell empty where the pair lacks the label or the optional metric. No metric it writes can be
    infinite, so ``inf`` is refused.

    Raises:
        InnregInputError: not UTF-8 CSV, a repeated column name, a missing column, a row whose cells do
            not match the header, a non-numeric or infinite ``metric`` value, or a pair listed twice; the
            message names the file (and the line and column).
    """
    import csv
    import io

    from innreg.errors import InnregInputError

    path = Path(path)
    if path.is_dir():
        path = path / PER_PAIR_FILE
    if not path.is_file():
        raise InnregInputError(f"{path}: no such file (expected the {PER_PAIR_FILE} of an evaluation)")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a spreadsheet's byte-order mark
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, [])
        rows = [(reader.line_num, row) for row in reader if row]
    except UnicodeDecodeError as err:
        raise InnregInputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except csv.Error as err:
        raise InnregInputError(f"{path}: not a readable CSV file ({err})") from None
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:  # a reader keyed by name would silently take one of them
        raise InnregInputError(f"{path}: repeats the column(s) {', '.join(repeated)}")
    if not rows or not {"moving", "fixed", metric} <= set(header):
        raise InnregInputError(f"{path}: needs columns moving, fixed and {metric}")
    column = {name: i for i, name in enumerate(header)}
    values: dict[tuple[str, str], float] = {}
    for line, row in rows:
        where = f"{path}: line {line}"
        if len(row) != len(header):
            raise InnregInputError(f"{where}: {len(row)} cells, but the header has {len(header)}")
        cell = row[column[metric]].strip()
        try:
            value = float(cell) if cell else math.nan
        except ValueError:
            raise InnregInputError(f"{where}: column {metric} is not numeric ({cell!r})") from None
        if math.isinf(value):
            raise InnregInputError(f"{where}: column {metric} is {cell}, which no evaluation writes (undefined is nan)")
        key = (row[column["moving"]], row[column["fixed"]])
        if key in values:  # keyed by pair, a repeated pair would silently keep only its last row
            raise InnregInputError(f"{where}: the pair {key[0]}, {key[1]} appears more than once; pairs must be unique")
        values[key] = value
    return values
