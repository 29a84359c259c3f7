"""Seeded toy sequences for fast learning tests: 0-2 bright blocks moving on a small dark canvas."""

import torch


def moving_blocks(num: int, T: int = 4, size: int = 24, block: int = 6, max_objects: int = 2, seed: int = 0):
    """Returns frames ``[T, num, 1, size, size]`` in [0, 1] and the object count per sequence ``[num]``."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_objects + 1, (num,), generator=g)
    pos = torch.rand(num, max_objects, 2, generator=g) * (size - block)
    vel = (torch.rand(num, max_objects, 2, generator=g) - 0.5) * 4
    yy = torch.arange(size).view(1, 1, size, 1)
    xx = torch.arange(size).view(1, 1, 1, size)
    frames = []
    for _ in range(T):
        p = pos.round()
        inside = (
            (yy >= p[..., 0, None, None])
            & (yy < p[..., 0, None, None] + block)
            & (xx >= p[..., 1, None, None])
            & (xx < p[..., 1, None, None] + block)
        )  # [num, M, size, size]
        present = torch.arange(max_objects).view(1, -1, 1, 1) < counts.view(-1, 1, 1, 1)
        frames.append((inside & present).any(1).float().unsqueeze(1))
        pos = pos + vel
        out_low, out_high = pos < 0, pos > size - block
        vel = torch.where(out_low | out_high, -vel, vel)
        pos = pos.clamp(0, size - block)
    return torch.stack(frames), counts


def fit(model, x, steps: int, lr: float, batch: int = 16) -> None:
    """``steps`` Adam steps on random minibatches of sequences ``x [T, S, ...]`` (the learning tests' loop)."""
    opt = torch.optim.Adam(model.parameters(), lr)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[1], (batch,))
        loss = model(x[:, idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
