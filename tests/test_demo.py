from innreg.demo import run_demo


def test_demo_writes_a_self_contained_report(tmp_path):
    report = run_demo(tmp_path, steps=2, device="cpu", n_pairs=5)
    html = report.read_text()
    assert report.name == "report.html" and "dice_mean" in html and "data:image/png;base64," in html
    assert (tmp_path / "evaluation" / "summary.json").is_file() and "innreg network only" in html
    # a second run reuses data and model instead of failing on the existing folder
    assert run_demo(tmp_path, steps=2, device="cpu", n_pairs=5) == report
