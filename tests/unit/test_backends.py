"""The backend table: a spec names a row, anything else is a board."""

from __future__ import annotations

import pytest

from harness.backends import BACKENDS, backend_for, is_twin_spec


@pytest.mark.parametrize("spec", ["sim", "twin", "sim-direct"])
def test_the_twin_specs_have_rows(spec: str) -> None:
    assert backend_for(spec) is BACKENDS[spec]
    assert is_twin_spec(spec)


@pytest.mark.parametrize("spec", ["/dev/ttyUSB0", "rfc2217://127.0.0.1:4000", "COM3"])
def test_any_other_spec_is_a_board(spec: str) -> None:
    assert backend_for(spec).kind == "board"
    assert not is_twin_spec(spec)
