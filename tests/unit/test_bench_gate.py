"""The bench's regression gate without a device: the comparison rule, baseline files, and
the command line's answers to bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.bench import gate
from harness.bench.command import GATE_FIGURES
from harness.cli import main


def _noisy(rng: random.Random, centre: float, spread: float, n: int) -> list[float]:
    """n samples, each ``centre`` times a factor in [1 - spread, 1 + spread]."""
    return [centre * rng.uniform(1 - spread, 1 + spread) for _ in range(n)]


def _figures(rng: random.Random, scale: float = 1.0, n: int = 5) -> dict[str, gate.FigureSamples]:
    out = {}
    for name, (unit, hib) in GATE_FIGURES.items():
        f = gate.FigureSamples(name, unit, hib)
        for _ in range(n):
            raw = rng.uniform(50, 60)
            ours = raw * 0.5 * scale if hib else raw / (0.5 * scale)
            f.add(ours, raw)
        out[name] = f
    return out


def _write_baseline(path: Path, figures: dict[str, gate.FigureSamples]) -> None:
    doc = gate.document(figures, machine={}, device={"fw": "x"},
                        settings={"duration_s": 0.1, "repeat": 5, "link": "direct"}, saved="now")
    path.write_text(json.dumps(doc))


# --- the rule ------------------------------------------------------------------------------


def test_ratio_orientation_makes_larger_better() -> None:
    f = gate.FigureSamples("echo", "us", higher_is_better=False)
    f.add(ours=100.0, raw=50.0)
    assert f.ratio == [0.5]
    g = gate.FigureSamples("bulk", "MB/s", higher_is_better=True)
    g.add(ours=10.0, raw=40.0)
    assert g.ratio == [0.25]


def test_a_halved_efficiency_fails_and_names_the_figure() -> None:
    rng = random.Random(1)
    base = _figures(rng)
    now = _figures(rng)
    now["bulk max-message up"] = _figures(rng, scale=0.5)["bulk max-message up"]
    verdicts = gate.compare(base, now)
    assert [v.name for v in verdicts if v.worse] == ["bulk max-message up"]
    lines = gate.format_verdicts(verdicts)
    assert lines[0].split() == ["figure", "baseline", "now", "change", "p", "verdict"]
    assert any(line.startswith("bulk max-message up") and line.endswith("WORSE")
               for line in lines)


def test_advisory_figures_are_marked_in_the_table() -> None:
    rng = random.Random(1)
    now = _figures(rng)
    now["bulk max-message up"] = _figures(rng, scale=0.5)["bulk max-message up"]
    lines = gate.format_verdicts(gate.compare(_figures(random.Random(1)), now),
                                 advisory={"bulk max-message up", "echo 64 B p50"})
    marked = {line.split("  ")[0]: line.rsplit("  ", 1)[1] for line in lines[2:]}
    assert marked["bulk max-message up"] == "WORSE (advisory)"
    assert marked["echo 64 B p50"] == "ok (advisory)"
    assert marked["bulk max-message down"] == "ok"


def test_better_never_fails() -> None:
    rng = random.Random(2)
    verdicts = gate.compare(_figures(rng), _figures(rng, scale=3.0))
    assert not any(v.worse for v in verdicts)
    assert all(v.change > 1.0 for v in verdicts)


def test_absolute_latency_is_worse_when_it_grows() -> None:
    v = gate.compare_one("echo", "us", [100.0] * 3 + [101.0, 99.0], [200, 210, 190, 205, 195],
                         higher_is_better=False, tolerance=0.25, alpha=0.05)
    assert v.worse and v.change == pytest.approx(-0.5)


def test_significant_but_small_changes_pass() -> None:
    # 10 % worse, every sample: significant, yet below the tolerance.
    base = [1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06, 1.07]
    now = [x * 0.9 for x in base]
    v = gate.compare_one("f", "ratio", base, now, higher_is_better=True, tolerance=0.25,
                         alpha=0.05)
    assert v.p is not None and v.p < 0.05
    assert not v.worse


def test_too_few_samples_fall_back_to_the_stored_range() -> None:
    base = [1.0, 1.1, 0.9]
    worse = gate.compare_one("f", "MB/s", base, [0.5], higher_is_better=True, tolerance=0.25,
                             alpha=0.05)
    assert worse.p is None and worse.worse
    inside = gate.compare_one("f", "MB/s", base, [0.8], higher_is_better=True, tolerance=0.25,
                              alpha=0.05)
    assert inside.p is None and not inside.worse


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spread=st.floats(0.01, 0.5), n=st.integers(3, 8))
def test_identical_distributions_fail_no_more_often_than_alpha(seed: int, spread: float,
                                                               n: int) -> None:
    # Without a tolerance only the test guards: its false alarms must stay near alpha. 300
    # trials at alpha 0.05: mean 15, sd 3.8; 0.05 + 5 sd = 0.113 is never exceeded by
    # chance in practice, while a broken test (e.g. two-sided halves, wrong direction)
    # shows up far above it.
    rng = random.Random(seed)
    alpha = 0.05
    trials = 300
    fails = sum(
        gate.compare_one("f", "ratio", _noisy(rng, 1.0, spread, n), _noisy(rng, 1.0, spread, n),
                         higher_is_better=True, tolerance=0.0, alpha=alpha).worse
        for _ in range(trials)
    )
    assert fails / trials <= 0.113


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spread=st.floats(0.0, 0.14), n=st.integers(1, 8),
       m=st.integers(1, 8))
def test_noise_below_the_tolerance_never_fails(seed: int, spread: float, n: int,
                                               m: int) -> None:
    # Samples within ±14 %: any two medians are at most 1 - 0.86/1.14 = 24.6 % apart, below
    # the default tolerance, so nothing may fail whatever the test says (any sample counts).
    rng = random.Random(seed)
    v = gate.compare_one("f", "ratio", _noisy(rng, 1.0, spread, n), _noisy(rng, 1.0, spread, m),
                         higher_is_better=True, tolerance=gate.DEFAULT_TOLERANCE,
                         alpha=gate.DEFAULT_ALPHA)
    assert not v.worse


@given(seed=st.integers(0, 2**32 - 1), spread=st.floats(0.0, 0.15),
       factor=st.floats(0.05, 0.55), n=st.integers(5, 12), hib=st.booleans())
def test_a_shift_beyond_the_tolerance_always_fails(seed: int, spread: float, factor: float,
                                                   n: int, hib: bool) -> None:
    # Efficiency at most 0.55 of the baseline (a halving and worse), noise up to ±15 %:
    # every new sample is worse than every stored one, so with 5+ samples each the exact
    # test gives p <= 1/252 and the median change is beyond -25 %.
    rng = random.Random(seed)
    base = _noisy(rng, 100.0, spread, n)
    shifted = _noisy(rng, 100.0 * factor if hib else 100.0 / factor, spread, n)
    v = gate.compare_one("f", "x", base, shifted, higher_is_better=hib,
                         tolerance=gate.DEFAULT_TOLERANCE, alpha=gate.DEFAULT_ALPHA)
    assert v.worse, v


def test_a_different_figure_set_is_refused() -> None:
    rng = random.Random(3)
    base, now = _figures(rng), _figures(rng)
    del now["echo 64 B p50"]
    with pytest.raises(gate.GateError, match="not measured now: echo 64 B p50"):
        gate.compare(base, now)


# --- baseline files and the command line ---------------------------------------------------


def test_save_format_round_trips(tmp_path: Path) -> None:
    rng = random.Random(4)
    figures = _figures(rng)
    path = tmp_path / "b.json"
    _write_baseline(path, figures)
    again = gate.samples_from(gate.load(str(path)))
    assert {n: f.ratio for n, f in again.items()} == {n: f.ratio for n, f in figures.items()}
    assert not any(v.worse for v in gate.compare(again, figures))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{", "not JSON"),
        ("[]", "not an esp-hil bench baseline"),
        ('{"schema": "esp-hil-bench/1"}', "not an esp-hil bench baseline"),
        (json.dumps({"schema": gate.SCHEMA, "figures": {}}), "holds no figures"),
        (json.dumps({"schema": gate.SCHEMA, "figures": {"x": {"higher_is_better": True,
                     "ratio": [1.0], "ours": []}}}), "figure 'x' has no usable samples"),
        (json.dumps({"schema": gate.SCHEMA, "figures": {"x": {"higher_is_better": True,
                     "ratio": [1.0, "a"], "ours": [1.0]}}}), "figure 'x' has no usable"),
        (json.dumps({"schema": gate.SCHEMA, "figures": {"x": {"higher_is_better": True,
                     "ratio": [1.0], "ours": [1.0]}}}),
         "different figure set (not measured now: x; not in the baseline: bulk max-message"),
    ],
)
def test_bad_baselines_are_one_line_before_any_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    # A device spec that cannot come up: the file must be refused before it is tried.
    assert main(["bench", "--device", "/dev/nonexistent-esp-hil", "--compare", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("esp-hil bench: ") and message in err[0], err
    assert "Traceback" not in err[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--tolerance", "1.5"], "--tolerance must be in [0, 1)"),
        (["--alpha", "0"], "--alpha must be in (0, 1)"),
        (["--sizes", "64"],
         "--save/--compare measure the gate's own figures: no --sizes or --plot"),
        (["--advisory", "bulk down"],
         "--advisory 'bulk down' is not a gate figure (one of: echo 64 B p50, bulk "
         "max-message up, bulk max-message down, echo max-message p50)"),
        (["--advisory", "bulk max-message down"], "--advisory goes with --compare"),
    ],
)
def test_bad_gate_options_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str],
                                       message: str, tmp_path: Path) -> None:
    argv = ["bench", "--device", "/dev/nonexistent-esp-hil", "--save", str(tmp_path / "b.json")]
    assert main([*argv, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"esp-hil bench: {message}"]
