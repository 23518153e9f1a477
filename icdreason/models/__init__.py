"""Models: names resolved to weights on disk (:mod:`.resolve`), the released models' profiles (:mod:`.profiles`) and
GGUF files turned into Hugging Face folders (:mod:`.gguf`).

Importing this package is cheap: it imports neither torch nor transformers nor huggingface_hub.
"""

from .gguf import ImportedModel, import_gguf, read_provenance
from .profiles import PROFILES, ModelProfile, PromptSource, find_profile
from .resolve import (ALIASES, WEIGHT_PATTERNS, ResolvedModel, expand_alias, hub_cache_dir, hub_offline, looks_like_path,
                      resolve_model)

__all__ = ["ALIASES", "PROFILES", "WEIGHT_PATTERNS", "ImportedModel", "ModelProfile", "PromptSource", "ResolvedModel",
           "expand_alias", "find_profile", "hub_cache_dir", "hub_offline", "import_gguf", "looks_like_path",
           "read_provenance", "resolve_model"]
