"""Pictures of a run: ``plot.png`` with the network's state over time and the delay distribution."""

from __future__ import annotations

from pathlib import Path

from roadtwin._io import atomic_path
from roadtwin.sim.metrics import RunMetrics, read_summary, read_tripinfo

__all__ = ["plot_run"]


def plot_run(run_dir: Path, *, metrics: RunMetrics | None = None) -> Path:
    """Write ``run_dir/plot.png``: vehicles running and waiting to enter, mean speed, delay histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = read_summary(run_dir / "summary.xml")
    vehicles, _ = read_tripinfo(run_dir / "tripinfo.xml")
    hours = summary["time"] / 3600.0

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), constrained_layout=True)
    ax = axes[0, 0]
    ax.plot(hours, summary["running"], label="running")
    ax.plot(hours, summary["halting"], label="halting")
    ax.plot(hours, summary["waiting"], label="waiting to enter")
    ax.set(title="Vehicles in the network", xlabel="time of day (h)", ylabel="vehicles")
    ax.legend()

    ax = axes[0, 1]
    ax.plot(hours, summary["meanSpeed"] * 3.6, color="tab:green")
    ax.set(title="Mean speed of running vehicles", xlabel="time of day (h)", ylabel="km/h")

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
