"""Atari evaluation against console-RAM ground truth: the matching rule and the scores on hand-made rollouts, and
the rollout recorded from the wrapped game (the CLI: tests/test_cli_evaluate.py)."""

import numpy as np
import pytest
import torch

from sqair_world.evaluation.atari import SpriteRollout, sprite_distances, sprite_scores, sprites_found
from sqair_world.model.registry import build_model
from sqair_world.training.checkpoints import save_model
from sqair_world.training.experiments import ATARI_MODEL


def test_sprites_found_within_the_distance():
    truth = np.array([[10.0, 10.0], [40.0, 40.0], [42.0, 41.0]])
    centres = np.array([[13.0, 14.0], [41.0, 40.5]])  # 5 px from the first sprite; one box for two close sprites
    d = sprite_distances(truth, centres, 5.0)
    assert d.shape == (3, 2) and abs(d[0, 0] - 5.0) < 1e-9 and np.isnan(d[0, 1])
    assert sprites_found(d).tolist() == [True, True, True]
    assert sprites_found(sprite_distances(truth, centres, 4.9)).tolist() == [False, True, True]
    empty = sprite_distances(truth, np.zeros((0, 2)), 5.0)
    assert empty.shape == (3, 0) and sprites_found(empty).tolist() == [False, False, False]


def _rollout():
    """Two 84x84 frames, sprites (player, ghost1), three slots. Frame 0: the player found (slot id 0), the ghost
    missed and a slot 20 px away from it (a false positive). Frame 1: the ghost off-screen, the player found."""
    px = lambda x, y: [x / 84, y / 84, 0.1, 0.1]
    return SpriteRollout(
        pres=np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        where=np.array([[px(10, 10), px(70, 50), px(0, 0)], [px(12, 11), px(0, 0), px(0, 0)]]),
        ids=np.array([[0, 1, -1], [0, -1, -1]]),
        sprites=np.array([[[10.0, 10.0], [50.0, 50.0]], [[12.0, 10.0], [-5.0, 40.0]]]),
        bounds=np.array([-3.0, -5.0]),
        frame_hw=(84, 84),
        names=("player", "ghost1"),
    )


def test_sprite_scores_of_a_hand_made_rollout():
    r = sprite_scores(_rollout(), max_distance=5.0)
    assert r["count_acc"] == 1.0 and r["count_mean_abs_error"] == 0.0  # 2 slots for 2 sprites, then 1 for 1
    assert r["recall"] == pytest.approx(2 / 3) and r["precision"] == pytest.approx(2 / 3)
    assert r["mota"] == pytest.approx(1 - (1 + 1) / 3)  # one miss and one false positive among 3 sprite-frames
    assert r["motp_px"] == pytest.approx(0.5) and r["num_switches"] == 0  # distances 0 and 1 px
    assert r["found_by_sprite"] == {"player": 1.0, "ghost1": 0.0} and r["mean_step_bound"] == -4.0
    assert sprite_scores(_rollout(), max_distance=0.5)["recall"] == pytest.approx(1 / 3)  # frame 1 is 1 px off


def test_play_atari_records_the_slots_and_the_ram_sprites(tmp_path):
    from sqair_world.envs import make_sqair_env
    from sqair_world.envs.rollouts import play_atari

    torch.manual_seed(0)
    ckpt = tmp_path / "pac.pt"
    model = build_model("mlp-sqair", **{**ATARI_MODEL, "n_hidden": 16, "n_what": 4, "n_hidden_small": 8})
    save_model(ckpt, model, extra={"env_id": "ALE/Pacman-v5"})
    env = make_sqair_env("ALE/Pacman-v5", checkpoint=ckpt, device="cpu", num_slots=4)
    roll = play_atari(env, steps=6, seed=0)
    T = len(roll.pres)
    assert T == 6 and roll.where.shape == (T, 4, 4) and roll.ids.shape == (T, 4) and roll.bounds.shape == (T,)
    assert roll.sprites.shape == (T, 5, 2) and roll.names[0] == "player" and roll.frame_hw == (84, 84)
    inside = (roll.sprites >= 0) & (roll.sprites < 84)
    assert inside[:, 0].all()  # the player is always in the maze
    assert np.isfinite(roll.bounds).all()
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        play_atari(env, steps=0)


def test_perfect_detector_tracks_split_stacks_and_the_known_player():
    """scripts/reid_study.py's ground-truth tracker: a ghost leaving the stack it shared with another starts a new
    track (positions cannot say which ghost left), a jump past the gate starts one too, unless the object is the
    player and the player is known by sight."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reid_study import PLAYER_ID, perfect_detector_tracks

    # sprites (player, ghost1, ghost2): the ghosts stacked at (50, 50) for two steps, then ghost1 moves off; the
    # player walks right and jumps 30 px at step 3 (the tunnel)
    player = [[10, 10], [11, 10], [12, 10], [42, 10]]
    ghost1 = [[50, 50], [50, 50], [56, 50], [60, 50]]
    ghost2 = [[50, 50], [50, 50], [50, 50], [50, 50]]
    sprites = np.array([player, ghost1, ghost2], float).transpose(1, 0, 2)  # [T, S, 2]
    roll = SpriteRollout(
        pres=np.zeros((4, 1)),
        where=np.zeros((4, 1, 4)),
        ids=np.full((4, 1), -1),
        sprites=sprites,
        bounds=np.zeros(4),
        frame_hw=(84, 84),
        names=("player", "ghost1", "ghost2"),
        episodes=np.zeros(4, int),
    )
    pres, where, ids = perfect_detector_tracks(roll, gate=5.0, velocity=False)
    assert pres.sum(1).tolist() == [2, 2, 3, 3]  # the stack is one object until it splits
    assert np.allclose(where[0, :2, :2] * 84, [[10, 10], [50, 50]])
    left = np.flatnonzero(np.isclose(where[2, :, 0] * 84, 56))[0]  # ghost1, 6 px off the stack
    stayed = np.flatnonzero(np.isclose(where[2, :, 0] * 84, 50))[0]
    assert ids[2, stayed] == ids[0, 1] and ids[2, left] not in ids[1]  # the stack's track stays on the nearer part
    assert ids[3, 0] not in ids[2]  # the player's 30-px jump breaks its track
    _, _, known = perfect_detector_tracks(roll, gate=5.0, velocity=False, player_known=True)
    assert (known[:, 0] == PLAYER_ID).all()
    # exact detections: recall and precision 1; the split costs an identity against ids named by the lowest sprite
    s = sprite_scores(roll, pres=pres, where=where, ids=ids)
    assert s["recall"] == 1.0 and s["precision"] == 1.0 and s["idf1"] < 1.0


def test_oracle_link_names_tracks_per_episode_and_never_shows_a_live_id_twice():
    """scripts/reid_study.py's oracle: a new track takes the id of the track that ended on the same sprite; a track
    that starts while that one still lives gets a fresh id; the model's ids restart at each episode, so the same
    model id in two episodes is two tracks."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reid_study import oracle_ids

    a, b = [10.0, 10.0], [50.0, 50.0]  # sprite 0 (player) and sprite 1 (ghost), fixed
    ids = np.array([[0, 5], [0, 5], [1, 5], [0, -1], [0, 1], [0, 1]])  # episode 0: steps 0-2; episode 1: 3-5
    on = np.array([[a, b], [a, b], [a, b], [b, b], [b, b], [b, b]])  # the box centre of each slot, px
    roll = SpriteRollout(
        pres=(ids >= 0).astype(float),
        where=np.concatenate([on / 84, np.full((6, 2, 2), 4 / 84)], -1),
        ids=ids,
        sprites=np.array([[a, b]] * 6),
        bounds=np.zeros(6),
        frame_hw=(84, 84),
        names=("player", "ghost1"),
        episodes=np.array([0, 0, 0, 1, 1, 1]),
    )
    out = oracle_ids(roll)
    assert out[2, 0] == out[0, 0]  # track 1 took over sprite 0 after track 0 ended
    assert out[0, 1] != out[0, 0]
    assert out[4, 1] != out[4, 0]  # a double on the ghost while track 0 lives: a fresh id
    assert out[3, 0] == out[5, 0]
