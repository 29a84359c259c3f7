"""Atari maze-game preprocessing for SQAIR, and frame collection for pretraining.

Measured facts behind the design (issue #7, ``python -m scripts.atari_measure``): Atari 2600 Pac-Man draws one
ghost per frame in a fixed 4-frame rotation, so frameskip 4 shows always the same ghost and a max over the last 2
frames the same two. We therefore run the base env at frameskip 1, repeat each action 4 times and take the pixel
max over all 4 raw frames. Pellets and power pills are erased from every raw frame first (their positions are
collected after reset), so eaten pellets leave no blobs against the fixed background. The maze is cropped and
resized to 84x84 colour with area interpolation.

``MazeGame.ram_x`` / ``ram_y`` give, for evaluation only, the console-RAM bytes of the sprite positions. Their
mapping to the screen was fitted on the player sprite (its colour's centroid over 3,000 random-policy frames):
Pac-Man x = 0.989 ram + 4.09 (r = 0.998), y = 1.998 ram + 33.03 (r = 0.999); Ms. Pac-Man x = 0.997 ram - 8.18
(r = 1.000), y = 0.999 ram + 5.54 (r = 0.999). Ghosts and fruit are assumed to share the player's mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm


@dataclass(frozen=True)
class MazeGame:
    """What preprocessing needs to know about one game."""

    env_id: str
    rows: tuple[int, int]  #: maze rows kept (start, stop) of the 210/250-row frame
    pellet_colours: tuple[tuple[tuple[int, int, int], int], ...]  #: (RGB, max component area) of pellets/pills
    ram_x: tuple[int, ...]  #: RAM bytes of sprite x: player first, then ghosts (and fruit)
    ram_y: tuple[int, ...]
    names: tuple[str, ...]
    ram_to_pixel: tuple[float, float, float, float]  #: raw-frame pixel centre = (ax * ram_x + bx, ay * ram_y + by)

    def positions(self, ram_xy: np.ndarray, size: int = 84) -> np.ndarray:
        """RAM sprite coordinates ``[..., S, 2]`` -> sprite centres (x, y), pixels of the preprocessed ``size``-square
        frame."""
        ax, bx, ay, by = self.ram_to_pixel
        x = (ax * ram_xy[..., 0] + bx) * size / 160.0
        y = (ay * ram_xy[..., 1] + by - self.rows[0]) * size / (self.rows[1] - self.rows[0])
        return np.stack([x, y], -1)


GAMES: dict[str, MazeGame] = {
    "Pacman": MazeGame(
        "ALE/Pacman-v5",
        (18, 200),
        (((223, 192, 111), 16), ((252, 144, 200), 48)),
        (49, 50, 51, 52, 53),
        (54, 55, 56, 57, 58),
        ("player", "ghost1", "ghost2", "ghost3", "ghost4"),
        (0.989, 4.09, 1.998, 33.03),
    ),
    "MsPacman": MazeGame(
        "ALE/MsPacman-v5",
        (0, 171),
        (((228, 111, 111), 32),),
        (10, 6, 7, 8, 9, 11),
        (16, 12, 13, 14, 15, 17),
        ("player", "ghost1", "ghost2", "ghost3", "ghost4", "fruit"),
        (0.997, -8.18, 0.999, 5.54),
    ),
}


def game_from_env_id(env_id: str) -> MazeGame:
    """``ALE/Pacman-v5`` -> the Pac-Man spec; unknown games raise a clear error."""
    name = env_id.split("/")[-1].split("-")[0].replace("NoFrameskip", "")
    if name not in GAMES:
        raise ValueError(
            f"no maze preprocessing is defined for {env_id!r}; supported: "
            f"{[g.env_id for g in GAMES.values()]} (add a MazeGame entry for another game)"
        )
    return GAMES[name]


def sticky_action(rng: np.random.Generator, action: int, num_actions: int, p: float = 0.25) -> int:
    """The random policy of collection and evaluation: a new uniform action with probability ``p``, else ``action``
    again, so that the player travels corridors instead of jittering."""
    return int(rng.integers(num_actions)) if rng.random() < p else action


def small_components(frame: np.ndarray, colour: tuple[int, int, int], max_area: int) -> np.ndarray:
    """bool ``[H, W]``: pixels of ``colour`` in connected components of at most ``max_area`` pixels."""
    mask = np.all(frame == np.asarray(colour, np.uint8), -1).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    return keep[labels]


class MazePreprocessing(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Frame-pooled, pellet-free, cropped 84x84 RGB observations of a maze game.

    The base env must run at frameskip 1 (``gym.make(id, frameskip=1)``); ``game`` defaults to the one of the base
    env's id. ``repeat``: raw frames pooled per step (each action repeated). ``info`` carries ``ram_xy``
    (``[S, 2]`` raw RAM sprite coordinates, player first) for evaluation.

    Example:
        >>> import gymnasium as gym, ale_py
        >>> gym.register_envs(ale_py)
        >>> env = MazePreprocessing(gym.make("ALE/Pacman-v5", frameskip=1))
        >>> env.observation_space.shape
        (84, 84, 3)
    """

    def __init__(
        self,
        env: gym.Env,
        game: MazeGame | None = None,
        repeat: int = 4,
        size: int = 84,
        erase_pellets: bool = True,
        pellet_steps: int = 8,
    ) -> None:
        # the base's own spec, not ``env.spec``: wrappers cache theirs, and gym.make sets the final id afterwards
        base_spec = env.unwrapped.spec
        game = game or game_from_env_id(base_spec.id if base_spec is not None else "")
        gym.utils.RecordConstructorArgs.__init__(
            self, game=game, repeat=repeat, size=size, erase_pellets=erase_pellets, pellet_steps=pellet_steps
        )
        gym.Wrapper.__init__(self, env)
        self.game = game
        space = env.observation_space
        if not (isinstance(space, gym.spaces.Box) and space.shape[-1] == 3 and len(space.shape) == 3):
            raise ValueError(f"MazePreprocessing needs RGB frames [H, W, 3], got observation space {space}")
        frameskip = getattr(env.unwrapped, "_frameskip", 1)
        if frameskip != 1:
            raise ValueError(
                f"make the base env with frameskip=1 (got {frameskip}): Pac-Man draws one ghost per frame, "
                "and this wrapper pools every raw frame itself"
            )
        if repeat < 1 or size < 1 or pellet_steps < 0:
            raise ValueError(
                f"repeat (raw frames per step) and size (pixels) must be >= 1 and pellet_steps >= 0, "
                f"got {repeat}, {size} and {pellet_steps}"
            )
        self.repeat, self.size, self.erase, self.pellet_steps = repeat, size, erase_pellets, pellet_steps
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self._pellets = np.zeros(space.shape[:2], bool)
        self._pellet_idx = np.zeros(0, np.intp)  # flat pixel indices of the pellets inside the crop
        self._background = None
        self._steps = 0

    # -- pellets
    def _update_pellets(self, frame: np.ndarray) -> None:
        for colour, area in self.game.pellet_colours:
            self._pellets |= small_components(frame, colour, area)
        # flat positions: indexing by them is several times faster than a boolean mask over the crop
        self._pellet_idx = np.flatnonzero(self._pellets[self.game.rows[0] : self.game.rows[1]])

    def process(self, raw_frames: list[np.ndarray]) -> np.ndarray:
        """Erase pellets, max over the raw frames, crop, resize: -> uint8 ``[size, size, 3]``.

        Erasing sets the same pixels to the same colour in every raw frame, so it commutes with the
        max: we erase once, after pooling.
        """
        r0, r1 = self.game.rows
        pooled = raw_frames[0][r0:r1].copy()  # crop first: the rest touches only the maze rows
        for frame in raw_frames[1:]:
            np.maximum(pooled, frame[r0:r1], out=pooled)  # in place: no stacked copy of the raw frames
        if self.erase:
            pooled.reshape(-1, pooled.shape[-1])[self._pellet_idx] = self._background
        return cv2.resize(pooled, (self.size, self.size), interpolation=cv2.INTER_AREA)

    def ram_xy(self) -> np.ndarray:
        ram = self.env.unwrapped.ale.getRAM()
        return np.stack([ram[list(self.game.ram_x)], ram[list(self.game.ram_y)]], -1).astype(np.int64)

    def reset(self, **kwargs: Any):
        frame, info = self.env.reset(**kwargs)
        colours, counts = np.unique(
            frame[self.game.rows[0] : self.game.rows[1]].reshape(-1, 3), axis=0, return_counts=True
        )
        self._background = colours[counts.argmax()]
        self._pellets = np.zeros(frame.shape[:2], bool)
        self._steps = 0
        self._update_pellets(frame)
        info = dict(info, ram_xy=self.ram_xy())
        return self.process([frame]), info

    def step(self, action):
        frames, total, terminated, truncated, info = [], 0.0, False, False, {}
        for _ in range(self.repeat):
            frame, reward, terminated, truncated, info = self.env.step(action)
            if self._steps < self.pellet_steps:  # power pills blink: collect their positions over the first steps
                self._update_pellets(frame)
            frames.append(frame)
            total += float(reward)
            if terminated or truncated:
                break
        self._steps += 1
        info = dict(info, ram_xy=self.ram_xy())
        return self.process(frames), total, terminated, truncated, info


def make_maze_env(
    env_id: str = "ALE/Pacman-v5", repeat: int = 4, size: int = 84, **ale_kwargs: Any
) -> MazePreprocessing:
    """The base ALE env at frameskip 1 wrapped in :class:`MazePreprocessing`."""
    import ale_py

    gym.register_envs(ale_py)
    game = game_from_env_id(env_id)
    ale_kwargs.setdefault("repeat_action_probability", 0.25)
    ale_kwargs["frameskip"] = 1
    return MazePreprocessing(gym.make(env_id, **ale_kwargs), game, repeat, size)


def collect_sequences(
    env_id: str,
    num_sequences: int,
    seq_len: int,
    seed: int = 0,
    policy: str = "random",
    skip: int = 30,
    with_actions: bool = False,
    progress: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Preprocessed frames from a random policy: uint8 ``[T, S, 3, 84, 84]``, time-major; with ``with_actions``
    also the actions, int64 ``[T, S]``, ``actions[t]`` the one taken after frame t (it led to frame t + 1).

    One long episode stream is cut into consecutive windows; each window starts after ``skip`` steps
    of a new episode so the start-of-game pause is not over-represented.
    """
    if policy != "random":
        raise ValueError(f"unknown policy {policy!r}; only 'random' is available")
    env = make_maze_env(env_id)
    rng = np.random.default_rng(seed)
    out = np.zeros((num_sequences, seq_len, 84, 84, 3), np.uint8)
    actions = np.zeros((num_sequences, seq_len), np.int64)
    obs, _ = env.reset(seed=seed)
    s, t, since_reset = 0, 0, 0
    last: tuple[int, int] | None = None  # the last recorded frame, whose action is chosen next
    bar = tqdm(total=num_sequences, desc=f"collect {env_id}", unit="seq", leave=False, disable=not progress)
    action = 0
    while s < num_sequences:
        action = sticky_action(rng, action, env.action_space.n)
        if last is not None:
            actions[last], last = action, None
        obs, _, term, trunc, _ = env.step(action)
        since_reset += 1
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            since_reset, t = 0, 0
            continue
        if since_reset <= skip:
            continue
        out[s, t], last = obs, (s, t)
        t += 1
        if t == seq_len:
            s, t = s + 1, 0
            bar.update(1)
    bar.close()
    env.close()
    frames = np.ascontiguousarray(out.transpose(1, 0, 4, 2, 3))
    return (frames, np.ascontiguousarray(actions.T)) if with_actions else frames


def background(frames: np.ndarray) -> np.ndarray:
    """Median frame of uint8 ``[T, S, C, H, W]`` as float32 ``[C, H, W]`` in [0, 1]: the fixed maze image."""
    flat = frames.reshape(-1, *frames.shape[2:])
    sample = flat[:: max(1, len(flat) // 1000)]
    return (np.median(sample, axis=0) / 255.0).astype(np.float32)
