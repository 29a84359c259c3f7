"""Object slots from SQAIR, online: one env (``SQAIRObservation``) and the tracker shared with the vector wrappers.

Observation (a ``Dict`` space, N slots, D = size of z_what):

- ``pres``  float32 ``[N]``: 1 for a present object, 0 for an empty slot; each track keeps its slot for as long
  as it lives (:func:`stable_slots`), so empty slots may lie between present ones;
- ``where`` float32 ``[N, 4]``: (x_centre, y_centre, width, height) of the object's box as fractions of the
  image width and height, in [0, 1] (x to the right, y down); zeros for empty slots;
- ``what``  float32 ``[N, D]``: the appearance code; zeros for empty slots;
- ``id``    int64 ``[N]``: track identity, stable while the object is tracked, and given back to a track lost and
  found again when the checkpoint asks for it (``SQAIRConfig.track_reid_steps``, :mod:`sqair_world.envs.reid`);
  -1 for empty slots;
- ``frame`` uint8 ``[H, W, C]`` (optional): the frame the model saw;
- ``imagined`` float32 ``[H_im, N, 5]`` (optional): mean over samples of (pres, where) imagined H_im steps ahead.

``info["sqair_bound"]`` is the model's per-step evidence bound log p(x_t|z_t) + log p(z_t|z_{t-1}) - log q
(nats): a drop means the model stopped explaining the frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from sqair_world.envs.reid import ReIdentifier
from sqair_world.evaluation.draw import draw_frame
from sqair_world.model.spatial import where_to_box
from sqair_world.model.types import Slots, StepOutput, TrackState
from sqair_world.speed import accelerate
from sqair_world.speed.guards import GuardSkippingStep
from sqair_world.training.checkpoints import load_model
from sqair_world.utils import box_to_pixels, frames_to_input, select_device

ID_HIGH = 2**31 - 1


@contextmanager
def inference(n_threads: int | None, device: torch.device) -> Iterator[None]:
    """``torch.inference_mode`` (the tracker state never needs autograd) with :func:`intra_op_threads`."""
    with torch.inference_mode(), intra_op_threads(n_threads, device):
        yield


@contextmanager
def intra_op_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Run the enclosed torch calls with ``n`` intra-op CPU threads (None: leave torch's setting).

    Why: one online step is hundreds of tiny ops on 1-16 rows, which gain nothing from OpenMP, while each
    parallel op pays a thread hand-off, which on a busy machine costs more than the op itself.
    """
    if n is None or device.type != "cpu" or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_model(model: nn.Module | str | os.PathLike) -> tuple[nn.Module, nn.Module | str]:
    """A model given as a module or a checkpoint path -> (the module, what a wrapper's spec records for it).

    The spec records the checkpoint path when the model has one (loaded with
    :func:`~sqair_world.training.checkpoints.load_model`), so that ``gym.make(env.spec)`` loads it again and two
    envs made with the same arguments have equal specs; a model that was never saved is recorded itself."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if not isinstance(model, nn.Module) or not hasattr(model, "online_step"):
        raise TypeError(f"model must be a SQAIR model or the path of its checkpoint, got {type(model).__name__}")
    return model, getattr(model, "checkpoint_path", model)


def slot_space(
    model, num_slots: int, include_frame: bool, frame_space: gym.spaces.Box | None, imagine_horizon: int = 0
) -> gym.spaces.Dict:
    """The ``Dict`` observation space described in the module docstring."""
    n, d = num_slots, model.cfg.n_what
    spaces = {
        "pres": gym.spaces.Box(0.0, 1.0, (n,), np.float32),
        "where": gym.spaces.Box(0.0, 1.0, (n, 4), np.float32),
        "what": gym.spaces.Box(-np.inf, np.inf, (n, d), np.float32),
        "id": gym.spaces.Box(-1, ID_HIGH, (n,), np.int64),
    }
    if include_frame:
        spaces["frame"] = frame_space
    if imagine_horizon > 0:
        spaces["imagined"] = gym.spaces.Box(0.0, 1.0, (imagine_horizon, n, 5), np.float32)
    return gym.spaces.Dict(spaces)


def model_input(frames: np.ndarray, image_shape: tuple[int, int, int], device: torch.device) -> Tensor:
    """Env frames ``[E, H, W, C]`` or ``[E, H, W]`` (uint8, or floats in [0, 1]) -> model input ``[E, C, H, W]``,
    refusing frames of another shape than the checkpoint reads."""
    frames = np.asarray(frames)
    if frames.ndim == 3:  # [E, H, W] grey
        frames = frames[..., None]
    C, H, W = image_shape
    if frames.ndim != 4 or frames.shape[1:] != (H, W, C):
        raise ValueError(
            f"the checkpoint reads frames of shape (H, W, C) = {(H, W, C)}, the env gives {frames.shape[1:]}; "
            "use an env with matching preprocessing or another checkpoint"
        )
    return frames_to_input(frames, device, channels_last=True)


def stable_slots(slot_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give every track a fixed slot for as long as it lives (no shifting when another object appears or leaves).

    ``slot_ids [E, N]``: the track id each slot held at the last step (-1 free); ``ids [E, N]``: the model's slots
    now (track ids, -1 absent). A track keeps its slot; a new one takes the lowest free slot; a slot whose track
    ended is free again. Returns (``src [E, N]``: for each output slot the model slot it shows, -1 for an empty
    one; the new ``slot_ids``), vectorised over the envs.
    """
    E, N = ids.shape
    live = ids >= 0
    same = (ids[:, :, None] == slot_ids[:, None, :]) & live[:, :, None]  # [E, model slot, output slot]
    kept = same.any(2)
    free = ~same.any(1)  # output slots not held by a live track
    new = live & ~kept
    # the k-th new track (in model order) takes the k-th free output slot
    free_order = np.argsort(~free, axis=1, kind="stable")  # free slots first, ascending
    rank = np.cumsum(new, 1) - 1
    target = np.where(kept, same.argmax(2), np.take_along_axis(free_order, np.clip(rank, 0, N - 1), 1))
    src = np.full((E, N), -1)
    rows, cols = np.nonzero(live)
    src[rows, target[rows, cols]] = cols
    new_ids = np.where(src >= 0, np.take_along_axis(ids, np.clip(src, 0, N - 1), 1), -1)
    return src, new_ids


def state_rows(state: TrackState, idx: Tensor) -> TrackState:
    """Rows ``idx`` of a state."""
    return TrackState(Slots(*(a[idx] for a in state.z)), *(a[idx] for a in state[1:]))


def set_state_rows(state: TrackState, idx: Tensor, part: TrackState) -> TrackState:
    """A copy of ``state`` with rows ``idx`` replaced by ``part``."""

    def put(a, b):
        a = a.clone()
        a[idx] = b
        return a

    return TrackState(
        Slots(*(put(a, b) for a, b in zip(state.z, part.z))), *(put(a, b) for a, b in zip(state[1:], part[1:]))
    )


class SlotEncoder:
    """Runs ``model.online_step`` on batches of env frames and keeps one tracker state per env row.

    Shared by the single-env and vector wrappers so that both give the same slots. ``num_slots`` (1 to the
    model's ``max_objects``, default all) keeps the first slots, where the present objects are.
    """

    def __init__(
        self,
        model: nn.Module,
        num_envs: int,
        num_slots: int | None = None,
        device: str | torch.device = "auto",
        sample: bool = False,
        imagine_horizon: int = 0,
        imagine_samples: int = 4,
        threads: int | None = 1,
        compile: bool = False,
    ) -> None:
        max_objects = model.cfg.max_objects
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if num_slots is not None and not 1 <= num_slots <= max_objects:
            raise ValueError(
                f"num_slots must be in 1..{max_objects} (the checkpoint's max_objects) or None for all, got {num_slots}"
            )
        if imagine_horizon < 0 or imagine_samples < 1:
            raise ValueError(
                f"imagine_horizon must be >= 0 (0: no imagined slots) and imagine_samples >= 1, "
                f"got {imagine_horizon} and {imagine_samples}"
            )
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None (leave torch's setting), got {threads}")
        self.device = select_device(device)
        self.threads = threads
        self.model = model.to(self.device).eval()
        if compile:  # faster steps after minutes of compilation at the first steps (docs/gym.md, Speed)
            accelerate(self.model, dynamic=None, cpp_wrapper=self.device.type == "cpu")
        #: ``model.online_step`` on all rows; one env's shapes never change, so its compiled step skips guards
        self.online_step = self.model.online_step
        if compile and num_envs == 1:
            self.online_step = GuardSkippingStep(self.model.online_step)
        self.num_envs = num_envs
        self.num_slots = num_slots or max_objects
        self.sample = sample
        self.imagine_horizon, self.imagine_samples = imagine_horizon, imagine_samples
        self.state: TrackState
        self.slot_ids = np.full((num_envs, max_objects), -1)  # the track each output slot holds (stable_slots)
        self.reid: ReIdentifier | None = None  # the checkpoint's re-identification of lost tracks (envs.reid)
        self.reset()
        self.last: StepOutput | None = None
        self.rng = np.random.default_rng()

    def seed(self, seed: int | None) -> None:
        """Seed the imagination noise (so seeded resets give identical observations)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def _imagine(
        self,
        state: TrackState,
        horizon: int,
        num_samples: int,
        render: bool,
        actions: Tensor | None = None,
        mean: bool = False,
    ):
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.rng.integers(2**63 - 1)))
            return self.model.imagine(state, horizon, num_samples, render, actions, mean)

    def check_action_space(self, space: gym.Space) -> None:
        """An action-conditioned checkpoint needs the env's discrete actions to be the ones it was trained on."""
        n = self.model.cfg.num_actions
        if n and (not isinstance(space, gym.spaces.Discrete) or int(space.n) != n):
            raise ValueError(
                f"the checkpoint's prior is conditioned on {n} discrete actions, but the env's action space is "
                f"{space}; use the game the checkpoint was trained on"
            )

    def action_tensor(self, actions: Any, rows: int) -> Tensor | None:
        """The actions just taken ``[rows]`` for the online step of an action-conditioned model (else None)."""
        if not self.model.cfg.num_actions or actions is None:
            return None
        a = np.asarray(actions).reshape(-1)
        if a.shape[0] != rows:
            raise ValueError(f"got {a.shape[0]} actions for {rows} envs")
        return torch.as_tensor(a.astype(np.int64), device=self.device)

    def imagined_actions(self, actions: Any, horizon: int, num_samples: int) -> Tensor | None:
        """``actions`` ``[E, H]`` or ``[E, H, S]`` (per env, per imagined step, optionally per sample) -> the model's
        ``[H, E(, S)]``, with clear errors for a checkpoint without an action-conditioned prior, a wrong length and
        actions outside the action space."""
        if actions is None:
            return None
        n = self.model.cfg.num_actions
        if not n:
            raise ValueError(
                "actions given, but this checkpoint's prior is not conditioned on actions (it was trained without "
                "them); imagine without actions, or train an action-conditioned model (python -m "
                "sqair_world.pretrain atari records the actions)"
            )
        a = np.asarray(actions)
        E = self.num_envs
        if a.ndim not in (2, 3) or a.shape[0] != E or (a.ndim == 3 and a.shape[2] != num_samples):
            raise ValueError(
                f"actions must have shape [envs, horizon] = {(E, horizon)} or [envs, horizon, samples] = "
                f"{(E, horizon, num_samples)}, got {a.shape}"
            )
        if a.shape[1] != horizon:
            raise ValueError(f"actions hold {a.shape[1]} steps but the horizon is {horizon}: give one per step")
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= n:
            raise ValueError(
                f"actions must be integers in the action space [0, {n}), got {a.dtype} {a.min()}..{a.max()}"
            )
        return torch.as_tensor(a.astype(np.int64), device=self.device).transpose(0, 1)

    def reset_rows(self, done: np.ndarray) -> None:
        done_t = torch.as_tensor(np.asarray(done, bool), device=self.device)
        if bool(done_t.any()):
            with inference(self.threads, self.device):
                self.state = self.model.reset_rows(self.state, done_t)
            self.slot_ids[np.asarray(done, bool)] = -1
            if self.reid is not None:
                self.reid.reset_rows(np.asarray(done, bool))

    def reset(self) -> None:
        cfg = self.model.cfg
        with inference(self.threads, self.device):
            self.state = self.model.initial_state(self.num_envs, self.device)
        self.slot_ids = np.full((self.num_envs, cfg.max_objects), -1)
        if getattr(cfg, "track_reid_steps", 0) > 0:
            self.reid = ReIdentifier(
                self.num_envs,
                cfg.max_objects,
                cfg.n_what,
                cfg.track_reid_steps,
                cfg.track_reid_distance,
                getattr(cfg, "track_reid_position_weight", 0.0),
            )

    def encode(self, frames: np.ndarray, rows: np.ndarray | None = None, actions: Any = None) -> dict[str, np.ndarray]:
        """Track one frame per row (``rows`` a subset of the envs, default all) -> batched observation dict.
        ``actions``: the actions that led to these frames (they score an action-conditioned prior's bound)."""
        with inference(self.threads, self.device):
            return self._encode(frames, rows, actions)

    def _encode(self, frames: np.ndarray, rows: np.ndarray | None, actions: Any = None) -> dict[str, np.ndarray]:
        x = model_input(frames, tuple(self.model.cfg.image_shape), self.device)
        act = self.action_tensor(actions, x.shape[0])
        if rows is None:
            out = self.online_step(self.state, x, sample=self.sample, action=act)
            self.state = out.state
        else:
            idx = torch.as_tensor(rows, device=self.device, dtype=torch.long)
            out = self.model.online_step(state_rows(self.state, idx), x, sample=self.sample, action=act)
            self.state = set_state_rows(self.state, idx, out.state)
        self.last = out
        z = out.state.z
        ids = torch.where(z.pres > 0, z.id, -1).cpu().numpy()
        if self.reid is not None:  # the identities shown: lost tracks re-identified
            centre = where_to_box(z.where)[..., :2].float().cpu().numpy() if self.reid.position_weight else None
            ids = self.reid(ids, z.what.float().cpu().numpy(), rows, centre)
        sel = slice(None) if rows is None else np.asarray(rows)
        src, self.slot_ids[sel] = stable_slots(self.slot_ids[sel], ids)
        obs = self.slots_to_numpy(z, src)
        obs["id"] = self.slot_ids[sel][:, : self.num_slots].copy()  # the shown ids, in their stable slots
        obs["bound"] = (out.log_lik + out.log_p - out.log_q).cpu().numpy()
        if self.imagine_horizon > 0:
            im = self._imagine(out.state, self.imagine_horizon, self.imagine_samples, False)
            summary = torch.cat([im.z.pres.unsqueeze(-1), where_to_box(im.z.where)], -1).mean(2)  # [H, E, N, 5]
            obs["imagined"] = summary.permute(1, 0, 2, 3)[:, :, : self.num_slots].cpu().numpy().astype(np.float32)
        return obs

    def slots_to_numpy(self, z: Slots, src: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Slots ``[E, N, ...]`` -> the observation arrays (see module docstring), the first ``num_slots`` slots;
        ``src [E, N]`` (from :func:`stable_slots`) puts model slot ``src[e, n]`` into output slot n (-1: empty)."""
        if src is not None:
            idx = torch.as_tensor(np.clip(src, 0, None), device=z.pres.device)
            on = torch.as_tensor(src >= 0, device=z.pres.device)
            pick = lambda a: a.gather(1, idx.view(*idx.shape, *([1] * (a.dim() - 2))).expand_as(a))
            z = Slots(pick(z.what), pick(z.where), pick(z.pres) * on, torch.where(on, pick(z.id), -1))
        z = Slots(*(a[:, : self.num_slots] for a in z))
        present = z.pres.unsqueeze(-1)
        # one float array for pres, where and what (one device-to-host copy; tiny per-op costs dominate a step)
        packed = torch.cat([present, where_to_box(z.where).clamp(0, 1) * present, z.what * present], -1)
        packed = packed.cpu().numpy()  # [E, N, 1 + 4 + D]
        part = lambda lo, hi: np.ascontiguousarray(packed[..., lo:hi], dtype=np.float32)
        return {
            "pres": part(0, 1)[..., 0],
            "where": part(1, 5),
            "what": part(5, None),
            "id": torch.where(z.pres > 0, z.id, -1).cpu().numpy().astype(np.int64),
        }

    def imagine(
        self, horizon: int, num_samples: int = 1, render: bool = False, actions: Any = None, mean: bool = False
    ) -> dict[str, np.ndarray]:
        """Predicted slots ``[E, H, S, N, ...]`` (and frames ``[E, H, S, H_img, W_img, C]`` uint8) from the current
        state, in the model's slot order (``id`` names the tracks as the observations do), all envs in one batched
        call. ``actions`` ``[E, H]`` or ``[E, H, S]``: the actions to roll out (action-conditioned checkpoints; None
        samples them uniformly). ``mean``: tracked objects follow the prior's means (a point forecast)."""
        if horizon < 1 or num_samples < 1:
            raise ValueError(f"horizon and num_samples must be >= 1, got {horizon} and {num_samples}")
        acts = self.imagined_actions(actions, horizon, num_samples)
        with inference(self.threads, self.device):
            return self._imagine_numpy(horizon, num_samples, render, acts, mean)

    def _imagine_numpy(
        self, horizon: int, num_samples: int, render: bool, actions: Tensor | None = None, mean: bool = False
    ) -> dict[str, np.ndarray]:
        im = self._imagine(self.state, horizon, num_samples, render, actions, mean)
        z = Slots(*(a.transpose(0, 1) for a in im.z))  # [E, H, S, N, ...]
        flat = Slots(*(a.reshape(-1, *a.shape[3:]) for a in z))
        arrays = self.slots_to_numpy(flat)
        lead = z.pres.shape[:3]
        out = {k: v.reshape(*lead, *v.shape[1:]) for k, v in arrays.items()}
        if self.reid is not None:  # the tracks' shown identities
            out["id"] = self.reid.show(out["id"])
        if render:
            frames = im.frames.transpose(0, 1).clamp(0, 1).mul(255).round().to(torch.uint8)  # [E, H, S, C, h, w]
            out["frames"] = frames.permute(0, 1, 2, 4, 5, 3).cpu().numpy()
        return out


class SQAIRObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replace each frame by SQAIR's tracked object slots (see the module docstring for the space).

    The tracker state persists across steps and is cleared on ``reset()``. ``imagine()`` rolls the learned
    priors forward from the current state without touching the env. ``model``: a SQAIR model or the path of
    its checkpoint (the env's spec records the path, see :func:`resolve_model`).

    Example:
        >>> import gymnasium as gym, sqair_world
        >>> env = gym.make("SQAIR-Wrapped/MovingMNIST")
        >>> sorted(env.observation_space.spaces)
        ['id', 'pres', 'what', 'where']
        >>> env.observation_space["where"].shape
        (3, 4)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        env: gym.Env,
        model: nn.Module | str | os.PathLike,
        device: str | torch.device = "auto",
        num_slots: int | None = None,
        include_frame: bool = False,
        imagine_horizon: int = 0,
        imagine_samples: int = 4,
        sample: bool = False,
        threads: int | None = 1,
        compile: bool = False,
    ) -> None:
        model, source = resolve_model(model)
        gym.utils.RecordConstructorArgs.__init__(
            self,
            model=source,
            device=str(device),
            num_slots=num_slots,
            include_frame=include_frame,
            imagine_horizon=imagine_horizon,
            imagine_samples=imagine_samples,
            sample=sample,
            threads=threads,
            compile=compile,
        )
        gym.Wrapper.__init__(self, env)
        space = env.observation_space
        C, H, W = model.cfg.image_shape
        if not isinstance(space, gym.spaces.Box) or tuple(
            space.shape[-3:] if len(space.shape) == 3 else space.shape + (1,)
        ) != (H, W, C):
            raise ValueError(
                f"the checkpoint reads frames of shape (H, W, C) = {(H, W, C)}, but the env's observation "
                f"space is {space}; use matching preprocessing or another checkpoint"
            )
        self.encoder = SlotEncoder(
            model, 1, num_slots, device, sample, imagine_horizon, imagine_samples, threads, compile
        )
        self.encoder.check_action_space(env.action_space)
        self.include_frame = include_frame
        self.observation_space = slot_space(model, self.encoder.num_slots, include_frame, space, imagine_horizon)
        self._frame: np.ndarray | None = None

    @property
    def model(self) -> nn.Module:
        return self.encoder.model

    @property
    def render_mode(self) -> str:
        return "rgb_array"

    def _observe(
        self, frame: np.ndarray, info: dict[str, Any], action: Any = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._frame = frame
        obs = self.encoder.encode(frame[None], actions=None if action is None else [action])
        info = dict(info, sqair_bound=float(obs.pop("bound")[0]))
        out = {k: v[0] for k, v in obs.items()}
        if self.include_frame:
            out["frame"] = frame
        return out, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        frame, info = self.env.reset(seed=seed, options=options)
        self.encoder.reset()
        self.encoder.seed(seed)
        return self._observe(frame, info)

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._observe(frame, info, action)
        return obs, reward, terminated, truncated, info

    def imagine(
        self, horizon: int, num_samples: int = 1, render: bool = False, actions: Any = None, mean: bool = False
    ) -> dict[str, np.ndarray]:
        """Predicted slots ``[H, S, N, ...]`` (and ``frames`` ``[H, S, H_img, W_img, C]`` uint8) from the current
        state, without touching the env or the tracker. ``actions`` ``[H]`` (or ``[H, S]``, per sample): the
        actions to roll out, for a checkpoint with an action-conditioned prior (None: sampled uniformly). ``mean``:
        tracked objects follow the prior's means instead of samples, a point forecast.

        Example:
            >>> import gymnasium as gym, sqair_world
            >>> env = gym.make("SQAIR-Wrapped/MovingMNIST")
            >>> _ = env.reset(seed=0)
            >>> env.get_wrapper_attr("imagine")(5, 2)["where"].shape  # 5 steps, 2 samples, 3 slots
            (5, 2, 3, 4)
        """
        acts = None if actions is None else np.asarray(actions)[None]
        return {k: v[0] for k, v in self.encoder.imagine(horizon, num_samples, render, acts, mean).items()}

    def render(self, scale: int = 4) -> np.ndarray | None:
        """The last frame with the tracked boxes, coloured by identity (RGB uint8, ``scale`` times larger)."""
        if self._frame is None:
            return None
        z = self.encoder.state.z
        H, W = self._frame.shape[:2]
        boxes = box_to_pixels(where_to_box(z.where[0]), H, W).cpu().numpy()
        ids = torch.where(z.pres > 0, z.id, -1).cpu().numpy()
        if self.encoder.reid is not None:  # coloured by the shown identity
            ids = self.encoder.reid.show(ids)
        return draw_frame(self._frame, boxes, ids[0], scale)
