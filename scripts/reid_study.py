"""Where the Atari tracks lose their identities, and which re-identification rule keeps them (issue 18).

    python scripts/reid_study.py record --env ALE/MsPacman-v5 --seeds 10 11 12 --out runs/reid/mspacman
    python scripts/reid_study.py score runs/reid/mspacman

``record`` plays the random policy of ``evaluate atari`` (:func:`sqair_world.envs.rollouts.play_atari`, same actions
for the same seed) with the checkpoint's re-identification switched off, and stores per step the slots (presence,
box, appearance, the model's track ids), the frame, the RAM sprite centres and the episode. ``score``
re-identifies those tracks offline under several rules and scores each with
:func:`sqair_world.evaluation.atari.sprite_scores`, beside an oracle that links a new track to the ended one that
followed the same sprite (the best re-identification we know of), and beside trackers that see the ground truth
itself: every (merged) RAM sprite detected exactly, linked from step to step by position alone (no appearance),
what a tracker with a perfect detector and no re-identification could give.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
import tyro
from scipy.optimize import linear_sum_assignment

from sqair_world.envs.atari import make_maze_env
from sqair_world.envs.factory import load_default_model
from sqair_world.envs.reid import ReIdentifier
from sqair_world.envs.rollouts import play_atari
from sqair_world.envs.slots import SQAIRObservation
from sqair_world.evaluation.atari import SpriteRollout, merge_stacked, sprite_scores, sprites_inside


@dataclasses.dataclass
class Record:
    out: Path
    env: str = "ALE/MsPacman-v5"
    checkpoint: str | None = None
    seeds: tuple[int, ...] = (10, 11, 12)
    steps: int = 1000


@dataclasses.dataclass
class Score:
    runs: tyro.conf.Positional[Path]


def record(cfg: Record) -> None:
    game_name = cfg.env.split("/")[-1].split("-")[0]
    model = load_default_model(game_name, cfg.checkpoint)
    model.cfg = dataclasses.replace(model.cfg, track_reid_steps=0)  # the model's own ids
    env = SQAIRObservation(make_maze_env(cfg.env), model, include_frame=True)
    cfg.out.mkdir(parents=True, exist_ok=True)
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        roll = play_atari(env, cfg.steps, seed)
        np.savez_compressed(cfg.out / f"seed{seed}.npz", **roll._asdict())
        print(f"seed {seed}: {len(roll.pres)} steps", file=sys.stderr)


def load_rollout(path: Path) -> SpriteRollout:
    """The :class:`SpriteRollout` that ``record`` stored in ``path``."""
    d = dict(np.load(path))
    d.update(frame_hw=tuple(d["frame_hw"].tolist()), names=tuple(d["names"]), native_scale=tuple(d["native_scale"]))
    return SpriteRollout(**d)


def box_colours(roll: SpriteRollout) -> np.ndarray:
    """Mean RGB ``[T, N, 3]`` (0-1) of the pixels inside each present box that differ from the recording's median
    frame: a hand-made appearance code, to see whether colour would tell the sprites apart where z_what does not."""
    frames, size = roll.frames, roll.frame_hw[0]
    background = np.median(frames[::10], axis=0).astype(float)
    T, N = roll.ids.shape
    out = np.zeros((T, N, 3))
    for t, n in zip(*np.nonzero(roll.ids >= 0)):
        cx, cy, w, h = roll.where[t, n, :4] * size
        x0, x1 = int(max(cx - w / 2, 0)), int(min(cx + w / 2, size))
        y0, y1 = int(max(cy - h / 2, 0)), int(min(cy + h / 2, size))
        crop = frames[t, y0:y1, x0:x1].reshape(-1, 3).astype(float)
        fg = np.abs(crop - background[y0:y1, x0:x1].reshape(-1, 3)).sum(-1) > 40
        out[t, n] = crop[fg].mean(0) / 255 if fg.sum() >= 2 else 0
    return out


def reidentify(
    roll: SpriteRollout, window: int, max_distance: float, position_weight: float = 0.0, colour_weight: float = 0.0
) -> np.ndarray:
    """Shown ids ``[T, N]`` of the recorded tracks under :class:`ReIdentifier` with these settings, the code being
    z_what (plus ``colour_weight`` x :func:`box_colours`) and ``position_weight`` x the box centre."""
    T, N, D = roll.what.shape
    colours = box_colours(roll) if colour_weight else None
    reid = ReIdentifier(1, N, D + (3 if colour_weight else 0), window, max_distance, position_weight)
    out = np.empty((T, N), int)
    prev_ep = -1
    for t in range(T):
        if roll.episodes[t] != prev_ep:
            reid.reset_rows(np.array([True]))
            prev_ep = roll.episodes[t]
        code = roll.what[t] if colours is None else np.concatenate([roll.what[t], colour_weight * colours[t]], -1)
        out[t] = reid(roll.ids[t][None], code[None], centre=roll.where[t][None, :, :2])[0]
    return out


def oracle_ids(roll: SpriteRollout, max_distance: float = 5.0) -> np.ndarray:
    """The best re-identification of the recorded tracks we know of, from the ground truth: each track is named by
    the RAM sprite it sits on most, and a new track takes the id of the track that most recently ended on the same
    sprite, never an id still shown on a live track (as :class:`ReIdentifier`, which links only lost tracks). Tracks
    are the model's ids within an episode (the model restarts its ids at each reset)."""
    size = roll.frame_hw[0]
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (episode, model id) -> its (t, slot), in time order
    for t, n in zip(*np.nonzero(roll.ids >= 0)):
        tracks.setdefault((int(roll.episodes[t]), int(roll.ids[t, n])), []).append((int(t), int(n)))

    def sprite(points: list[tuple[int, int]]) -> int | None:
        t, n = np.array(points).T
        d = np.linalg.norm(roll.sprites[t] - roll.where[t, n, None, :2] * size, axis=-1)  # [P, S]
        d = np.where(np.isfinite(d), d, np.inf)
        near = d.argmin(1)[d.min(1) < max_distance]
        return int(np.bincount(near).argmax()) if len(near) else None

    shown: dict[tuple[int, int], int] = {}
    ended: dict[int, tuple[int, int | None]] = {}  # shown id -> (last step, sprite) of its track, once it ended
    live: dict[int, tuple[int, int | None]] = {}
    episode = None
    for key in sorted(tracks, key=lambda k: tracks[k][0][0]):
        start = tracks[key][0][0]
        if key[0] != episode:
            ended, live, episode = {}, {}, key[0]
        for sid, (last, _) in list(live.items()):
            if last < start:
                ended[sid] = live.pop(sid)
        s = sprite(tracks[key])
        same = [(last, sid) for sid, (last, s2) in ended.items() if s is not None and s2 == s]
        sid = max(same)[1] if same else len(shown)
        ended.pop(sid, None)
        shown[key] = sid
        live[sid] = (tracks[key][-1][0], s)
    out = np.full(roll.ids.shape, -1)
    for key, points in tracks.items():
        t, n = np.array(points).T
        out[t, n] = shown[key]
    return out


PLAYER_ID = 10**6  # the player's track id under ``player_known``


def perfect_detector_tracks(
    roll: SpriteRollout, gate: float, velocity: bool, merge_distance: float = 3.0, player_known: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slots ``(pres [T, G], where [T, G, 4], ids [T, G])`` of a tracker that detects every ground-truth object
    exactly (the RAM sprites inside the frame, stacked ones merged as :func:`sprite_scores` merges them) and links
    them by position alone: Hungarian on the distance to each track's last centre (plus its last displacement with
    ``velocity``), no link beyond ``gate`` px, a new id otherwise; ids restart with each episode. With
    ``player_known`` the player (sprite 0, the only one that looks different in Pac-Man) keeps one id per episode,
    as a perfect appearance model of it would give; the others are linked by position."""
    size = roll.frame_hw[0]
    objects = []
    for truth in roll.sprites:
        objects.append(merge_stacked(truth, sprites_inside(truth, roll.frame_hw), merge_distance))
    G = max(len(o[0]) for o in objects)
    T = len(objects)
    pres, where, ids = np.zeros((T, G)), np.zeros((T, G, 4)), np.full((T, G), -1)
    last, moved, names, next_id, prev_ep = np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, int), 0, -1
    for t, (centres, object_ids) in enumerate(objects):
        if roll.episodes[t] != prev_ep:
            last, moved, names, prev_ep = np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, int), roll.episodes[t]
        guess = last + moved if velocity else last
        d = np.linalg.norm(centres[:, None] - guess[None], axis=-1)  # [objects, tracks]
        if player_known:  # the player's object and its track only link to each other, under the same id
            is_player = object_ids == 0
            d[is_player[:, None] != (names == PLAYER_ID)[None]] = np.inf
        rows, cols = linear_sum_assignment(np.where(d < gate, d, 1e6))
        keep = d[rows, cols] < gate
        new_names = np.full(len(centres), -1)
        new_moved = np.zeros_like(centres)
        new_names[rows[keep]] = names[cols[keep]]
        new_moved[rows[keep]] = centres[rows[keep]] - last[cols[keep]]
        for j in np.flatnonzero(new_names < 0):
            if player_known and object_ids[j] == 0:
                new_names[j] = PLAYER_ID
            else:
                new_names[j], next_id = next_id, next_id + 1
        last, moved, names = centres, new_moved, new_names
        n = len(centres)
        pres[t, :n], ids[t, :n] = 1.0, names
        where[t, :n, :2], where[t, :n, 2:] = centres / size, 4.0 / size
    return pres, where, ids


def score(cfg: Score) -> None:
    rules = {
        "model ids (no re-id)": lambda roll: roll.ids,
        "shipped: what, 100 steps, 8.0": lambda roll: reidentify(roll, 100, 8.0),
        "what, 300 steps, 8.0": lambda roll: reidentify(roll, 300, 8.0),
        "what, 100 steps, 12.0": lambda roll: reidentify(roll, 100, 12.0),
        "what + 10 x centre, 100 steps, 8.0": lambda roll: reidentify(roll, 100, 8.0, 10.0),
        "what + 30 x centre, 100 steps, 10.0": lambda roll: reidentify(roll, 100, 10.0, 30.0),
        "what + 10 x centre + 20 x colour, 100 steps, 8.0": lambda roll: reidentify(roll, 100, 8.0, 10.0, 20.0),
        "oracle link (ground truth names each track)": oracle_ids,
    }
    perfect = {}  # trackers on the ground truth itself: (gate px, with the last displacement, player known)
    for gate, velocity, known in ((5.0, False, False), (10.0, False, False), (10.0, True, False), (10.0, False, True)):
        extra = (", velocity" if velocity else "") + (", player known" if known else "")
        perfect[f"perfect detector, position-only ids (gate {gate:g} px{extra})"] = (gate, velocity, known)
    table: dict[str, list] = {k: [] for k in [*rules, *perfect]}
    for path in sorted(cfg.runs.glob("seed*.npz")):
        roll = load_rollout(path)
        for name, rule in rules.items():
            s = sprite_scores(roll, ids=rule(roll))
            table[name].append([s["idf1"], s["num_switches"], s["mota"]])
        for name, (gate, velocity, known) in perfect.items():
            pres, where, ids = perfect_detector_tracks(roll, gate, velocity, player_known=known)
            s = sprite_scores(roll, pres=pres, where=where, ids=ids)
            table[name].append([s["idf1"], s["num_switches"], s["mota"]])
    print("| rule | IDF1 | switches | MOTA |\n|---|---|---|---|")
    for name, v in table.items():
        m = np.mean(v, 0)
        print(f"| {name} | {m[0]:.3f} | {m[1]:.1f} | {m[2]:.3f} |")
    print(json.dumps({k: np.mean(v, 0).tolist() for k, v in table.items()}), file=sys.stderr)


if __name__ == "__main__":
    cmd = tyro.extras.subcommand_cli_from_dict({"record": Record, "score": Score})
    (record if isinstance(cmd, Record) else score)(cmd)
