"""Test support lives in the package (``mmstudio.tiny_models``) so benchmarks can use it too."""

from mmstudio.tiny_models import *  # noqa: F403
from mmstudio.tiny_models import FAKE_COMMIT, install_in_hub_cache  # noqa: F401
