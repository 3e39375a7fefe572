"""pytest configuration shared by tests/ and parity/.

Hypothesis: under CI (CI=true) examples are derandomized, so a red CI is reproducible and
never a coin flip; locally every run explores fresh examples. HYPOTHESIS_PROFILE overrides.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
