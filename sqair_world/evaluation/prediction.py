"""How well imagined rollouts predict where the objects will be, against copy-last and constant-velocity baselines.

:func:`sqair_world.envs.rollouts.play_prediction` plays an env and records a :class:`PredictionRollout`: at every
step t the tracked objects and, from the tracker state, ``S`` imagined futures ``H`` steps long (with the actions
actually taken next, for an action-conditioned checkpoint). :func:`prediction_errors` scores them on arrays only.

For a tracked identity at step t and a horizon h, three predictors of its box centre at t + h:

- **imagined**: the mean over the samples in which the identity is still present h steps ahead;
- **copy last**: its centre at t;
- **constant velocity**: its centre at t plus h times its displacement from t - 1 (copy last if it was not tracked
  at t - 1).

Two ground truths: where the tracker finds the same identity at t + h ("tracked"), and, where the env knows them
(Atari RAM, moving-MNIST boxes), the true centre at t + h of the object matched to the identity at t (Hungarian,
within ``match_distance`` px; "truth"), with the player sprite separately. All predictors are scored on the same
(t, identity, h) triples: those the imagined predictor covers (``coverage``: the fraction of triples where some
sample keeps the identity). Pixels of the frame the model sees (84x84 Atari, 50x50 moving MNIST).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

PREDICTORS = ("imagined", "copy_last", "constant_velocity")


class PredictionRollout(NamedTuple):
    """Per recorded step t (N model slots, horizon H, S samples, M true objects)."""

    ids: np.ndarray  #: int ``[T, N]`` tracked identities at t, -1 empty
    centres: np.ndarray  #: float ``[T, N, 2]`` tracked box centres (x, y) px
    imagined_ids: np.ndarray  #: int ``[T, H, S, N]`` identities of the imagined slots, -1 absent
    imagined_centres: np.ndarray  #: float ``[T, H, S, N, 2]`` imagined box centres px
    episodes: np.ndarray  #: int ``[T]`` episode of each step (no prediction crosses an episode)
    truth: np.ndarray | None = None  #: float ``[T, M, 2]`` true centres px, NaN where the object is not in the frame
    player: int | None = None  #: index into ``truth`` of the object the actions move (Atari: 0), if any


def imagined_means(roll: PredictionRollout) -> tuple[np.ndarray, np.ndarray]:
    """Per tracked slot at t and horizon h: (mean imagined centre ``[T, H, N, 2]``, NaN where no sample keeps the
    identity; fraction of samples that keep it ``[T, H, N]``)."""
    tracked = roll.ids >= 0  # [T, N]
    same = (roll.imagined_ids[:, :, :, None, :] == roll.ids[:, None, None, :, None]) & tracked[:, None, None, :, None]
    # same [T, H, S, N_tracked, N_imagined]: an identity sits in at most one slot of a sample
    kept = same.any(-1)  # [T, H, S, N]
    pos = (same[..., None] * roll.imagined_centres[:, :, :, None]).sum(-2)  # [T, H, S, N, 2]
    n = kept.sum(2)  # [T, H, N]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (pos * kept[..., None]).sum(2) / n[..., None]
    return np.where(n[..., None] > 0, mean, np.nan), n / kept.shape[2]


def match_to_truth(roll: PredictionRollout, match_distance: float) -> np.ndarray:
    """int ``[T, N]``: for each tracked slot the true object it stands for at t (Hungarian on centre distance,
    within ``match_distance`` px), -1 if none."""
    T, N = roll.ids.shape
    out = np.full((T, N), -1)
    if roll.truth is None:
        return out
    d = np.linalg.norm(roll.centres[:, :, None] - roll.truth[:, None], axis=-1)  # [T, N, M], NaN for absent truth
    d = np.where((roll.ids[:, :, None] >= 0) & np.isfinite(d), d, np.inf)
    for t in np.flatnonzero(np.isfinite(d).any((1, 2))):  # one small assignment per frame
        cost = np.where(d[t] <= match_distance, d[t], 1e6)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] <= match_distance
        out[t, rows[ok]] = cols[ok]
    return out


def prediction_errors(
    roll: PredictionRollout, horizons: range | None = None, match_distance: float = 5.0
) -> dict[str, dict]:
    """Mean centre error (px) per predictor and horizon against the tracked positions (``tracked``), the true
    positions (``truth``) and the player's (``player``), the imagined presence accuracy, and the coverage.

    Returns ``{"horizons": [...], "tracked": {predictor: [err per h]}, "truth": ..., "player": ...,
    "presence_acc": [...], "coverage": [...], "triples": {"tracked": [...], ...}}``; a target without triples at a
    horizon gives NaN there.
    """
    H = roll.imagined_ids.shape[1]
    horizons = horizons or range(1, H + 1)
    if min(horizons) < 1 or max(horizons) > H:
        raise ValueError(f"horizons must lie in 1..{H} (the recorded imagination), got {list(horizons)}")
    mean_im, kept_frac = imagined_means(roll)
    truth_idx = match_to_truth(roll, match_distance)
    T, N = roll.ids.shape
    prev = previous_centres(roll)  # [T, N, 2], NaN where the identity was not tracked at t - 1
    out: dict[str, dict] = {k: {p: [] for p in PREDICTORS} for k in ("tracked", "truth", "player")}
    out["presence_acc"], out["coverage"] = [], []
    counts: dict[str, list[int]] = {k: [] for k in ("tracked", "truth", "player")}
    for h in horizons:
        a, b = slice(0, T - h), slice(h, T)
        same_episode = (roll.episodes[a] == roll.episodes[b])[:, None]  # [T-h, 1]
        live = (roll.ids[a] >= 0) & same_episode  # identities tracked at t whose t + h is in the episode
        # where the tracker finds the same identity at t + h
        eq = (roll.ids[a][:, :, None] == roll.ids[b][:, None, :]) & live[:, :, None]  # [T-h, N, N]
        found = eq.any(-1)
        tracked_later = (eq[..., None] * roll.centres[b][:, None]).sum(-2)  # [T-h, N, 2]
        im = mean_im[a, h - 1]
        covered = live & np.isfinite(im).all(-1)
        out["presence_acc"].append(float(((kept_frac[a, h - 1] > 0.5) == found)[live].mean()) if live.any() else np.nan)
        out["coverage"].append(float(covered[found].mean()) if found.any() else np.nan)
        copy = roll.centres[a]
        vel = np.where(np.isfinite(prev[a]), copy + h * (copy - prev[a]), copy)
        preds = {"imagined": im, "copy_last": copy, "constant_velocity": vel}
        targets = {"tracked": (tracked_later, found & covered)}
        if roll.truth is not None:
            j = truth_idx[a]
            later = np.take_along_axis(roll.truth[b], np.clip(j, 0, None)[..., None], 1)  # [T-h, N, 2]
            on = covered & (j >= 0) & np.isfinite(later).all(-1)
            targets["truth"] = (later, on)
            if roll.player is not None:
                targets["player"] = (later, on & (j == roll.player))
        for name in ("tracked", "truth", "player"):
            target, mask = targets.get(name, (None, np.zeros_like(live)))
            counts[name].append(int(mask.sum()))
            for p, guess in preds.items():
                err = np.linalg.norm(guess - target, axis=-1)[mask] if mask.any() else np.array([np.nan])
                out[name][p].append(float(err.mean()))
    out["horizons"] = list(horizons)
    out["triples"] = counts
    return out


def previous_centres(roll: PredictionRollout) -> np.ndarray:
    """``[T, N, 2]``: each tracked identity's centre one step earlier (same episode), NaN where it was not tracked."""
    T, N = roll.ids.shape
    out = np.full((T, N, 2), np.nan)
    eq = (roll.ids[1:, :, None] == roll.ids[:-1, None, :]) & (roll.ids[1:, :, None] >= 0)  # [T-1, N, N]
    eq &= (roll.episodes[1:] == roll.episodes[:-1])[:, None, None]
    had = eq.any(-1)
    pos = (eq[..., None] * roll.centres[:-1, None]).sum(-2)
    out[1:][had] = pos[had]
    return out


def best_baseline(errors: dict[str, list[float]]) -> np.ndarray:
    """Per horizon, the lower of the two baselines' errors."""
    return np.minimum(np.asarray(errors["copy_last"]), np.asarray(errors["constant_velocity"]))


def format_prediction(result: dict, target: str = "tracked") -> str:
    """One target's errors as a Markdown table: a row per predictor, a column per horizon."""
    hs = result["horizons"]
    lines = [f"| {target} (px) | " + " | ".join(f"H={h}" for h in hs) + " |", "|---" * (len(hs) + 1) + "|"]
    for p in PREDICTORS:
        lines.append(f"| {p} | " + " | ".join(f"{v:.2f}" for v in result[target][p]) + " |")
    return "\n".join(lines)


def mean_results(results: list[dict]) -> dict:
    """The mean over runs (seeds) of :func:`prediction_errors` results, triples summed."""
    first = results[0]
    out: dict = {"horizons": first["horizons"]}

    def mean(rows: list) -> list[float]:  # NaN where no run had triples at that horizon
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.asarray(rows, dtype=np.float64), 0).tolist()

    for key in ("tracked", "truth", "player"):
        out[key] = {p: mean([r[key][p] for r in results]) for p in PREDICTORS}
    for key in ("presence_acc", "coverage"):
        out[key] = mean([r[key] for r in results])
    out["triples"] = {k: np.sum([r["triples"][k] for r in results], 0).tolist() for k in first["triples"]}
    return out


def plot_errors(result: dict, path, title: str = "") -> None:
    """Error against horizon, one line per predictor, a panel per target (tracked, truth, player), to PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [k for k in ("tracked", "truth", "player") if np.isfinite(result[k]["imagined"]).any()] or ["tracked"]
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for p, style in zip(PREDICTORS, ("-o", "--s", ":^")):
            ax.plot(result["horizons"], result[target][p], style, label=p.replace("_", " "), ms=4)
        ax.set_title(f"{title} vs {target}".strip())
        ax.set_xlabel("horizon (steps)")
        ax.set_ylabel("box-centre error (px)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    "mean_results",
    "plot_errors",
    "PREDICTORS",
    "PredictionRollout",
    "best_baseline",
    "format_prediction",
    "imagined_means",
    "match_to_truth",
    "prediction_errors",
    "previous_centres",
]
