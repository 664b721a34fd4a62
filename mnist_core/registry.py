"""The model picker's catalog of earlier versions, now the model store (store.py): ModelRegistry is
ModelStore (get(key) -> the loaded Predictor, choices() every model labelled, paths()), SHIPPED_KEY the
shipped checkpoint's key. Kept so that older imports keep working."""
from __future__ import annotations

from .store import BUILTIN_KEYS, CANVAS_KEY, SHIPPED_KEY, ModelStore

ModelRegistry = ModelStore

__all__ = ["BUILTIN_KEYS", "CANVAS_KEY", "SHIPPED_KEY", "ModelRegistry", "ModelStore"]
