"""Pictures of a run: ``plot.png`` with the network's state over time and the delay distribution."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from roadtwin._io import atomic_path
from roadtwin.sim.metrics import RunMetrics, read_summary, read_tripinfo

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_network", "plot_run", "read_edgedata"]


def plot_run(run_dir: Path, *, metrics: RunMetrics | None = None) -> Path:
    """Write ``run_dir/plot.png``: vehicles running and waiting to enter, mean speed, delay histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = read_summary(run_dir / "summary.xml")
    vehicles, _ = read_tripinfo(run_dir / "tripinfo.xml")
    hours = summary["time"] / 3600.0
    # SUMO writes -1 for "no vehicle"; 5-minute means show the trend through the 90 s signal cycles.
    speed = summary["meanSpeed"].where(summary["meanSpeed"] >= 0) * 3.6
    smooth = {c: summary[c].rolling(300, min_periods=1, center=True).mean() for c in ("halting", "running")}

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), constrained_layout=True)
    ax = axes[0, 0]
    ax.plot(hours, smooth["running"], label="running")
    ax.plot(hours, summary["halting"], color="tab:orange", alpha=0.25, linewidth=0.6)
    ax.plot(hours, smooth["halting"], color="tab:orange", label="halting (5-min mean)")
    ax.plot(hours, summary["waiting"], color="tab:red", label="waiting to enter")
    ax.set(title="Vehicles in the network", xlabel="time of day (h)", ylabel="vehicles")
    ax.legend()

    ax = axes[0, 1]
    ax.plot(hours, speed, color="tab:green", alpha=0.25, linewidth=0.6)
    ax.plot(hours, speed.rolling(300, min_periods=1, center=True).mean(), color="tab:green")
    ax.set(title="Mean speed of running vehicles (5-min mean)", xlabel="time of day (h)", ylabel="km/h")
    ax.set_ylim(bottom=0)

    ax = axes[1, 0]
    if len(vehicles):
        ax.hist(vehicles["timeLoss"], bins=60, color="tab:red", alpha=0.8)
    ax.set(title="Delay per vehicle (time loss)", xlabel="s", ylabel="vehicles")

    ax = axes[1, 1]
    if len(vehicles):
        by_type = vehicles.groupby(vehicles["vType"].str.split("@").str[0])["timeLoss"].mean().sort_values()
        ax.barh(by_type.index.astype(str), by_type.to_numpy(), color="tab:purple")
    ax.set(title="Mean delay by vehicle type", xlabel="s")

    if metrics is not None:
        fig.suptitle(
            f"{run_dir.name}: {metrics.vehicles_finished} finished, {metrics.vehicles_still_running} still "
            f"running, {metrics.vehicles_never_inserted} never inserted; mean delay "
            f"{metrics.mean_time_loss_s:.1f} s",
            fontsize=10,
        )
    out = run_dir / "plot.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out


def read_edgedata(path: Path) -> pd.DataFrame:
    """Read SUMO's edge data (``edgedata.xml``) into rows of (begin, end, edge, speed, density, entered)."""
    import pandas as pd
    from lxml import etree

    rows = []
    for _, interval in etree.iterparse(str(path), events=("end",), tag="interval"):
        begin, end = float(interval.get("begin", 0)), float(interval.get("end", 0))
        for edge in interval:
            rows.append(
                {
                    "begin": begin,
                    "end": end,
                    "edge": edge.get("id"),
                    "speed": float(edge.get("speed", "nan")),
                    "density": float(edge.get("density", "nan")),
                    "entered": float(edge.get("entered", 0)),
                }
            )
        interval.clear()
    return pd.DataFrame(rows, columns=["begin", "end", "edge", "speed", "density", "entered"])


def plot_network(run_dir: Path, *, net_file: Path) -> Path | None:
    """Write ``run_dir/network.png``: edges coloured by speed relative to their limit.

    Two maps: the mean over the run, and the worst 5-minute interval (lowest vehicle-weighted speed).
    Returns ``None`` when the run has no edge data.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import LineCollection

    from roadtwin.maps import load_net

    path = run_dir / "edgedata.xml"
    if not path.exists():
        return None
    data = read_edgedata(path)
    if data.empty:
        return None
    net = load_net(net_file)
    limits = {e.getID(): e.getSpeed() for e in net.getEdges()}
    data = data[data["edge"].isin(limits)].copy()
    data["relative"] = (data["speed"] / data["edge"].map(limits)).clip(0, 1)
    weights = data["entered"].clip(lower=1)
    per_interval = (data["relative"] * weights).groupby(data["begin"]).sum() / weights.groupby(
        data["begin"]
    ).sum()
    worst = float(per_interval.idxmin())
    views = {
        "mean over the run": data.groupby("edge")["relative"].mean(),
        f"worst 5 min ({_clock(worst)}-{_clock(worst + 300)})": data[data["begin"] == worst].set_index(
            "edge"
        )["relative"],
    }
    fig, axes = plt.subplots(1, 2, figsize=(14, 7), constrained_layout=True)
    cmap = plt.get_cmap("RdYlGn")
    for ax, (title, rel) in zip(axes, views.items(), strict=True):
        segments, colours = [], []
        for edge in net.getEdges():
            if edge.getFunction() == "internal":
                continue
            segments.append(edge.getShape())
            value = rel.get(edge.getID(), np.nan)
            colours.append((0.8, 0.8, 0.8, 1.0) if np.isnan(value) else cmap(value))
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=2.2))
        tls = [
            net.getNode(n).getCoord() for n in {t.getID() for t in net.getTrafficLights()} if net.hasNode(n)
        ]
        if tls:
            xs, ys = zip(*tls, strict=True)
            ax.scatter(xs, ys, s=8, c="black", zorder=3, label="signal")
        ax.autoscale()
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(f"Speed / limit, {title}")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes, shrink=0.6, label="speed relative to the limit (grey: no traffic)")
    out = run_dir / "network.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"
