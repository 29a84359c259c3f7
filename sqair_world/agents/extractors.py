"""SB3 feature extractor for slot observations: masked, permutation-invariant pooling over the N slots."""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn


class SlotExtractor(BaseFeaturesExtractor):
    """Deep Sets over slots: features = [sum_n pres_n phi(x_n), max_n over present phi(x_n), number present],
    with x_n = [where_n, what_n]. Sizes come from the observation space; slot order and the content of
    empty slots do not change the features (tested). Track ids are bookkeeping and are not fed in.

    Use with ``PPO("MultiInputPolicy", env, policy_kwargs=dict(features_extractor_class=SlotExtractor))``.

    :param observation_space: the ``Dict`` space of :class:`~sqair_world.envs.SQAIRObservation`
    :param hidden: width of phi (features_dim = 2 * hidden + 1)
    """

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 64) -> None:
        for key in ("pres", "where", "what"):
            if key not in observation_space.spaces:
                raise ValueError(
                    f"SlotExtractor needs a slot observation with 'pres', 'where', 'what'; missing {key!r}"
                )
        n_in = observation_space["where"].shape[-1] + observation_space["what"].shape[-1]
        super().__init__(observation_space, features_dim=2 * hidden + 1)
        self.phi = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        pres = obs["pres"].float()  # [B, N]
        h = self.phi(torch.cat([obs["where"].float(), obs["what"].float()], -1))  # [B, N, hidden]
        summed = (h * pres.unsqueeze(-1)).sum(1)
        maxed = h.masked_fill(pres.unsqueeze(-1) <= 0, -1e4).amax(1).clamp_min(0)  # ReLU features are >= 0
        return torch.cat([summed, maxed, pres.sum(1, keepdim=True)], -1)
