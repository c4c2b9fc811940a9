"""The Gymnasium and PettingZoo signal environments on real SUMO (tiny windows)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadtwin.errors import ConfigError, InputError, SimulationError

gymnasium = pytest.importorskip("gymnasium")
pytest.importorskip("pettingzoo")

from roadtwin.sim import resco  # noqa: E402
from roadtwin.sim.env import (  # noqa: E402
    ENV_ID,
    PARALLEL_ENV_ID,
    TrafficSignalEnv,
    TrafficSignalParallelEnv,
    make_parallel,
)

pytestmark = pytest.mark.timeout(120)


def _has_sumo_rl() -> bool:
    try:
        resco.resco_dir()
    except ImportError:
        return False
    return True


needs_resco = pytest.mark.skipif(not _has_sumo_rl(), reason="sumo-rl (the bench extra) is not installed")


@pytest.fixture(scope="module")
def grid(signal_grid: tuple[Path, Path]) -> dict[str, Any]:
    """The 3x3 signal grid with sidewalks and crossings (conftest), first 5 minutes."""
    net, trips = signal_grid
    return {"net_file": net, "route_files": trips, "begin": 0, "end": 300}


def _switches(path: Path, tls: str) -> list[tuple[float, str]]:
    return [
        (float(e.get("time", 0)), e.get("state", ""))
        for e in ET.parse(path).getroot().iter("tlsState")
        if e.get("id") == tls
    ]


def _switch_log(folder: Path, tls: str) -> tuple[Path, Path]:
    out = folder / f"switches-{tls}.xml"
    add = folder / f"switches-{tls}.add.xml"
    add.write_text(
        f'<additional><timedEvent type="SaveTLSSwitchStates" source="{tls}" dest="{out}"/></additional>'
    )
    return add, out


def _green_durations(events: list[tuple[float, str]], greens: tuple[str, ...], end: float) -> list[float]:
    """Durations of completed greens (a green ends when any other state starts)."""
    out = []
    for (t, state), (t_next, _) in zip(events, [*events[1:], (end, "")], strict=True):
        if state in greens and t_next < end:
            out.append(t_next - t)
    return out


# --- API conformance ------------------------------------------------------------------------------------


@needs_resco
def test_check_env_cologne1() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make(ENV_ID, **{**resco.resco_env_kwargs("cologne1"), "end": 25200 + 120})
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_check_env_grid_with_crossings(grid: dict[str, Any]) -> None:
    from gymnasium.utils.env_checker import check_env

    env = TrafficSignalEnv(**grid, tls_id="B1", reward="pressure", neighbours=True)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_check_env_timing_mode(grid: dict[str, Any]) -> None:
    from gymnasium.utils.env_checker import check_env

    env = TrafficSignalEnv(**grid, tls_id="B1", action_mode="timing", cycle_time=60, reward="delay")
    try:
        assert env.action_space.n == 3  # equal split + one plan favouring each of the two greens
        check_env(env, skip_render_check=True)
    finally:
        env.close()


@needs_resco
def test_parallel_api_cologne3() -> None:
    from pettingzoo.test import parallel_api_test

    env = make_parallel(PARALLEL_ENV_ID, **{**resco.resco_env_kwargs("cologne3"), "end": 25200 + 300})
    try:
        assert len(env.possible_agents) == 3
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


def test_registration_and_lazy_imports() -> None:
    assert ENV_ID in gymnasium.registry
    code = "import sys, roadtwin.sim; print(any(m in sys.modules for m in ('gymnasium', 'pettingzoo')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- behaviour ------------------------------------------------------------------------------------------


def test_min_green_holds_when_switching_every_step(grid: dict[str, Any], tmp_path: Path) -> None:
    add, log = _switch_log(tmp_path, "B1")
    env = TrafficSignalEnv(
        **grid, tls_id="B1", additional_files=add, delta_time=5, yellow_time=2, min_green=12, max_green=40
    )
    try:
        _, info = env.reset(seed=1)
        done = False
        while not done:
            _, _, _, done, info = env.step((info["green"] + 1) % 2)  # always ask for the other green
        greens = env.layout.programs[0].greens
    finally:
        env.close()
    durations = _green_durations(_switches(log, "B1"), greens, end=300)
    assert len(durations) >= 10
    assert min(durations) >= 12
    # After a switch the green's age at decisions is 3, 8, 13 s: it switches at the first age >= 12.
    assert durations[0] == 15 and set(durations[1:]) == {13.0}
    states = [s for _, s in _switches(log, "B1")]
    # A yellow separates any two greens.
    for a, b in itertools.pairwise(states):
        assert not (a in greens and b in greens)


def test_max_green_forces_the_next_green(grid: dict[str, Any], tmp_path: Path) -> None:
    add, log = _switch_log(tmp_path, "B1")
    env = TrafficSignalEnv(
        **grid, tls_id="B1", additional_files=add, delta_time=10, yellow_time=3, min_green=5, max_green=40
    )
    try:
        _, info = env.reset(seed=1)
        done, switched = False, 0
        while not done:
            _, _, _, done, info = env.step(info["green"])  # never ask for a change
            switched += info["switched"]
        greens = env.layout.programs[0].greens
    finally:
        env.close()
    durations = _green_durations(_switches(log, "B1"), greens, end=300)
    assert switched >= 5 and durations
    assert all(30 < d <= 40 for d in durations)


def test_backlog_makes_a_blocked_entry_costly(grid: dict[str, Any]) -> None:
    def run(weight: float) -> tuple[list[float], list[float]]:
        env = TrafficSignalEnv(
            **grid, tls_id="A1", reward="queue", backlog_weight=weight, min_green=5, max_green=10**6
        )
        rewards, backlogs = [], []
        try:
            env.reset(seed=3)
            for _ in range(30):  # hold green 0 for 300 s: the red approaches' entries fill up
                _, reward, _, _, info = env.step(0)
                rewards.append(reward)
                backlogs.append(info["backlog"])
        finally:
            env.close()
        return rewards, backlogs

    with_backlog, backlog = run(1.0)
    without, backlog_again = run(0.0)
    assert backlog == backlog_again and max(backlog) > 0
    np.testing.assert_allclose(np.array(with_backlog), np.array(without) - np.array(backlog))
    assert sum(with_backlog) < sum(without)


def test_phase_observation_sees_the_blocked_entry(grid: dict[str, Any]) -> None:
    """Vehicles kept out of a full entry count as halting on the lanes they will join, in the greens
    that serve those lanes."""
    env = TrafficSignalEnv(**grid, tls_id="A1", observation="phases", min_green=5, max_green=10**6)
    try:
        env.reset(seed=3)
        for _ in range(30):  # hold green 0: the red approaches' entries fill up
            obs, _, _, _, info = env.step(0)
        conn = env.session.conn  # type: ignore[union-attr]
        prog = env.layout.programs[0]
        waiting = env._core.monitor.backlog_lanes(conn)
        assert info["backlog"] > 0 and waiting.sum() == pytest.approx(info["backlog"])
        lane_pos = {lane: i for i, lane in enumerate(env.layout.lanes)}
        slots = obs[: 6 * prog.n_greens].reshape(prog.n_greens, 6)
        seen_kept_out = 0.0
        for g in range(prog.n_greens):
            lanes = [prog.in_lanes[prog.movements[m][0]] for m in prog.phase_movements[g]]
            halting = sum(conn.lane.getLastStepHaltingNumber(lane) for lane in lanes)
            kept_out = sum(waiting[lane_pos[lane]] for lane in lanes)
            assert slots[g, 2] == pytest.approx((halting + kept_out) / (halting + kept_out + 10.0), rel=1e-5)
            seen_kept_out += kept_out
        assert seen_kept_out > 0  # the greens' slots counted vehicles kept out
    finally:
        env.close()


def test_observation_equals_per_lane_getters(grid: dict[str, Any]) -> None:
    env = TrafficSignalParallelEnv(**grid, reward="wait")
    try:
        env.reset(seed=5)
        for _ in range(12):
            obs, _, _, _, infos = env.step({a: 1 for a in env.agents})
        conn = env.session.conn  # type: ignore[union-attr]
        for s, agent in enumerate(env.possible_agents):
            prog = env.layout.programs[s]
            expected = []
            for lane in prog.in_lanes:
                capacity = max(conn.lane.getLength(lane) / 7.5, 1.0)
                expected += [
                    min(conn.lane.getLastStepHaltingNumber(lane) / capacity, 1.0),
                    min(conn.lane.getLastStepVehicleNumber(lane) / capacity, 1.0),
                    min(conn.lane.getLastStepMeanSpeed(lane) / conn.lane.getMaxSpeed(lane), 1.0),
                ]
            green = infos[agent]["green"]
            assert prog.greens[green] == conn.trafficlight.getRedYellowGreenState(prog.tls_id)
            expected += [float(g == green) for g in range(prog.n_greens)]
            n = len(expected)
            np.testing.assert_allclose(obs[agent][:n], np.array(expected, dtype=np.float32), rtol=1e-6)
            assert infos[agent]["queue"] == sum(
                conn.lane.getLastStepHaltingNumber(lane) for lane in prog.in_lanes
            )
            assert infos[agent]["wait"] == pytest.approx(
                sum(conn.lane.getWaitingTime(lane) for lane in prog.in_lanes)
            )
    finally:
        env.close()


def test_phase_observation_equals_per_lane_getters(grid: dict[str, Any]) -> None:
    env = TrafficSignalParallelEnv(**grid, observation="phases", max_red=90.0)
    try:
        env.reset(seed=5)
        for t in range(15):
            obs, _, _, _, infos = env.step({a: (t // 4) % 2 for a in env.agents})
        conn = env.session.conn  # type: ignore[union-attr]
        slots = int(max(p.n_greens for p in env.layout.programs))
        red = env._core.actuator.red  # type: ignore[union-attr]
        # vehicles kept out of full entries, per lane they will join (also counted as halting there)
        lane_pos = {lane: i for i, lane in enumerate(env.layout.lanes)}
        waiting = env._core.monitor.backlog_lanes(conn)
        pending = conn.simulation.getPendingVehicles()
        assert waiting.sum() == pytest.approx(sum(infos[a]["backlog"] for a in env.possible_agents))
        assert waiting.sum() <= len(pending)
        seen_traffic = False
        for s, agent in enumerate(env.possible_agents):
            prog = env.layout.programs[s]
            o = obs[agent]
            assert o.shape == (6 * slots + 2,)
            grid_ = o[: 6 * slots].reshape(slots, 6)
            green = infos[agent]["green"]
            for g in range(slots):
                if g >= prog.n_greens:
                    assert not grid_[g].any()  # a padded slot is all zeros
                    continue
                moves = [prog.movements[m] for m in prog.phase_movements[g]]
                halting = sum(conn.lane.getLastStepHaltingNumber(prog.in_lanes[i]) for i, _ in moves)
                vehicles = sum(conn.lane.getLastStepVehicleNumber(prog.in_lanes[i]) for i, _ in moves)
                kept_out = sum(waiting[lane_pos[prog.in_lanes[i]]] for i, _ in moves)
                occ = [
                    min(
                        conn.lane.getLastStepVehicleNumber(prog.out_lanes[j])
                        / max(conn.lane.getLength(prog.out_lanes[j]) / 7.5, 1.0),
                        1.0,
                    )
                    for _, j in moves
                ]
                moving = vehicles - halting
                halting += kept_out
                seen_traffic |= halting > 0 and moving > 0
                expected = [
                    1.0,
                    float(g == green),
                    halting / (halting + 10.0),
                    moving / (moving + 10.0),
                    sum(occ) / max(len(occ), 1),
                    0.0 if g == green else min(red[s, g] / 90.0, 1.0),
                ]
                np.testing.assert_allclose(
                    grid_[g], np.array(expected, dtype=np.float32), rtol=1e-5, atol=1e-6
                )
            backlog = infos[agent]["backlog"]
            assert o[6 * slots + 1] == pytest.approx(backlog / (backlog + 5.0))
        assert seen_traffic  # the check compared real counts, not empty lanes
    finally:
        env.close()


def test_phase_observation_needs_phase_mode(grid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="observation"):
        TrafficSignalParallelEnv(**grid, observation="phases", action_mode="timing")
    with pytest.raises(ConfigError, match="observation"):
        TrafficSignalParallelEnv(**grid, observation="cells")  # type: ignore[arg-type]


def test_evaluation_writes_tripinfo(grid: dict[str, Any], tmp_path: Path) -> None:
    trips = tmp_path / "tripinfo.xml"
    env = TrafficSignalParallelEnv(
        **{**grid, "end": 120},
        sumo_args=["--tripinfo-output", str(trips), "--tripinfo-output.write-unfinished", "true"],
    )
    try:
        env.reset(seed=0)
        while env.agents:
            env.step({})
    finally:
        env.close()
    records = list(ET.parse(trips).getroot().iter("tripinfo"))
    assert records and any(r.get("vaporized") == "end" or float(r.get("arrival", -1)) < 0 for r in records)


def test_same_seed_same_episode_on_both_backends(grid: dict[str, Any]) -> None:
    def episode(seed: int, backend: str) -> tuple[np.ndarray, np.ndarray]:
        env = TrafficSignalParallelEnv(**{**grid, "end": 200}, backend=backend, reward="delay")  # type: ignore[arg-type]
        rng = np.random.default_rng(0)
        obs_log, rew_log = [], []
        try:
            env.reset(seed=seed)
            while env.agents:
                obs, rew, _, _, _ = env.step({a: int(rng.integers(2)) for a in env.agents})
                obs_log.append(np.concatenate(list(obs.values())))
                rew_log.append(list(rew.values()))
        finally:
            env.close()
        return np.array(obs_log), np.array(rew_log)

    a_obs, a_rew = episode(11, "libsumo")
    b_obs, b_rew = episode(11, "libsumo")
    c_obs, c_rew = episode(11, "traci")
    d_obs, _ = episode(12, "libsumo")
    np.testing.assert_array_equal(a_obs, b_obs)
    np.testing.assert_array_equal(a_rew, b_rew)
    np.testing.assert_allclose(a_obs, c_obs, atol=1e-6)
    np.testing.assert_allclose(a_rew, c_rew, atol=1e-6)
    assert not np.array_equal(a_obs, d_obs)


def test_each_reset_draws_a_new_sumo_seed(grid: dict[str, Any]) -> None:
    env = TrafficSignalEnv(**grid, tls_id="B1", seed=4)
    try:
        env.reset()
        first = env.session.conn.simulation.getOption("seed")  # type: ignore[union-attr]
        env.reset()
        second = env.session.conn.simulation.getOption("seed")  # type: ignore[union-attr]
        env.reset(seed=4)
        again = env.session.conn.simulation.getOption("seed")  # type: ignore[union-attr]
    finally:
        env.close()
    assert first != second and first == again


def test_an_explicit_seed_supersedes_the_constructors(grid: dict[str, Any]) -> None:
    # reset(seed=7) then reset() replays what a fresh env reset with 7 twice plays: the constructor's
    # seed (4) must not come back on the second reset (it did: every evaluation's second episode
    # replayed the constructor's first).
    seeds = []
    for first in (None, 7):
        env = TrafficSignalEnv(**grid, tls_id="B1", seed=4 if first is not None else 7)
        try:
            env.reset(seed=first)
            env.reset()
            seeds.append(env.session.conn.simulation.getOption("seed"))  # type: ignore[union-attr]
        finally:
            env.close()
    assert seeds[0] == seeds[1]


def test_timing_plans_set_green_durations(grid: dict[str, Any], tmp_path: Path) -> None:
    add, log = _switch_log(tmp_path, "B1")
    env = TrafficSignalEnv(
        **grid,
        tls_id="B1",
        additional_files=add,
        action_mode="timing",
        cycle_time=60,
        min_green=10,
        max_green=40,
    )
    try:
        env.reset(seed=2)
        for plan in (1, 2):
            _, _, _, _, info = env.step(plan)
            assert info["plan"] == plan
        greens = env.layout.programs[0].greens
        plans = env._core.planner.plans[0]  # type: ignore[union-attr]
    finally:
        env.close()
    events = _switches(log, "B1")
    starts = [t for t, s in events if s == greens[0] and t >= 0]
    assert starts[:2] == [0.0, 60.0]
    first_green = {t: s for t, s in events}
    assert first_green[60.0 + plans[2][0]] != greens[0]  # the second cycle ran plan 2's first green
    assert _green_durations(events, greens, end=120) == [plans[1][0], plans[1][1], plans[2][0], plans[2][1]]


def test_supersuit_shared_policy_vec_env(grid: dict[str, Any]) -> None:
    ss = pytest.importorskip("supersuit")
    env = TrafficSignalParallelEnv(**{**grid, "end": 100}, tls_ids=["A0", "B1", "C2"], neighbours=True)
    assert len({env.observation_space(a).shape for a in env.possible_agents}) > 1  # padding needed
    padded = ss.pad_action_space_v0(ss.pad_observations_v0(env))
    vec = ss.concat_vec_envs_v1(
        ss.pettingzoo_env_to_vec_env_v1(padded), 1, num_cpus=0, base_class="stable_baselines3"
    )
    try:
        obs = vec.reset()
        width = max(env.observation_space(a).shape[0] for a in env.possible_agents)
        assert obs.shape == (3, width)
        finished = 0
        for _ in range(12):  # past the end of the 10-step episode: the vec env resets itself
            obs, rewards, dones, _ = vec.step(np.array([vec.action_space.sample() for _ in range(3)]))
            finished += int(dones.all())
        assert obs.shape == (3, width) and rewards.shape == (3,) and finished == 1
        sb3 = pytest.importorskip("stable_baselines3")
        model = sb3.PPO("MlpPolicy", vec, n_steps=8, batch_size=24, n_epochs=1, device="cpu")
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a folder in /tmp
        model.learn(total_timesteps=24)  # one policy, three signals
        action, _ = model.predict(obs, deterministic=True)
        assert action.shape == (3,)
    finally:
        vec.close()
        env.close()


@pytest.mark.timeout(60)
def test_vec_env_in_worker_processes(grid: dict[str, Any]) -> None:
    """Copies of an environment (pickled, libsumo each) step side by side in their own processes."""
    ss = pytest.importorskip("supersuit")
    env = TrafficSignalParallelEnv(**{**grid, "end": 60}, tls_ids=["A1", "C1"])
    env.reset(seed=0)  # a running simulation does not travel with the copies
    vec = ss.concat_vec_envs_v1(ss.pettingzoo_env_to_vec_env_v1(env), 2, num_cpus=2, base_class="gymnasium")
    try:
        vec.reset(seed=1)
        for _ in range(3):
            obs, rewards, *_ = vec.step(np.zeros(4, dtype=np.int64))
        assert obs.shape == (4, env.observation_space("A1").shape[0]) and np.isfinite(rewards).all()
    finally:
        vec.close()
        env.close()


def test_one_libsumo_simulation_per_process(grid: dict[str, Any]) -> None:
    first = TrafficSignalEnv(**grid, tls_id="B1")
    second = TrafficSignalEnv(**grid, tls_id="A1")
    try:
        first.reset(seed=0)
        with pytest.raises(SimulationError, match="one simulation per process"):
            second.reset(seed=0)
        first.close()
        second.reset(seed=0)  # fine once the first is closed
        second.step(0)
    finally:
        first.close()
        second.close()


def test_errors_name_the_bad_setting(grid: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reward"):
        TrafficSignalEnv(**grid, reward="speed")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="delta_time"):
        TrafficSignalEnv(**grid, delta_time=3, yellow_time=3)
    with pytest.raises(ConfigError, match="tls_ids"):
        TrafficSignalEnv(**grid, tls_id="nope")
    with pytest.raises(InputError, match="net_file"):
        TrafficSignalEnv(**{**grid, "net_file": tmp_path / "missing.net.xml"})
    with pytest.raises(ConfigError, match="cycle_time"):
        TrafficSignalEnv(**grid, action_mode="timing", cycle_time=10)
    with pytest.raises(ConfigError, match="env_id"):
        make_parallel("roadtwin/Nope-v0", **grid)
    env = TrafficSignalEnv(**grid, tls_id="B1")
    try:
        with pytest.raises(SimulationError, match="reset"):
            env.step(0)
        env.reset(seed=0)
        with pytest.raises(ConfigError, match="action"):
            env.step(7)
        env.step(1)  # a bad action does not end the episode
    finally:
        env.close()


@needs_resco
def test_resco_files() -> None:
    assert set(resco.RESCO_SCENARIOS) == {
        "cologne1", "cologne3", "cologne8", "ingolstadt1", "ingolstadt7", "ingolstadt21",
    }  # fmt: skip
    net, routes, begin, end = resco.resco_files("ingolstadt21")
    assert net.is_file() and routes.is_file() and (begin, end) == (57600, 61200)
    with pytest.raises(ConfigError, match="scenario"):
        resco.resco_files("cologne2")
