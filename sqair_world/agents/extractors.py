"""SB3 feature extractors for slot observations: masked, permutation-invariant set encoders over the N slots.

Both read the ``Dict`` space of :class:`~sqair_world.envs.SQAIRObservation` (or of ``SQAIR-Oracle/*``): each slot's
input is ``[where (4), what (D)]``, plus ``motion (2)`` when the space has the key (add it with
:class:`~sqair_world.agents.motion.VecSlotMotion`), and when the space has ``imagined`` (SQAIR's imagined future
slots, ``[H, N, 5]`` = (pres, box) per step ahead) a second set encoder pools over the imagined slots of all steps.
Slot order and the content of empty slots never change the features (tested); track ids are bookkeeping, not input.

- :class:`SlotExtractor`: Deep Sets, [sum and max of phi(x_n) over present slots, number present];
- :class:`AttentionSlotExtractor`: self-attention among the present slots, then the same masked pooling.

Use with ``PPO("MultiInputPolicy", env, policy_kwargs=dict(features_extractor_class=SlotExtractor))``.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

_NEG = -1e9  # fills empty slots before a max; finite, so that no NaN or inf reaches the gradients


def slot_input_size(space: gym.spaces.Space, name: str) -> int:
    """Per-slot input size of a slot ``Dict`` space (4 + D, + 2 with ``motion``); clear errors for any other
    space."""
    expected = "a Dict space with 'pres' [N], 'where' [N, 4], 'what' [N, D] (and optional 'motion' [N, 2])"
    if not isinstance(space, gym.spaces.Dict):
        raise ValueError(f"{name} needs a slot observation, {expected}; got {space}")
    missing = [k for k in ("pres", "where", "what") if k not in space.spaces]
    if missing:
        raise ValueError(f"{name} needs a slot observation, {expected}; missing {missing} in {space}")
    n = space["pres"].shape
    shapes_ok = (
        len(n) == 1
        and space["where"].shape == (*n, 4)
        and len(space["what"].shape) == 2
        and space["what"].shape[0] == n[0]
        and ("motion" not in space.spaces or space["motion"].shape == (*n, 2))
    )
    if not shapes_ok:
        shapes = {k: v.shape for k, v in space.spaces.items()}
        raise ValueError(f"{name} needs {expected}; got shapes {shapes}")
    return 4 + space["what"].shape[-1] + (2 if "motion" in space.spaces else 0)


def slot_inputs(obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``obs`` -> (per-slot input ``[B, N, F]``, presence ``[B, N]`` in {0, 1})."""
    parts = [obs["where"].float(), obs["what"].float()]
    if "motion" in obs:
        parts.append(obs["motion"].float())
    return torch.cat(parts, -1), (obs["pres"].float() > 0.5).float()


def masked_pool(h: Tensor, pres: Tensor) -> Tensor:
    """``[B, N, C]`` features and ``[B, N]`` presence -> ``[B, 2C + 1]``: sum and max over present slots (0 when none),
    and the number present."""
    mask = pres.unsqueeze(-1)
    summed = (h * mask).sum(1)
    count = pres.sum(1, keepdim=True)
    maxed = torch.where(count > 0, h.masked_fill(mask <= 0, _NEG).amax(1), torch.zeros_like(summed))
    return torch.cat([summed, maxed, count], -1)


class ImaginedPool(nn.Module):
    """Deep Sets over the imagined slots ``[B, H, N, 5]`` (pres, x, y, w, h) of all H steps ahead, weighted by the
    imagined presence: ``[B, 2 * hidden]`` = (sum, max) of phi([box, (h + 1) / H])."""

    def __init__(self, horizon: int, hidden: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.phi = nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, imagined: Tensor) -> Tensor:
        imagined = imagined.float()
        B, H, N, _ = imagined.shape
        step = torch.arange(1, H + 1, device=imagined.device, dtype=imagined.dtype) / H
        x = torch.cat([imagined[..., 1:], step.view(1, H, 1, 1).expand(B, H, N, 1)], -1)
        h = self.phi(x) * imagined[..., :1]  # [B, H, N, hidden], ReLU features: the weighted max is >= 0
        return torch.cat([h.sum((1, 2)), h.amax((1, 2))], -1)


class _SetExtractor(BaseFeaturesExtractor):
    """Shared part: checks the space and adds the imagined-slot pooling when the space has ``imagined``."""

    def __init__(self, observation_space: gym.spaces.Dict, set_dim: int, hidden: int, imagined: bool) -> None:
        self.n_in = slot_input_size(observation_space, type(self).__name__)
        self.reads_imagined = imagined and "imagined" in observation_space.spaces
        im_dim = 0
        if self.reads_imagined:
            shape = observation_space["imagined"].shape
            if len(shape) != 3 or shape[-1] != 5:
                raise ValueError(f"'imagined' must be [H, N, 5] (pres, x, y, w, h per step ahead), got {shape}")
            im_dim = 2 * hidden
        super().__init__(observation_space, features_dim=set_dim + im_dim)
        self.imagined_pool = ImaginedPool(observation_space["imagined"].shape[0], hidden) if im_dim else None

    def set_features(self, x: Tensor, pres: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        x, pres = slot_inputs(obs)
        feats = self.set_features(x, pres)
        if self.imagined_pool is not None:
            feats = torch.cat([feats, self.imagined_pool(obs["imagined"])], -1)
        return feats


class SlotExtractor(_SetExtractor):
    """Deep Sets over slots: features = [sum_n pres_n phi(x_n), max over present phi(x_n), number present]
    (+ the imagined pooling, see the module docstring).

    :param observation_space: a slot ``Dict`` space
    :param hidden: width of phi (features_dim = 2 * hidden + 1, + 2 * hidden with ``imagined``)
    :param imagined: read ``imagined`` when the space has it
    """

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 64, imagined: bool = True) -> None:
        super().__init__(observation_space, 2 * hidden + 1, hidden, imagined)
        self.phi = nn.Sequential(nn.Linear(self.n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())

    def set_features(self, x: Tensor, pres: Tensor) -> Tensor:
        return masked_pool(self.phi(x), pres)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block over slots ``[B, N, C]``; empty slots (``pad`` True) are never attended to."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def forward(self, h: Tensor, pad: Tensor) -> Tensor:
        q = self.norm1(h)
        h = h + self.attn(q, q, q, key_padding_mask=pad, need_weights=False)[0]
        return h + self.ff(self.norm2(h))


class AttentionSlotExtractor(_SetExtractor):
    """Self-attention among the present slots (``layers`` pre-norm blocks), then masked sum and max pooling and the
    number present (+ the imagined pooling).

    :param observation_space: a slot ``Dict`` space
    :param hidden: width of the slot embeddings (features_dim = 2 * hidden + 1, + 2 * hidden with ``imagined``)
    :param heads: attention heads (must divide ``hidden``)
    :param layers: attention blocks
    :param imagined: read ``imagined`` when the space has it
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 1,
        imagined: bool = True,
    ) -> None:
        if heads < 1 or hidden % heads or layers < 1:
            raise ValueError(
                f"heads must divide hidden and layers be >= 1, got hidden={hidden}, heads={heads}, layers={layers}"
            )
        super().__init__(observation_space, 2 * hidden + 1, hidden, imagined)
        self.embed = nn.Sequential(nn.Linear(self.n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(AttentionBlock(hidden, heads) for _ in range(layers))
        self.out_norm = nn.LayerNorm(hidden)

    def set_features(self, x: Tensor, pres: Tensor) -> Tensor:
        pad = pres <= 0
        # a row without any present slot would softmax over nothing (NaN): let it attend anywhere, pooling drops it
        pad = pad & ~pad.all(1, keepdim=True)
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, pad)
        return masked_pool(self.out_norm(h), pres)


EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {"deepsets": SlotExtractor, "attention": AttentionSlotExtractor}
