import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The development audio in ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"development audio not found at {SHARED_DATA} (only developers have it)")
    return SHARED_DATA


# Property tests draw the same examples on every run (a seed derived from each test), so a
# run of the suite is reproducible on CI and on a developer's machine; set
# HYPOTHESIS_PROFILE=explore to draw new examples while working on the kernels.
from hypothesis import settings  # noqa: E402

settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))
