"""Forecast metrics: MAE, RMSE and MAPE per horizon, with floors that keep near-empty edges from dominating.

Torch-free, so that scoring forecasts (the demo, the store) does not load the forecasting model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAPE_FLOORS", "forecast_metrics"]

#: Denominator floors of MAPE per variable (flow in veh/h, speed in km/h).
MAPE_FLOORS = {"flow": 60.0, "speed": 5.0}


def forecast_metrics(actual: np.ndarray, predicted: np.ndarray, *, floor: float) -> dict[str, float]:
    """Return MAE, RMSE and MAPE (in %) of ``predicted`` against ``actual``, over all finite pairs.

    MAPE divides each error by ``max(|actual|, floor)``.
    """
    a, p = np.asarray(actual, dtype=np.float64).ravel(), np.asarray(predicted, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(p)
    e = p[ok] - a[ok]
    if e.size == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "mape": float("nan")}
    return {
        "mae": float(np.mean(np.abs(e))),
        "rmse": float(np.sqrt(np.mean(e**2))),
        "mape": float(100 * np.mean(np.abs(e) / np.maximum(np.abs(a[ok]), floor))),
    }
