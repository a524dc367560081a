"""mmstudio: a studio for looking inside multimodal generative models.

Public API (mirrors the CLI and the UI)::

    from mmstudio import ModelManager, Settings
    manager = ModelManager(Settings.from_env())
    manager.status()
"""

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.errors import ModelUnavailable, UserError
from mmstudio.manager import LoadedModel, ModelManager

__all__ = [
    "Catalog",
    "LoadedModel",
    "ModelManager",
    "ModelSpec",
    "ModelUnavailable",
    "Settings",
    "UserError",
]
__version__ = "0.1.0"
