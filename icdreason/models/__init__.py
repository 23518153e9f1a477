"""Models: names resolved to weights on disk (:mod:`.resolve`); the released models' profiles (:mod:`.profiles`).

Importing this package is cheap: it imports neither torch nor transformers nor huggingface_hub.
"""

from .resolve import (ALIASES, WEIGHT_PATTERNS, ResolvedModel, expand_alias, hub_cache_dir, hub_offline, looks_like_path,
                      resolve_model)

__all__ = ["ALIASES", "WEIGHT_PATTERNS", "ResolvedModel", "expand_alias", "hub_cache_dir", "hub_offline", "looks_like_path",
           "resolve_model"]
from .profiles import PROFILES, ModelProfile, PromptSource, find_profile  # noqa: E402 - appended beside resolve

__all__ += ["PROFILES", "ModelProfile", "PromptSource", "find_profile"]
