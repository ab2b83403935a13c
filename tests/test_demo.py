from innreg.demo import run_demo


def test_demo_writes_a_self_contained_report(tmp_path):
    report = run_demo(tmp_path, steps=2, device="cpu", n_pairs=5)
    html = report.read_text()
    assert report.name == "report.html" and "dice_mean" in html and "data:image/png;base64," in html
    assert (tmp_path / "evaluation" / "summary.json").is_file() and "innreg network only" in html
    assert "innreg --no-translate" in html
    # a second run reuses data and model instead of failing on the existing folder
    assert run_demo(tmp_path, steps=2, device="cpu", n_pairs=5) == report


def test_translation_share_is_the_paired_difference_or_nothing():
    from innreg.demo import translation_share

    with_t = {("m0", "f0"): 0.80, ("m1", "f1"): 0.90, ("m2", "f2"): 0.70}
    without = {("m0", "f0"): 0.75, ("m1", "f1"): 0.85, ("m2", "f2"): 0.65, ("m9", "f9"): 0.1}
    text = translation_share(with_t, without)
    assert text.startswith("What the translation adds (Dice, innreg minus --no-translate, paired): +0.050 (95% CI ")
    assert "of 3 pairs" in text
    assert translation_share({("m0", "f0"): 0.8}, without) == ""
