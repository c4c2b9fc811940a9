"""Controller evaluation: the tidy table, the summary, the plots and the ``roadtwin agents eval`` command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import yaml

from roadtwin.agents import RESULT_COLUMNS, evaluate, seed_list
from roadtwin.errors import ConfigError
from roadtwin.workspace import Workspace


def _has_resco() -> bool:
    spec = importlib.util.find_spec("sumo_rl")
    return bool(
        spec
        and spec.submodule_search_locations
        and (Path(next(iter(spec.submodule_search_locations))) / "nets/RESCO/cologne1").is_dir()
    )


needs_resco = pytest.mark.skipif(not _has_resco(), reason="sumo-rl's RESCO networks are not installed")


@pytest.fixture(scope="module")
def cli_main():
    """``roadtwin.cli.main``."""
    from roadtwin import cli

    return cli.main


def test_seed_list() -> None:
    assert seed_list(3) == [0, 1, 2]
    assert seed_list([4, 2, 4]) == [4, 2]
    with pytest.raises(ConfigError, match="seeds"):
        seed_list(0)


@needs_resco
def test_evaluate_writes_a_tidy_table_and_plots(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path)
    result = evaluate(
        scenario="cologne1",
        controllers=["fixed", "max-pressure"],
        seeds=2,
        workspace=ws,
        duration_s=600,
        progress=False,
    )
    folder = result.folder
    assert folder.parent == tmp_path / "evaluations"
    assert folder.name.startswith("cologne1__")
    table = pd.read_csv(folder / "results.csv")
    assert tuple(table.columns) == RESULT_COLUMNS
    assert sorted(zip(table["controller"], table["seed"], strict=True)) == [
        ("fixed", 0), ("fixed", 1), ("max-pressure", 0), ("max-pressure", 1),
    ]  # fmt: skip
    assert table["resco_delay_s"].gt(0).all() and table["queue"].ge(0).all()
    assert all((Path(d) / "metrics.json").is_file() for d in table["run_dir"])
    # a new seed is a new run: the two seeds of one controller differ
    assert table.groupby("controller")["exact_delay_s"].nunique().eq(2).all()
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["controller"]) == ["fixed", "max-pressure"]
    assert {"resco_delay_s_mean", "resco_delay_s_std", "never_inserted_mean"} <= set(summary.columns)
    for name in ("delay.png", "metrics.png", "delay_by_seed.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "max-pressure" in html and "data:image/png;base64" in html
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["seeds"] == [0, 1] and config["controllers"] == ["fixed", "max-pressure"]
    assert not list((tmp_path / "evaluations").glob(".*tmp*"))


@needs_resco
def test_eval_cli_with_config_file(tmp_path: Path, cli_main, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "scenario": "cologne1",
                "controllers": ["fixed", "actuated"],
                "duration_s": 300,
                "controller_options": {"actuated": {"max_green": 40}},
            }
        )
    )
    code = cli_main(
        [
            "agents",
            "eval",
            "--config",
            str(config),
            "--seeds",
            "1",
            "--workspace",
            str(tmp_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    folders = list((tmp_path / "evaluations").iterdir())
    assert len(folders) == 1
    table = pd.read_csv(folders[0] / "results.csv")
    assert list(table["controller"]) == ["fixed", "actuated"] and list(table["seed"]) == [0, 0]
    assert "actuated" in out and "evaluation folder" in out
    run_config = yaml.safe_load((Path(table["run_dir"][1]) / "config.yaml").read_text())
    assert run_config["run"]["controller_options"]["max_green"] == 40


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenario", "atlantis", "--controller", "fixed"], "atlantis"),
        (["--scenario", "cologne1", "--controller", "telepathy"], "telepathy"),
        (["--scenario", "cologne1", "--seeds", "0"], "seeds"),
    ],
)
def test_eval_cli_bad_input_is_one_line_exit_2(
    tmp_path: Path, cli_main, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code = cli_main(["agents", "eval", *args, "--workspace", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_summary_table_names_a_policy_by_its_run_and_shows_every_metric() -> None:
    from rich.console import Console

    from roadtwin.agents import METRIC_COLUMNS
    from roadtwin.agents.commands import print_summary

    run = "rl:roadtwin-data/runs/yizhuang_morning_peak__ppo__0__20261202-112444"
    rows = []
    for spec in (run, f"{run}/best/best_model.zip", "max-pressure"):
        row: dict[str, object] = {"controller": spec, "runs": 3}
        row |= {f"{c}_mean": 110.44 for c in METRIC_COLUMNS} | {f"{c}_std": 6.88 for c in METRIC_COLUMNS}
        rows.append(row)
    console = Console(record=True, width=100)
    print_summary(console, pd.DataFrame(rows), title="zone")
    text = console.export_text()
    assert "roadtwin-data/runs" not in text.replace("\n", "")
    assert text.count("110.44") == 3 * len(METRIC_COLUMNS)
