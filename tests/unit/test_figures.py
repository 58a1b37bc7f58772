"""Figures travel through user_properties and come back whole."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from harness.figures import Figure, FigureRecorder, format_table


@given(
    name=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s),
    value=st.floats(allow_nan=False, allow_infinity=False, width=32),
    unit=st.from_regex(r"[A-Za-z/%]{1,6}", fullmatch=True),
)
def test_property_round_trip(name: str, value: float, unit: str) -> None:
    fig = Figure("t::x", name, value, unit)
    back = Figure.from_property("t::x", *fig.property())
    assert back is not None
    assert (back.name, back.unit) == (name, unit)
    assert math.isclose(back.value, value, rel_tol=1e-5, abs_tol=1e-30)


def test_other_properties_are_not_figures() -> None:
    assert Figure.from_property("t", "something-else", "1 s") is None


def test_recorder_appends_to_the_test_properties() -> None:
    props: list[tuple[str, object]] = []
    rec = FigureRecorder("t::y", props)
    with rec.measure("bulk", nbytes=10_000_000, messages=1000):
        pass
    names = [p[0] for p in props]
    assert names == ["esp-hil:bulk throughput", "esp-hil:bulk rate"]
    assert all(f.value > 0 for f in rec.recorded)
    table = format_table(rec.recorded)
    assert table[0].startswith("figure") and len(table) == 3 and "t::y" in table[1]
