"""Builders of SQAIR-wrapped environments and the shipped checkpoints.

Arguments are checked before anything slow is built: the device and the env's options first, then the model.
The builders import the wrappers (and torch) when called, so that registering the ids stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from sqair_world.utils import select_device

if TYPE_CHECKING:  # torch loads with the first model, not with the registration of the ids
    from torch import nn

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
DEFAULT_CHECKPOINTS = {"Pacman": "pacman.pt", "MsPacman": "mspacman.pt", "MovingMNIST": "moving_mnist.pt"}
_ATARI_HINT = "python -m sqair_world.pretrain atari --env ALE/{}-v5 --output sqair_world/checkpoints/{}.pt"
PRETRAIN_HINT = {
    "Pacman": _ATARI_HINT.format("Pacman", "pacman"),
    "MsPacman": _ATARI_HINT.format("MsPacman", "mspacman"),
    "MovingMNIST": "python -m sqair_world.pretrain --output sqair_world/checkpoints/moving_mnist.pt",
}


def shipped_checkpoints() -> list[str]:
    """Names of the checkpoints shipped in the package (``checkpoint=NAME`` loads one), e.g. ``pacman_velocity``."""
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.pt"))


def load_default_model(game: str, checkpoint: str | Path | None = None, device: str = "cpu") -> nn.Module:
    """The model for ``game`` from ``checkpoint``: a path, the name of a shipped checkpoint (``"pacman_velocity"``,
    see :func:`shipped_checkpoints`), or None for the game's default shipped one."""
    from sqair_world.training.checkpoints import load_model  # here: registering the ids does not load torch

    if checkpoint is None:
        if game not in DEFAULT_CHECKPOINTS:
            raise ValueError(
                f"no shipped checkpoint for {game!r}; pass checkpoint=PATH (trained with "
                "`python -m sqair_world.pretrain atari --env ALE/<Game>-v5 --output PATH`)"
            )
        checkpoint = CHECKPOINT_DIR / DEFAULT_CHECKPOINTS[game]
        if not checkpoint.is_file():
            raise FileNotFoundError(
                f"the shipped checkpoint {checkpoint} is missing; reinstall sqair-world or train it with "
                f"`{PRETRAIN_HINT[game]}`"
            )
    path = Path(checkpoint)
    if not path.exists() and not path.suffix and path.parent == Path("."):  # a bare name: a shipped checkpoint
        path = CHECKPOINT_DIR / f"{path.name}.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"{checkpoint!r} is neither a file nor a shipped checkpoint; shipped: "
                + ", ".join(shipped_checkpoints())
            )
    return load_model(path, map_location=device)


def make_moving_mnist_env(seq_len: int = 20, max_digits: int = 2, split: str = "eval") -> gym.Env:
    from sqair_world.envs.moving_mnist import MovingMNISTEnv

    return MovingMNISTEnv(seq_len=seq_len, max_digits=max_digits, split=split)


def make_sqair_env(
    game: str = "Pacman",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    num_slots: int | None = None,
    frameskip: int = 4,
    include_frame: bool = False,
    imagine_horizon: int = 0,
    seq_len: int = 20,
    threads: int | None = 1,
    compile: bool = False,
    render_mode: str | None = None,
    **ale_kwargs: Any,
) -> gym.Env:
    """A SQAIR-wrapped env: ``game`` is "MovingMNIST", "Pacman", "MsPacman" or an ALE id such as "ALE/Pacman-v5".

    ``checkpoint``: a path, the name of a shipped checkpoint (``"pacman_velocity"``: the action-conditioned prior
    for ``imagine(..., actions=...)``), or None for the game's default. ``frameskip`` is the number of raw frames
    pooled per step (each action repeated); ``seq_len`` the frames per MovingMNIST episode; ``ale_kwargs`` go to
    ``gym.make`` of the ALE env (e.g. ``repeat_action_probability``, ``mode``, ``difficulty``). ``num_slots``: 1 to
    the checkpoint's ``max_objects`` (default all). ``threads``: intra-op CPU threads for the model call (1 is
    fastest for one env; None leaves torch's setting). ``compile``: ``torch.compile`` the model's step (faster steps
    after minutes of compilation at the first steps). ``render_mode``: None or "rgb_array"; ``render()`` always draws
    the frame with the tracked boxes.
    """
    from sqair_world.envs.slots import SQAIRObservation

    select_device(device)  # refuse an unknown or unavailable device before building anything
    _check_render_mode(render_mode)
    make_base, name = _base_builder(game, frameskip, seq_len, ale_kwargs)
    base = make_base()
    return SQAIRObservation(
        base,
        _model_for(name, game, checkpoint),
        device=device,
        num_slots=num_slots,
        include_frame=include_frame,
        imagine_horizon=imagine_horizon,
        threads=threads,
        compile=compile,
    )


def make_sqair_vector_env(
    num_envs: int,
    game: str = "Pacman",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    num_slots: int | None = None,
    frameskip: int = 4,
    include_frame: bool = False,
    seq_len: int = 20,
    threads: int | None = 1,
    compile: bool = False,
    max_episode_steps: int | None = None,
    autoreset_mode: str = "NextStep",
    **ale_kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` base envs in a ``SyncVectorEnv`` with one batched SQAIR call per step (the vector entry point
    of the registered ids: ``gym.make_vec("SQAIR-Wrapped/Pacman", num_envs=16)``)."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from sqair_world.envs.vector import SQAIRVectorObservation

    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1 or None (no limit), got {max_episode_steps}")
    modes = [m.value for m in AutoresetMode]
    if autoreset_mode not in modes:
        raise ValueError(f"autoreset_mode must be one of {modes}, got {autoreset_mode!r}")
    select_device(device)
    make_base, name = _base_builder(game, frameskip, seq_len, ale_kwargs)
    if max_episode_steps is not None:
        make_one = lambda: gym.wrappers.TimeLimit(make_base(), max_episode_steps)
    else:
        make_one = make_base
    venv = SyncVectorEnv([make_one] * num_envs, autoreset_mode=AutoresetMode(autoreset_mode))
    return SQAIRVectorObservation(
        venv,
        _model_for(name, game, checkpoint),
        device=device,
        num_slots=num_slots,
        include_frame=include_frame,
        threads=threads,
        compile=compile,
    )


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(
            f"render_mode must be None or 'rgb_array' (frames with the tracked boxes), got {render_mode!r}"
        )


def _base_builder(
    game: str, frameskip: int, seq_len: int, ale_kwargs: dict[str, Any]
) -> tuple[Callable[[], gym.Env], str]:
    """A builder of the base env for ``game`` and the game's name (the key of its shipped checkpoint)."""
    if game == "MovingMNIST":
        if ale_kwargs:
            raise TypeError(f"MovingMNIST takes no ALE options, got {sorted(ale_kwargs)}")
        return lambda: make_moving_mnist_env(seq_len=seq_len), game
    from sqair_world.envs.atari import game_from_env_id, make_maze_env

    if frameskip < 1:  # named here: MazePreprocessing calls it ``repeat``
        raise ValueError(f"frameskip (raw frames pooled per step) must be >= 1, got {frameskip}")

    env_id = game if "/" in game else f"ALE/{game}-v5"
    spec = game_from_env_id(env_id)  # unknown games raise here
    return lambda: make_maze_env(env_id, repeat=frameskip, **ale_kwargs), spec.env_id.split("/")[1].split("-")[0]


def _model_for(name: str, game: str, checkpoint: str | Path | None) -> nn.Module:
    """The checkpoint's model for the game ``name``; a checkpoint trained on another game is refused."""
    model = load_default_model(name, checkpoint)
    trained_on = getattr(model, "checkpoint_extra", {}).get("env_id")
    if trained_on and game != "MovingMNIST" and trained_on.split("/")[-1].split("-")[0] != name:
        raise ValueError(
            f"checkpoint {checkpoint} was trained on {trained_on}, not {name}; pass a checkpoint for {name}"
        )
    return model
