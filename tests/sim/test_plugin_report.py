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


CRASHING_TEST = """
def test_a_command_crashes_the_sketch(device):
    link = device.connect()
    mark = device.console.mark()
    device.control("crash")  # the test firmware stores through a null pointer
    device.wait_ready(since=mark, timeout=20)
    link.send("after")  # the chip that held the session is gone: the link says so
    link.receive(timeout=10)
"""


@pytest.mark.usefixtures("this_checkout")
def test_a_failed_test_names_the_crash_that_happened_during_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=CRASHING_TEST)
    result = pytester.runpytest_subprocess("--device=sim-direct", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "SessionLost" in out or "ConnectionLost" in out, out
    section = out.split("esp-hil firmware crash (", 1)[1]
    assert ("the firmware crashed once during this test: Exception (29); its report is in the "
            "console below") in section
