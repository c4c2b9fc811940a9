"""A trained policy as a signal controller (``rl:PATH``).

``PATH`` is a training run folder from ``roadtwin agents train`` (its ``best/best_model.zip``, else its
``final_model.zip``, else its last checkpoint), a model ``.zip`` inside such a folder, or the name of a
policy shipped with RoadTwin (:data:`SHIPPED_POLICIES`: ``rl:zone``, the zone's morning-peak policy). The run's
``config.yaml`` says which signals the policy drives and how (``policy`` section): the controller builds
the environment's observation on the live run (:class:`~roadtwin.sim.env.SignalObserver`), pads it as
SuperSuit did in training, asks the policy for every signal's action in one batch and applies them
through :class:`~roadtwin.sim.signals.SignalActuator` (or, in timing mode,
:class:`~roadtwin.sim.signals.PlanActuator`), with the training's timings.

The model loads when the controller is built, so a bad path fails before SUMO starts; importing this
module imports neither torch nor stable-baselines3.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from roadtwin.agents.base import SignalController, register_controller
from roadtwin.errors import ConfigError, InputError

if TYPE_CHECKING:
    from roadtwin.sim.backend import SumoSession
    from roadtwin.sim.inputs import SimInputs

__all__ = ["BEST_ZONE_CONTROLLER", "SHIPPED_POLICIES", "PolicySource", "RLController", "find_policy"]

#: Policies shipped in ``agents/policies/``, by name: ``zone`` is one PPO policy for the 88 signals of the
#: Yizhuang morning peak, trained by ``roadtwin agents train --config agents/configs/zone_ppo_imitate.yaml``
#: (its run folder: ``config.yaml``, ``best/best_model.zip``, ``train.json``, ``imitation.json``).
SHIPPED_POLICIES: dict[str, Path] = {"zone": Path(__file__).resolve().parent / "policies" / "zone"}

#: The controller with the lowest delay on the zone's morning peak in the zone evaluation (README): the
#: shipped policy, 79.4 s against max-pressure's 93.4 s (the demo's and the What-if page's default).
BEST_ZONE_CONTROLLER = "rl:zone"


class PolicySource:
    """A policy file and the ``policy`` section of its training run's ``config.yaml``.

    Attributes
    ----------
    model_path
        The SB3 model (``.zip``).
    run_dir
        The training run folder.
    spec
        Signals, padding and timings the policy was trained with.
    """

    def __init__(self, model_path: Path, run_dir: Path, spec: dict[str, Any]) -> None:
        self.model_path = model_path
        self.run_dir = run_dir
        self.spec = spec


def find_policy(source: str | os.PathLike[str]) -> PolicySource:
    """Locate the model and the training config of ``source`` (run folder, model ``.zip`` or the name
    of a shipped policy).

    Raises
    ------
    ConfigError
        ``source`` is neither a training run folder nor a model inside one.
    """
    from roadtwin.agents.train import latest_checkpoint, load_run_config

    path = Path(source)
    if not path.exists() and str(source) in SHIPPED_POLICIES:
        path = SHIPPED_POLICIES[str(source)]
    if path.is_dir():
        run_dir = path
        config = load_run_config(run_dir)
        model: Path | None = None
        for candidate in (run_dir / "best" / "best_model.zip", run_dir / "final_model.zip"):
            if candidate.is_file():
                model = candidate
                break
        if model is None:
            last = latest_checkpoint(run_dir)
            if last is None:
                raise ConfigError(path=run_dir, field=None, expected="a training run with a saved model")
            model = last[0]
    elif path.is_file() and path.suffix == ".zip":
        model = path
        parents = [p for p in (path.parent, path.parent.parent) if (p / "config.yaml").is_file()]
        if not parents:
            raise ConfigError(
                path=path, field=None, expected="a model inside a training run folder (with config.yaml)"
            )
        run_dir = parents[0]
        config = load_run_config(run_dir)
    else:
        raise ConfigError(
            path=path, field="source", expected="a training run folder or a model .zip inside one"
        )
    policy = dict(config.get("policy") or {})
    if policy.get("task", "signals") != "signals":
        raise ConfigError(
            path=run_dir / "config.yaml",
            field="policy.task",
            expected=f"a signal-control training run (this one trained {policy.get('task')}: use rl-routing:PATH)",
        )
    return PolicySource(model, run_dir, policy)


@register_controller
class RLController(SignalController):
    """Drive signals with a policy trained by ``roadtwin agents train``.

    Parameters
    ----------
    source
        A training run folder or a model ``.zip`` inside one.
    deterministic
        Take the policy's most likely action (default) rather than sampling.
    """

    name: ClassVar[str] = "rl"

    @classmethod
    def check(cls, *, source: str | os.PathLike[str], deterministic: bool = True) -> None:
        """Find the policy and its training config without loading the model (no torch)."""
        find_policy(source)

    def __init__(self, *, source: str | os.PathLike[str], deterministic: bool = True) -> None:
        super().__init__(source=str(source), deterministic=bool(deterministic))
        self.policy = find_policy(source)
        spec = self.policy.spec
        self.tls_ids: list[str] = list(spec["tls_ids"])
        self.timing = spec["action_mode"] == "timing"
        self.decision_interval_s = float(spec["cycle_time"] if self.timing else spec["delta_time"])
        self.model = self._load_model()
        self._end: float | None = None
        self._parts: tuple[Any, Any, Any, Any] | None = None
        self._pending = False
        #: ``(time, observations, actions)`` of every decision of the current run.
        self.decisions: list[tuple[float, np.ndarray, np.ndarray]] = []

    def _load_model(self) -> Any:
        from roadtwin.errors import require

        sb3 = require("stable_baselines3", extra="rl")
        algo = self.policy.spec.get("algo", "ppo")
        cls = {"ppo": sb3.PPO, "dqn": sb3.DQN}.get(algo)
        if cls is None:
            raise ConfigError(path=self.policy.run_dir, field="policy.algo", expected="ppo or dqn", got=algo)
        try:
            model = cls.load(self.policy.model_path, device="cpu")
        except Exception as exc:
            raise InputError(
                path=self.policy.model_path,
                field=None,
                expected=f"a readable {algo.upper()} model",
                got=type(exc).__name__,
            ) from None
        n_obs = int(model.observation_space.shape[0])
        if n_obs != int(self.policy.spec["obs_pad"]):
            raise ConfigError(
                path=self.policy.model_path,
                field="observation",
                expected=f"a model for observations of {self.policy.spec['obs_pad']} values",
                got=n_obs,
            )
        return model

    def prepare(self, inputs: SimInputs, *, work_dir: Path) -> SimInputs:
        """Remember the window's end (the last decision is shortened to it); inputs unchanged."""
        self._end = float(inputs.end)
        return inputs

    def start(self, session: SumoSession) -> None:
        """Lay the trained signals out on the live network, install their programs, take the first
        decision (as the environment's ``reset`` then ``step`` do)."""
        from roadtwin.sim.env import SignalObserver
        from roadtwin.sim.signals import (
            PlanActuator,
            SignalActuator,
            SignalLayout,
            read_signal_network,
        )

        spec = self.policy.spec
        conn = session.conn
        network = read_signal_network(conn)
        missing = [t for t in self.tls_ids if t not in network.programs]
        if missing:
            raise ConfigError(
                path=self.policy.run_dir,
                field="policy.tls_ids",
                expected="signals of the simulated network (the policy was trained on another one)",
                got=missing,
            )
        layout = SignalLayout(network, self.tls_ids, neighbours=bool(spec.get("neighbours", False)))
        timings = {k: float(spec[k]) for k in ("yellow_time", "all_red_time", "min_green", "max_green")}
        max_red = spec.get("max_red")  # absent in policies trained before the bound existed
        actuator: Any
        if self.timing:
            actuator = PlanActuator(layout, cycle_time=float(spec["cycle_time"]), **timings)
            n_choices = actuator.n_plans
        else:
            actuator = SignalActuator(layout, **timings, max_red=None if max_red is None else float(max_red))
            n_choices = layout.n_greens
        if list(map(int, n_choices)) != list(map(int, spec["n_actions"])):
            raise ConfigError(
                path=self.policy.run_dir,
                field="policy.n_actions",
                expected=f"signals with the trained numbers of actions {spec['n_actions']}",
                got=list(map(int, n_choices)),
            )
        observer = SignalObserver(
            layout,
            n_choices=n_choices,
            with_age=not self.timing,
            max_green=timings["max_green"],
            kind=spec.get("observation", "lanes"),  # absent in policies trained before phase observations
            max_red=None if max_red is None else float(max_red),
        )
        if list(observer.sizes) != list(map(int, spec["obs_sizes"])):
            raise ConfigError(
                path=self.policy.run_dir,
                field="policy.obs_sizes",
                expected=f"the trained observation sizes {spec['obs_sizes']}",
                got=list(observer.sizes),
            )
        monitor = observer.monitor()
        monitor.subscribe(conn)
        actuator.reset(conn)
        self._parts = (layout, monitor, actuator, observer)
        self._pending = False
        self.decisions = []
        self.act(session)

    def observe(self, session: SumoSession) -> np.ndarray:
        """The batch of padded observations, one row per signal, as the policy saw them in training."""
        from roadtwin.sim.env import pad_observations

        assert self._parts is not None
        _, monitor, actuator, observer = self._parts
        m = monitor.measure(session.conn)
        if self.timing:
            rows = observer.observe(m, choice=actuator.plan)
        else:
            rows = observer.observe(m, choice=actuator.green, age=actuator.age, red=actuator.red)
        return pad_observations(rows, int(self.policy.spec["obs_pad"]))

    def act(self, session: SumoSession) -> None:
        """Finish the last decision's bookkeeping, then choose and start every signal's next one."""
        if self._parts is None:
            return
        _, _, actuator, _ = self._parts
        now = session.time
        if self._pending and not self.timing:
            actuator.finish(session)  # no stepping: the run has reached the decision time already
        batch = self.observe(session)
        actions, _ = self.model.predict(batch, deterministic=bool(self.options["deterministic"]))
        actions = np.asarray(actions, dtype=np.intp).reshape(-1)
        n_actions = np.asarray(self.policy.spec["n_actions"], dtype=np.intp)
        actions = np.where(actions < n_actions, actions, 0)  # SuperSuit's pad_action_space_v0
        self.decisions.append((now, batch, actions))
        until = now + self.decision_interval_s
        if self._end is not None:
            until = min(until, self._end)
        if self.timing:
            actuator.step(session, actions, until=now)  # switches plans now; the run steps SUMO
        else:
            actuator.begin(session.conn, actions, now=now, until=until)
            self._pending = True

    def close(self) -> None:
        """Forget the simulation (the model stays loaded for the next run)."""
        self._parts = None
        self._pending = False
