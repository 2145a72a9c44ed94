"""Shared test configuration: Hypothesis profiles.

``NPCONV_HYPOTHESIS_PROFILE=soak pytest`` runs the property tests with tens of
thousands of examples; the default profile keeps the whole run to a few minutes.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "soak",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("NPCONV_HYPOTHESIS_PROFILE", "default"))
