"""Oracle object slots from the console RAM: the slot observation of ``SQAIR-Wrapped/<Game>``, filled with the truth.

The upper bound of what any slot model can give an agent: the same ``Dict`` space as
:class:`~sqair_world.envs.slots.SQAIRObservation` (``pres [N]``, ``where [N, 4]``, ``what [N, D]``, ``id [N]``; N = 8
slots and D = 16 appearance dims, those of the shipped checkpoints), but

- ``where``: the sprite centre read from RAM (:meth:`~sqair_world.envs.atari.MazeGame.positions`, the mapping fitted
  for evaluation) and a fixed box size per sprite class (:data:`BOX_SIZES`, measured on raw frames);
- ``what``: a one-hot code of the sprite class (player, ghost, fruit) in the first dims, zeros after;
- ``id``: the sprite's index (player 0, ghosts 1-4, fruit 5), -1 while the sprite is outside the maze;
- a fixed slot per sprite (slot s is sprite s), so empty slots may lie between present ones, unlike SQAIR's.

The game runs as ``ALE/<Game>-v5`` with ``frameskip`` frames per step and the RAM as its observation (the dynamics
of :func:`~sqair_world.envs.atari.make_maze_env`, sticky actions included, without drawing frames). ``info["ram_xy"]``
holds the raw RAM coordinates ``[S, 2]``, as the SQAIR envs' info does. Frightened (blue) ghosts are not told apart
from the others: no RAM byte for that state is mapped yet.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from sqair_world.envs.atari import MazeGame, game_from_env_id

ID_HIGH = 2**31 - 1  # the id bound of the SQAIR slot space (sqair_world/envs/slots.py)

#: (width, height) of each sprite class as fractions of the maze crop (median box of 60+ raw frames, 160 px wide)
BOX_SIZES: dict[str, dict[str, tuple[float, float]]] = {
    "Pacman": {"player": (7 / 160, 14 / 182), "ghost": (8 / 160, 16 / 182)},
    "MsPacman": {"player": (8 / 160, 10 / 171), "ghost": (8 / 160, 10 / 171), "fruit": (8 / 160, 10 / 171)},
}
CLASSES = ("player", "ghost", "fruit")


def sprite_class(name: str) -> str:
    """``"ghost3"`` -> ``"ghost"``."""
    return name.rstrip("0123456789")


class OracleSlots(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """RAM observations of a maze game -> the oracle slot dict described in the module docstring.

    ``env``: an ALE maze game with ``obs_type="ram"``; ``game`` defaults to the one of its id. ``num_slots`` (>= the
    game's sprites) and ``what_size`` (>= 3 classes) default to the shipped SQAIR checkpoints' N = 8 and D = 16.
    ``size``: the side (pixels) of the preprocessed frame the RAM mapping is expressed in; only the fractions leave.
    """

    def __init__(
        self, env: gym.Env, game: MazeGame | None = None, num_slots: int = 8, what_size: int = 16, size: int = 84
    ) -> None:
        base_spec = env.unwrapped.spec
        game = game or game_from_env_id(base_spec.id if base_spec is not None else "")
        gym.utils.RecordConstructorArgs.__init__(self, game=game, num_slots=num_slots, what_size=what_size, size=size)
        gym.Wrapper.__init__(self, env)
        space = env.observation_space
        if not (isinstance(space, gym.spaces.Box) and space.shape == (128,)):
            raise ValueError(
                f"OracleSlots reads the console RAM: make the base env with obs_type='ram' (got observation space "
                f"{space})"
            )
        n_sprites = len(game.names)
        if num_slots < n_sprites or what_size < len(CLASSES) or size < 1:
            raise ValueError(
                f"num_slots must be >= {n_sprites} (the sprites of {game.env_id}), what_size >= {len(CLASSES)} "
                f"(one dim per sprite class) and size >= 1, got {num_slots}, {what_size} and {size}"
            )
        self.game, self.size = game, size
        name = game.env_id.split("/")[1].split("-")[0]
        classes = [sprite_class(n) for n in game.names]
        self._box = np.array([BOX_SIZES[name][c] for c in classes], np.float32)  # [S, 2]
        self._what = np.zeros((num_slots, what_size), np.float32)
        self._what[np.arange(n_sprites), [CLASSES.index(c) for c in classes]] = 1.0
        self._ids = np.arange(n_sprites, dtype=np.int64)
        self.observation_space = gym.spaces.Dict(
            {
                "pres": gym.spaces.Box(0.0, 1.0, (num_slots,), np.float32),
                "where": gym.spaces.Box(0.0, 1.0, (num_slots, 4), np.float32),
                "what": gym.spaces.Box(-np.inf, np.inf, (num_slots, what_size), np.float32),
                "id": gym.spaces.Box(-1, ID_HIGH, (num_slots,), np.int64),
            }
        )

    def ram_xy(self, ram: np.ndarray) -> np.ndarray:
        """int64 ``[S, 2]``: the raw RAM coordinates of the sprites, player first."""
        return np.stack([ram[list(self.game.ram_x)], ram[list(self.game.ram_y)]], -1).astype(np.int64)

    def slots(self, ram_xy: np.ndarray) -> dict[str, np.ndarray]:
        """Raw RAM coordinates ``[S, 2]`` -> the slot dict; a sprite is present while its centre is in the maze."""
        centre = self.game.positions(ram_xy, self.size) / self.size  # [S, 2] fractions
        inside = ((centre >= 0) & (centre < 1)).all(-1)
        n, s = len(self._what), len(centre)
        pres = np.zeros(n, np.float32)
        pres[:s] = inside
        where = np.zeros((n, 4), np.float32)
        where[:s] = np.concatenate([centre, self._box], -1) * inside[:, None]
        ids = np.full(n, -1, np.int64)
        ids[:s] = np.where(inside, self._ids, -1)
        return {
            "pres": pres,
            "where": np.clip(where, 0.0, 1.0),
            "what": self._what * pres[:, None],
            "id": ids,
        }

    def _observe(self, ram: np.ndarray, info: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        xy = self.ram_xy(ram)
        return self.slots(xy), dict(info, ram_xy=xy)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        ram, info = self.env.reset(seed=seed, options=options)
        return self._observe(ram, info)

    def step(self, action):
        ram, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._observe(ram, info)
        return obs, reward, terminated, truncated, info


def make_oracle_env(
    game: str = "Pacman", frameskip: int = 4, num_slots: int = 8, what_size: int = 16, **ale_kwargs: Any
) -> OracleSlots:
    """The oracle slot env of ``game`` ("Pacman", "MsPacman" or an ALE id such as "ALE/Pacman-v5");
    ``ale_kwargs`` go to ``gym.make`` of the ALE env (default ``repeat_action_probability=0.25``, as the SQAIR
    envs)."""
    import ale_py

    if frameskip < 1:
        raise ValueError(f"frameskip (frames per step, the action repeated) must be >= 1, got {frameskip}")
    env_id = game if "/" in game else f"ALE/{game}-v5"
    spec = game_from_env_id(env_id)  # unknown games raise here
    for key in ("obs_type", "frameskip"):
        if key in ale_kwargs:
            raise TypeError(f"make_oracle_env sets {key} itself; got {key}={ale_kwargs[key]!r}")
    gym.register_envs(ale_py)
    ale_kwargs.setdefault("repeat_action_probability", 0.25)
    base = gym.make(env_id, obs_type="ram", frameskip=frameskip, **ale_kwargs)
    return OracleSlots(base, spec, num_slots, what_size)
