import base64
import re

import matplotlib.image
import numpy as np
import pytest
import torch

from innreg import reports
from innreg.errors import InnregInputError
from innreg.reports import ReportSection

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path) -> np.ndarray:
    """Assert ``path`` is a non-empty PNG that matplotlib decodes; return the pixels (H, W, 4)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    return pixels


def disc_case(shape):
    """A disc (or ball) image, its label map, an inverted 'other modality' and a smooth field."""
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    radius2 = sum((g - (s - 1) / 2) ** 2 for g, s in zip(grids, shape))
    seg = (radius2 < (min(shape) / 3) ** 2).astype(np.int64)
    image = seg * 0.8 + 0.1
    ddf = np.stack([np.sin(2 * np.pi * grids[(k + 1) % len(shape)] / shape[(k + 1) % len(shape)])
                    for k in range(len(shape))])
    return image, seg, 1.0 - image, ddf


def test_central_slice_passes_2d_and_takes_middle_of_3d():
    image = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(reports.central_slice(image), image)
    volume = np.arange(60.0).reshape(3, 4, 5)
    np.testing.assert_array_equal(reports.central_slice(volume), volume[:, :, 2])
    np.testing.assert_array_equal(reports.central_slice(volume, axis=0), volume[1])
    np.testing.assert_array_equal(reports.central_slice(torch.tensor(volume), axis=1), volume[:, 2, :])
    with pytest.raises(ValueError, match="2D or 3D"):
        reports.central_slice(np.zeros(4))


def test_central_field_slice_drops_out_of_plane_component():
    field = np.stack([np.full((3, 4, 5), 10.0 * k) for k in range(3)])
    field += np.arange(5.0)  # varies along the last axis so the slice index is visible
    sliced = reports.central_field_slice(field)  # slice axis 2 at index 2 -> components 0, 1
    np.testing.assert_array_equal(sliced, np.stack([np.full((3, 4), 2.0), np.full((3, 4), 12.0)]))
    sliced0 = reports.central_field_slice(field, axis=0)  # components 1, 2 at axis-0 index 1
    assert sliced0.shape == (2, 4, 5)
    np.testing.assert_array_equal(sliced0[:, 0, 0], [10.0, 20.0])
    field2d = np.ones((2, 3, 4))
    np.testing.assert_array_equal(reports.central_field_slice(field2d), field2d)
    with pytest.raises(ValueError, match="dim, \\*spatial"):
        reports.central_field_slice(np.zeros((3, 4, 5)))


def test_checkerboard_exact_tiny_case():
    board = reports.checkerboard(np.zeros((4, 5)), np.ones((4, 5)), tiles=2)  # tiles of 2 rows x 3 cols
    expected = np.array(
        [
            [0, 0, 0, 1, 1],
            [0, 0, 0, 1, 1],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],
        ],
        dtype=float,
    )
    np.testing.assert_array_equal(board, expected)
    with pytest.raises(ValueError, match="equal shapes"):
        reports.checkerboard(np.zeros((4, 5)), np.zeros((5, 4)))


def test_deformed_grid_lines_follow_pull_back_convention():
    ddf = np.stack([np.full((5, 7), 1.5), np.full((5, 7), -2.0)])  # +1.5 rows, -2 columns
    lines = reports.deformed_grid_lines(ddf, step=3)
    assert len(lines) == 3 + 3  # rows 0, 3, 4 and columns 0, 3, 6
    np.testing.assert_array_equal(lines[0], np.stack([np.arange(7) - 2.0, np.full(7, 1.5)], axis=1))
    np.testing.assert_array_equal(lines[2][:, 1], np.full(7, 5.5))  # last row (4) + 1.5
    np.testing.assert_array_equal(lines[5], np.stack([np.full(5, 4.0), np.arange(5) + 1.5], axis=1))


def test_moving_average_is_trailing_and_skips_nan():
    smoothed = reports.moving_average([1.0, 2.0, 3.0, np.nan, 5.0], window=2)
    np.testing.assert_allclose(smoothed, [1.0, 1.5, 2.5, 3.0, 5.0])


def test_display_range_percentiles_for_mr_and_the_brain_window_for_ct_in_hounsfield_units():
    from innreg.reports.arrays import CT_BRAIN_WINDOW_HU, display_range

    mr = np.arange(1000, dtype=float).reshape(25, 40)
    assert display_range(mr) == pytest.approx(tuple(np.percentile(mr, [1, 99])))
    # A z-scored MR image goes below zero but not to air's -1000 HU: percentiles still.
    assert display_range((mr - mr.mean()) / mr.std())[0] < 0
    # Head CT: half air (-1000 HU), brain 20-40 HU, a rim of bone (1200 HU).
    ct = np.full((40, 40), -1000.0)
    ct[5:35, 5:35] = 1200.0
    ct[8:32, 8:32] = np.linspace(20, 40, 24)
    assert display_range(ct) == CT_BRAIN_WINDOW_HU == (0.0, 80.0)
    # Windowed or skull-stripped CT (no air, or no bone) keeps the percentile window.
    assert display_range(np.clip(ct, 0, 80)) == pytest.approx(tuple(np.percentile(np.clip(ct, 0, 80), [1, 99])))
    assert display_range(np.where(ct > 100, 30.0, ct))[0] == -1000.0


def test_registration_overview_2d_with_labels(tmp_path):
    image, seg, other, ddf = disc_case((40, 48))
    warped_seg = np.roll(seg, 2, axis=0)
    out = reports.registration_overview(
        tmp_path / "sub" / "overview.png", image, other, other, np.roll(image, 2, axis=0), ddf,
        moving_seg=seg, fixed_seg=seg, warped_seg=warped_seg, title="2D case",
    )
    pixels = read_png(out)
    assert pixels.shape[1] > pixels.shape[0] > 300  # two rows of four panels
    assert sorted(p.name for p in out.parent.iterdir()) == ["overview.png"]  # no temporary left


def test_registration_overview_3d_tensors_and_folding(tmp_path):
    image, _, other, ddf = disc_case((12, 14, 8))
    ddf[1, 3:5, 3:5, :] += 6.0  # a folded patch
    out = reports.registration_overview(
        tmp_path / "overview3d.png", torch.tensor(image), other, other, image, torch.tensor(ddf),
    )
    pixels = read_png(out)
    assert pixels.shape[1] > pixels.shape[0] > 300


def test_registration_overview_rejects_mismatched_shapes(tmp_path):
    image, seg, other, ddf = disc_case((12, 14))
    with pytest.raises(ValueError, match="ddf has shape"):
        reports.registration_overview(tmp_path / "x.png", image, other, other, image, ddf[:, :, :10])
    with pytest.raises(ValueError, match="fixed_seg has shape"):
        reports.registration_overview(tmp_path / "x.png", image, other, other, image, ddf, fixed_seg=seg[:5])
    assert not (tmp_path / "x.png").exists()


def test_loss_curve_from_dict_and_records(tmp_path):
    steps = np.arange(50)
    history = {"total": list(np.exp(-steps / 20) + 0.1), "smooth": list(np.sin(steps))}
    read_png(reports.loss_curve(tmp_path / "loss_dict.png", history, steps=list(steps * 10)))
    # "barrier" is missing from every other record and negative, so drawn with a linear y axis.
    records = [{"step": 5 * i, "total": 1.0 / (i + 1)} | ({"barrier": -0.1 * i} if i % 2 else {})
               for i in range(30)]
    pixels = read_png(reports.loss_curve(tmp_path / "loss_records.png", records))
    assert pixels.shape[1] > 2 * pixels.shape[0]  # two panels side by side
    with pytest.raises(ValueError, match="steps has 3 entries"):
        reports.loss_curve(tmp_path / "bad.png", history, steps=[1, 2, 3])


def test_metric_bars_and_line_plot(tmp_path):
    table = {"innreg": {"dice_mean": 0.81, "hd95_mean": 2.3}, "ants": {"dice_mean": 0.78}}
    errors = {"innreg": {"dice_mean": 0.02, "hd95_mean": 0.4}}
    pixels = read_png(reports.metric_bars(tmp_path / "bars.png", table, errors=errors))
    assert pixels.shape[1] > pixels.shape[0] > 200
    with pytest.raises(ValueError, match="'runtime_s' appears for no method"):
        reports.metric_bars(tmp_path / "bad.png", table, metrics=("runtime_s",))
    series = {"innreg": ([0, 100, 200], [0.6, 0.7, 0.8]), "baseline": ([0, 100, 200], [0.6, 0.65, 0.7])}
    pixels = read_png(reports.line_plot(tmp_path / "line.png", series, "step", "Dice", "convergence"))
    assert pixels.shape[0] > 200
    with pytest.raises(ValueError, match="equal length"):
        reports.line_plot(tmp_path / "bad.png", {"a": ([0, 1], [0.5])}, "x", "y", "t")


def test_markdown_table_exact():
    rows = [{"method": "innreg", "dice": 0.81234, "n": 10}, {"method": "a|b", "dice": np.float32(0.5)}]
    expected = (
        "| method | dice | n |\n"
        "| --- | --- | --- |\n"
        "| innreg | 0.812 | 10 |\n"
        "| a\\|b | 0.500 |  |\n"
    )
    assert reports.markdown_table(rows, ["method", "dice", "n"]) == expected
    assert reports.markdown_table(rows[:1], ["dice"], float_format="{:.1f}") == "| dice |\n| --- |\n| 0.8 |\n"


def test_html_report_is_self_contained_and_escaped(tmp_path):
    image = reports.line_plot(tmp_path / "curve.png", {"a": ([0, 1], [0, 1])}, "x", "y", "t")
    section = ReportSection(
        heading="Results <2D>",
        text="Dice < 0.9 & HD95 > 1\n\nSecond paragraph.",
        rows=[{"method": "innreg", "dice": 0.81234}],
        images=[image],
    )
    out = reports.html_report(tmp_path / "report.html", "Run <1>", [section])
    page = out.read_text(encoding="utf-8")
    assert "<td>innreg</td><td>0.812</td>" in page
    assert "<th>method</th><th>dice</th>" in page
    assert "<p>Dice &lt; 0.9 &amp; HD95 &gt; 1</p>" in page and "<p>Second paragraph.</p>" in page
    assert "<h1>Run &lt;1&gt;</h1>" in page and "<h2>Results &lt;2D&gt;</h2>" in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1 and base64.b64decode(uris[0]) == image.read_bytes()
    assert "curve.png\"" in page and "src=\"curve.png" not in page  # caption only, no file link
    with pytest.raises(InnregInputError, match="missing.png"):
        missing = ReportSection("h", images=[tmp_path / "missing.png"])
        reports.html_report(tmp_path / "bad.html", "t", [missing])
