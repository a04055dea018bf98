"""--precision: auto is bf16 exactly where the processor has bf16 matrix units, a run records what it trained
in, and inference runs in the chosen precision."""

import json
from pathlib import Path

import numpy as np
import pytest

import lab
from conftest import SHARED, lab_ok, run_cli
from lab.training import auto_precision, resolve_precision, use_precision

TORCH_HOME = SHARED / "torch-home"
TINY_GAN = ["--size", "32x48", "--channels", "8", "--steps", "6", "--batch-size", "16"]


@pytest.fixture(autouse=True)
def _precision_back_to_auto():
    yield
    use_precision("auto")  # an in-process --precision must not reach the next test


def _cpu_flags() -> set[str]:
    """The processor's flags as the kernel lists them: the test's own view, not the code's (torch's checks)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def test_auto_is_bf16_on_a_cpu_with_bf16_matrix_units_and_fp32_without():
    flags = _cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo to check torch's view of the processor against")
    has_units = bool({"amx_bf16", "avx512_bf16"} & flags)
    assert auto_precision("cpu") == ("bf16" if has_units else "fp32"), sorted(f for f in flags if "bf16" in f)
    assert resolve_precision("no") == "fp32" and resolve_precision("bf16") == "bf16"
    use_precision("fp32")
    assert resolve_precision("auto") == "fp32"  # --precision decides what "auto" is


def test_a_run_records_the_precision_it_trained_in_and_lab_runs_shows_it(synthetic, tmp_path, capsys):
    for name, precision in [("given", "fp32"), ("auto", "auto")]:
        code, out, err = run_cli(capsys, "train-gan", "--data", synthetic, "--out", tmp_path / name, *TINY_GAN,
                                 "--precision", precision)
        assert code == 0, err
    recorded = {name: json.loads((tmp_path / name / "options.json").read_text())["mixed_precision"]
                for name in ("given", "auto")}
    assert recorded == {"given": "fp32", "auto": auto_precision()}
    code, out, err = run_cli(capsys, "runs", tmp_path)
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["given"][2] == "fp32" and lines["auto"][2] == auto_precision(), out


def test_bad_precisions_are_one_line_errors_and_make_no_run(synthetic, tmp_path, capsys):
    code, out, err = run_cli(capsys, "train-gan", "--data", synthetic, "--out", tmp_path / "a", *TINY_GAN,
                             "--precision", "fp8")
    assert code == 2 and "--precision must be one of auto, bf16, fp32" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "train", "gan", "--data", synthetic, "--out", tmp_path / "b",
                             "--set", "steps=2", "--set", 'mixed_precision="half"')
    assert code == 2 and "mixed_precision must be one of" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    lab_ok("train-gan", "--data", synthetic, "--out", tmp_path / "c", *TINY_GAN)
    code, out, err = run_cli(capsys, "train-gan", "--out", tmp_path / "c", "--resume", "--precision", "bf16")
    assert code == 2 and "in its own precision" in err, err


@pytest.mark.slow
def test_predict_runs_in_the_chosen_precision(synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(TORCH_HOME))
    lab_ok("train-classifier", "--data", synthetic, "--out", tmp_path / "clf", "--size", "32x48", "--schedule", "1:0",
           "--no-baselines", "--precision", "fp32")
    posters = sorted((synthetic / "images").iterdir())[:16]

    def probabilities(precision):
        use_precision(precision)
        return np.array([[p for _, p in sorted(r.genres)] for r in lab.predict(tmp_path / "clf", posters)])

    fp32, bf16 = probabilities("fp32"), probabilities("bf16")
    assert np.array_equal(fp32, probabilities("fp32"))  # each precision repeats itself
    assert np.abs(fp32 - bf16).max() < 0.05  # bf16 keeps the figures...
    assert not np.array_equal(fp32, bf16)  # ...yet it did compute in bf16


def test_without_bf16_units_auto_stays_fp32(synthetic, tmp_path, capsys, monkeypatch):
    """A processor without AMX or AVX-512-BF16 emulates bf16, slower than fp32: auto must not pick it there.
    torch's two probes of the processor answer as such a processor's would; torch still computes."""
    import torch
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    assert auto_precision("cpu") == "fp32" and resolve_precision("auto") == "fp32"
    code, out, err = run_cli(capsys, "train-gan", "--data", synthetic, "--out", tmp_path / "run", *TINY_GAN)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "options.json").read_text())["mixed_precision"] == "fp32"
