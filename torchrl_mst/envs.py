"""Environments with MR.Q's protocol, from a ``backend:name`` string.

* ``dmc:<domain>-<task>`` (e.g. ``dmc:dog-run``, ``dmc:ball_in_cup-catch``): TorchRL's
  ``DMControlEnv`` with every observation entry flattened in dm_control's order, float32,
  action repeat 2 (rewards summed), so episodes are 500 agent steps (truncated, never
  terminated). DMC actions already lie in ``[-1, 1]``.
* ``gym:<id>`` (e.g. ``gym:Pendulum-v1``): TorchRL's ``GymEnv``, float32, continuous
  actions rescaled to ``[-1, 1]``, no action repeat.

Every env carries ``RewardSum`` (``episode_reward``) and ``StepCounter``.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from types import ModuleType

import torch
from torchrl.envs import (
    CatTensors,
    Compose,
    DoubleToFloat,
    EnvBase,
    RewardSum,
    StepCounter,
    TransformedEnv,
)

__all__ = ["EnvSpec", "make_env", "parse_env_name"]

#: MR.Q's action repeat on DMC.
DMC_ACTION_REPEAT = 2


@dataclass(frozen=True)
class EnvSpec:
    """A parsed env name: ``backend`` (``"dmc"`` or ``"gym"``) and the backend's id."""

    backend: str
    name: str

    @property
    def domain_task(self) -> tuple[str, str]:
        """``(domain, task)`` of a ``dmc`` env (the domain may contain ``_``, not ``-``)."""
        domain, _, task = self.name.partition("-")
        return domain, task


def _import_dmc_suite() -> ModuleType:
    """Import ``dm_control.suite`` with rendering disabled, whatever ``MUJOCO_GL`` says.

    State tasks never render, so a user's ``MUJOCO_GL`` (``glfw`` without a display, an
    empty value, a backend that is not installed) must not break them: the import runs
    with ``MUJOCO_GL=disable`` and the user's value is put back afterwards.
    """
    if "dm_control.suite" in sys.modules:
        return sys.modules["dm_control.suite"]
    saved = os.environ.get("MUJOCO_GL")
    os.environ["MUJOCO_GL"] = "disable"
    try:
        from dm_control import suite
    except ImportError as err:
        raise ImportError(
            f"DMC tasks need dm_control: `pip install 'torchrl-mst[dmc]'` ({err})."
        ) from err
    finally:
        if saved is None:
            os.environ.pop("MUJOCO_GL", None)
        else:
            os.environ["MUJOCO_GL"] = saved
    return suite


def _dmc_envs() -> dict[str, list[str]]:
    suite = _import_dmc_suite()
    envs: dict[str, list[str]] = {}
    for domain, task in suite.ALL_TASKS:
        envs.setdefault(domain, []).append(task)
    return envs


def _gym_ids() -> list[str]:
    import gymnasium

    return list(gymnasium.registry.keys())


def parse_env_name(env: str) -> EnvSpec:
    """Parse and validate ``dmc:<domain>-<task>`` or ``gym:<id>``.

    Raises:
        ValueError: for a missing or unknown backend, or an unknown task, listing the
            closest valid names.
    """
    backend, sep, name = env.partition(":")
    if not sep or backend not in ("dmc", "gym") or not name:
        raise ValueError(
            f"Env name {env!r} must look like 'dmc:<domain>-<task>' (e.g. 'dmc:cartpole-balance') "
            "or 'gym:<id>' (e.g. 'gym:Pendulum-v1')."
        )
    if backend == "dmc":
        envs = _dmc_envs()
        names = [f"{d}-{t}" for d, tasks in envs.items() for t in tasks]
        if name not in names:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = f" Did you mean {', '.join('dmc:' + c for c in close)}?" if close else ""
            raise ValueError(
                f"Unknown DMC task {name!r}.{hint} Valid names are 'dmc:<domain>-<task>' with "
                f"domains {sorted(envs)}."
            )
    else:
        ids = _gym_ids()
        if name not in ids:
            close = difflib.get_close_matches(name, ids, n=5, cutoff=0.5)
            hint = f" Did you mean {', '.join('gym:' + c for c in close)}?" if close else ""
            raise ValueError(f"Unknown Gymnasium id {name!r}.{hint}")
    return EnvSpec(backend, name)


def make_env(
    env: str | EnvSpec, *, seed: int | None = None, device: torch.device | str = "cpu"
) -> TransformedEnv:
    """Build an env with MR.Q's protocol (see the module docstring).

    Args:
        env: ``"dmc:<domain>-<task>"`` or ``"gym:<id>"`` (or a parsed :class:`EnvSpec`).

    Keyword Args:
        seed: seeds the env (MR.Q evaluates on a separate env seeded ``seed + 100``).
        device: device of the env's tensors.

    Returns:
        A ``TransformedEnv`` with a flat float32 ``"observation"`` and an ``"action"`` in
        ``[-1, 1]``.
    """
    spec = env if isinstance(env, EnvSpec) else parse_env_name(env)
    if spec.backend == "dmc":
        _import_dmc_suite()
        from torchrl.envs import DMControlEnv

        domain, task = spec.domain_task
        base: EnvBase = DMControlEnv(domain, task, frame_skip=DMC_ACTION_REPEAT, device=device)
        obs_keys = list(base.observation_spec.keys())
        transforms = [
            # sort=False keeps dm_control's (and MR.Q's) observation order.
            CatTensors(in_keys=obs_keys, out_key="observation", del_keys=True, sort=False),
            DoubleToFloat(),
        ]
    else:
        from torchrl.envs import GymEnv

        try:
            base = GymEnv(spec.name, device=device)
        except Exception as err:
            raise ValueError(_gym_build_error(spec.name, err)) from err
        transforms = [DoubleToFloat()]
        action_spec = base.action_spec
        low, high = (
            getattr(action_spec.space, "low", None),
            getattr(action_spec.space, "high", None),
        )
        if low is not None and (not torch.all(low == -1) or not torch.all(high == 1)):
            from torchrl.envs import ActionScaling

            transforms.append(ActionScaling())
    if spec.backend == "dmc":
        transforms.extend(_dmc_action_rescaling(base))
    transformed = TransformedEnv(base, Compose(*transforms, StepCounter(), RewardSum()))
    try:
        if seed is not None:
            transformed.set_seed(seed)
        else:
            transformed.reset()  # fail here, not deep inside a collector
    except Exception as err:
        if spec.backend != "gym":
            raise
        raise ValueError(_gym_build_error(spec.name, err)) from err
    return transformed


def _gym_build_error(name: str, err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    if type(err).__name__ == "DependencyNotInstalled" or "pip install" in text:
        return (
            f"gym:{name} needs a package that is not installed: {text.splitlines()[0]} "
            "Install it, or pick another env."
        )
    return (
        f"gym:{name} cannot be built as a TorchRL env ({type(err).__name__}: "
        f"{text.splitlines()[0]}); the trainer needs a Box (vector) observation and a Box "
        "action space."
    )


def _dmc_action_rescaling(base: EnvBase) -> list:
    """An affine map from ``[-1, 1]`` to the task's bounds when they are not ``[-1, 1]``.

    Some DMC tasks (quadruped: some joints +-0.8, one up to 1.1) have other bounds; MR.Q
    acts in ``[-1, 1]`` everywhere and rescales, as its release does.
    """
    from torchrl.envs import ActionScaling

    spec = base.action_spec
    low, high = spec.space.low, spec.space.high
    if bool(torch.all(low == -1)) and bool(torch.all(high == 1)):
        return []
    return [ActionScaling()]
