"""Models: names resolved to weights on disk (:mod:`.resolve`).

Importing this package is cheap: it imports neither torch nor transformers nor huggingface_hub.
"""

from .resolve import (ALIASES, WEIGHT_PATTERNS, ResolvedModel, expand_alias, hub_cache_dir, hub_offline, looks_like_path,
                      resolve_model)

__all__ = ["ALIASES", "WEIGHT_PATTERNS", "ResolvedModel", "expand_alias", "hub_cache_dir", "hub_offline", "looks_like_path",
           "resolve_model"]

from .gguf import ImportedModel, import_gguf, read_provenance  # noqa: E402

__all__ += ["ImportedModel", "import_gguf", "read_provenance"]
