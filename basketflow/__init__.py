"""basketflow: a real-time feature store for online retail.

The Python entry point is :class:`FeatureStore` (``from basketflow import FeatureStore``),
loaded on first use so that importing a part of the package (``basketflow.schemas.events``
in a producer, say) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from basketflow.app.feature_store import FeatureStore

__all__ = ["FeatureStore"]


def __getattr__(name: str) -> Any:
    """``basketflow.FeatureStore``, imported when first asked for (PEP 562)."""
    if name == "FeatureStore":
        from basketflow.app.feature_store import FeatureStore
        return FeatureStore
    raise AttributeError(f"module 'basketflow' has no attribute {name!r}")
