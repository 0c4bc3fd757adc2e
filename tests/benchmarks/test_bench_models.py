"""``w2amsn bench --models``: any registered network, measured by the same rows as W²AMSN."""
from __future__ import annotations

import pytest

import w2amsn_plugin  # noqa: F401  (registers the archs)
from w2amsn_plugin.archs import PRESETS
from w2amsn_plugin.benchmarks import inference
from w2amsn_plugin.benchmarks.suite import ALL_MODELS, PROFILES, with_models
from w2amsn_plugin.cli import w2amsn_main


def test_all_models_is_the_registry() -> None:
    assert ALL_MODELS == tuple(PRESETS) and {"RDN", "CSFM", "NLM"} <= set(ALL_MODELS)


def test_profiles_take_any_network() -> None:
    quick = with_models(PROFILES["quick"], ("NLM", "RDN"))
    assert quick.ours_models == ("NLM", "RDN") and quick.matrix_models == ()
    assert quick.train_models == ("RDN",)
    full = with_models(PROFILES["full"], ("CSFM", "W2AMSN"))
    assert full.matrix_models == ("CSFM", "W2AMSN") and full.compile_models == ("W2AMSN",)
    with pytest.raises(ValueError, match="unknown network 'Nope'"):
        with_models(PROFILES["quick"], ("Nope",))


def test_unknown_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert w2amsn_main(["bench", "--quick", "--models", "Nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--models: unknown network 'Nope'" in err


@pytest.mark.parametrize("name", ["SRCNN", "NLM"])
def test_inference_rows_of_new_networks(name: str) -> None:
    """Our whole-volume path times the interpolating network and the classical one like the others."""
    settings = inference.InferSettings(lr_size=24, warmup=0, reps=1)
    [row] = inference.inference_rows(name, settings, paths=(inference.OURS,), precisions=("fp32",))
    assert row.ok and row.model == name and row.throughput > 0, row
