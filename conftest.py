"""Repo-wide pytest configuration: hypothesis profiles.

Under CI=true the ``ci`` profile is loaded: derandomized, so a CI run is reproducible. .ci/run
also runs tests/unit once under ``dev`` with a random, printed seed: a strategy must hold for
every draw, not only the derandomized one.
"""

import importlib
import os
import pkgutil

from hypothesis import HealthCheck, settings

import harness

# Hypothesis draws constants from the project modules already imported; with pytest-xdist that
# set would depend on which tests a worker ran first. Import them all now, so it never does.
for _module in pkgutil.walk_packages(harness.__path__, "harness."):
    importlib.import_module(_module.name)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
