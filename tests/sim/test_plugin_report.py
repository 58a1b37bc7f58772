"""A failed test's report on a twin: the console since the test began, and the twin's own log."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TEST = """
def test_the_ap_goes_away(device):
    device.wifi.set_password("not-the-one-we-joined-with")
    device.console.expect(r"^ESP-HIL WIFI lost", 10)
    assert False, "the user's assertion"
"""


@pytest.mark.usefixtures("this_checkout")
@pytest.mark.parametrize("backend", ["sim", "sim-direct"])
def test_a_failed_test_shows_the_twin_s_log_since_it_began(
    pytester: pytest.Pytester, backend: str
) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess(f"--device={backend}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the user's assertion" in out
    section = out.split("esp-hil twin log (twin ", 1)[1]
    assert "[shim] station lost the AP: it changed its password (reason 2)" in section
