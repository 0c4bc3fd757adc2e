"""``w2amsn stats``: parameters and MACs (torch.utils.flop_counter on the meta device) of the
presets against the paper's Table II, called through the verb's own configure_parser/run."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest

import w2amsn_plugin  # noqa: F401  (registers the archs)
from w2amsn_plugin.archs import complexity
from w2amsn_plugin.benchmarks import model_size
from w2amsn_plugin.commands import stats
from w2amsn_plugin.archs import preset


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="w2amsn stats")
    stats.configure_parser(parser)
    return stats.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def x2_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("stats") / "stats.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert _run(["--scale", "2", "--json", str(out)]) == 0
    return json.loads(out.read_text()), buf.getvalue()


def _row(report: dict, model: str, scale: int = 2) -> dict:
    return next(r for r in report["models"] if r["model"] == model and r["scale"] == scale)


def test_rcan_matches_table_ii_exactly(x2_report: tuple[dict, str]) -> None:
    """RCAN 10x20x64 at x2 on a 120x120 input: Table II's 15.44M and 220.34G to the digit, which
    pins both the counter's MAC convention and the 120x120 input size."""
    rcan = _row(x2_report[0], "RCAN")
    assert round(rcan["params"] / 1e6, 2) == 15.44 == round(rcan["paper_params"] / 1e6, 2)
    assert round(rcan["macs"] / 1e9, 2) == 220.34 == round(rcan["paper_macs"] / 1e9, 2)
    assert rcan["macs"] == rcan["macs_nominal"]


def test_w2amsn_rows(x2_report: tuple[dict, str]) -> None:
    report, text = x2_report
    big, small = _row(report, "W2AMSN"), _row(report, "W2AMSN-S")
    assert big["params"] == 9_462_313 and small["params"] == 3_618_961
    # pooling before each NCAB's upper 1x1 conv saves C^2 per pixel (20 blocks x 2 x 32^2 + the
    # global 672^2), folding the global NCAB into C1g saves its lower conv (672^2 per pixel).
    saved = (20 * 2 * 32 ** 2 + 2 * 672 ** 2) * 120 * 120
    assert big["macs_nominal"] - big["macs"] == pytest.approx(saved, rel=2e-3)
    # nominal MACs per parameter equal Table II's ratio (167.91G / 11.67M = 14388)
    assert big["macs_nominal"] / big["params"] == pytest.approx(167.91e9 / 11.67e6, rel=1e-3)
    assert "| W2AMSN | x2 | 9.46M |" in text and "| paper | 11.67M | 167.91G |" in text


def test_edsr_preset_has_table_ii_size(x2_report: tuple[dict, str]) -> None:
    edsr = _row(x2_report[0], "EDSR")
    assert round(edsr["params"] / 1e6, 2) == 3.14
    # Table II's EDSR MACs are exactly 16x ours, i.e. counted on a 480x480 input
    assert round(edsr["paper_macs"] / edsr["macs"], 2) == 16.0


def test_width_candidates_support_the_default(x2_report: tuple[dict, str]) -> None:
    """mid_feat = a is the width whose per-block cost matches Table II's two rows (README)."""
    rows = {r["mid_feat_multiple"]: r for r in x2_report[0]["mid_feat_candidates"]}
    assert sorted(rows) == [1, 2, 4, 8]
    paper_per_block = (11.67e6 - 5.93e6) / 12
    best = min(rows, key=lambda m: abs(rows[m]["per_block_params"] - paper_per_block))
    assert best == 1 and abs(rows[1]["per_block_params"] / paper_per_block - 1) < 0.03
    assert rows[8]["W2AMSN"]["params"] > 50e6  # the literal 8a reading
    assert "mid_feat" not in preset("W2AMSN", 2)  # default = num_feat


def test_count_other_scales_and_unsupported() -> None:
    assert complexity.count(preset("W2AMSN-S", 3), (8, 8))["params"] > 0
    rows = model_size.model_rows([5], (8, 8))
    # BasicSR's Upsample and the sub-pixel tails take 2^n and 3; interpolating networks any scale
    limited = {"EDSR", "RCAN", "RDN", "CSN", "CSFM"}
    assert all(("error" in r) == (r["model"] in limited) for r in rows)


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--scale", "0"]) == 2
    err = capsys.readouterr().err
    assert "--scale 0: must be a positive integer" in err and len(err.strip().splitlines()) == 1
    assert _run(["--scale", "2", "--size", "8", "8", "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "its folder does not exist" in capsys.readouterr().err  # checked first


def test_every_method_is_in_table_ii_form(x2_report: tuple[dict, str]) -> None:
    """Every registered preset has a row; RDN matches Table II to the digit; each row more than 5%
    from Table II prints a reading (or says none was found)."""
    report, text = x2_report
    from w2amsn_plugin.archs import PRESETS

    assert {r["model"] for r in report["models"]} == set(PRESETS)
    rdn = _row(report, "RDN")
    assert round(rdn["params"] / 1e6, 2) == 22.12 and round(rdn["macs"] / 1e9, 2) == 318.43
    assert abs(_row(report, "CSFM")["params_diff"]) < 0.05
    for r in report["models"]:
        far = "paper_params" in r and max(abs(r["params_diff"]), abs(r["macs_diff"])) > 0.05
        assert ("note" in r) == far, r["model"]
        if far:
            assert f"- {r['model']}: " in text
    assert "| SRCNN | x2 | 57.28K |" in text and "| NLM | x2 | 0.00M |" in text
