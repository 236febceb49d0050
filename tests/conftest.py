"""Settings shared by every test: a deterministic, bounded Hypothesis profile.

Property tests run the same examples on every run (`derandomize`), keep no example database
between runs and have no per-example deadline (the machine is shared), so they are never flaky
and stay fast. `HYPOTHESIS_PROFILE=thorough` runs many more examples when hunting for bugs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=80,
    print_blob=False,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    derandomize=False,
    database=None,
    deadline=None,
    max_examples=5_000,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
