"""The dashboard's pages: each module has ``PATH``, ``TITLE``, ``layout(data)`` and ``register(app, data)``."""

from __future__ import annotations

__all__ = ["PAGES"]

#: Page modules in the order of the navigation bar.
PAGES = ("network", "forecast", "signals", "training", "datasets", "whatif")
