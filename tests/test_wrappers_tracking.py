"""Identities on the moving-MNIST env with known tracks, measured against its ground truth."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import sqair_world  # noqa: F401  (registers the ids)
from sqair_world.envs.rollouts import play_moving_mnist
from sqair_world.evaluation.metrics import tracking_scores
from sqair_world.evaluation.tracking import TrackRollout, concat_rollouts, identity_violations
from sqair_world.utils import box_to_pixels


def test_observation_boxes_to_pixels_follow_the_documented_convention():
    where = np.array([[0.5, 0.25, 0.2, 0.1]])  # centre (25, 12.5) px of a 50x50 frame, 10x5 px
    np.testing.assert_allclose(box_to_pixels(where, 50, 50), [[20.0, 10.0, 10.0, 5.0]])
    torch.testing.assert_close(
        box_to_pixels(torch.tensor(where, dtype=torch.float32), 50, 100), torch.tensor([[40.0, 10.0, 20.0, 5.0]])
    )


def test_identity_violations_counts_duplicates_and_revived_ids():
    assert identity_violations(np.array([[0, 1, -1], [1, 0, 2], [2, -1, -1]])) == 0
    assert identity_violations(np.array([[0, 0, -1]])) == 1  # the same id twice in a frame
    assert identity_violations(np.array([[0, -1], [-1, -1], [0, -1]])) == 1  # id 0 dropped, then reused


def test_concat_rollouts_cuts_to_the_shortest_episode():
    def roll(T):
        return TrackRollout(np.zeros((T, 1, 2, 4)), np.zeros((T, 1, 2)), np.ones((T, 1, 3, 4)), np.ones((T, 1, 3)))

    both = concat_rollouts([roll(5), roll(3)])
    assert both.gt_boxes.shape == (3, 2, 2, 4) and both.pred_ids.shape == (3, 2, 3)


def test_ground_truth_tracks_score_perfectly_and_swaps_are_caught(tiny_ckpt):
    """The scoring path: the env's own tracks as predictions give IDF1 1; swapping ids mid-episode is a switch."""
    env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(tiny_ckpt))
    roll = play_moving_mnist(env, seed=2)  # seed 2: both digits visible all episode
    T = len(roll.gt_ids)
    assert T == 20 and roll.gt_boxes.shape == (T, 1, 2, 4) and roll.pred_ids.shape == (T, 1, 3)
    perfect = tracking_scores(roll.gt_boxes, roll.gt_ids, roll.gt_boxes, roll.gt_ids)
    assert perfect.idf1 == pytest.approx(1.0) and perfect.num_switches == 0 and perfect.mota == pytest.approx(1.0)
    assert (roll.gt_ids[:, 0] >= 0).all()
    swapped = roll.gt_ids.copy()
    swapped[T // 2 :] = swapped[T // 2 :, :, ::-1]  # swap the two digits' ids in the second half
    bad = tracking_scores(roll.gt_boxes, roll.gt_ids, roll.gt_boxes, swapped)
    assert bad.num_switches >= 1 and bad.idf1 < 0.9


def test_wrapped_tracker_keeps_identity_bookkeeping_and_is_scored(tiny_ckpt):
    """Any checkpoint: ids are unique per frame and never revived; the scores against the truth are computed."""
    env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(tiny_ckpt))
    roll = play_moving_mnist(env, episodes=3, seed=0)
    assert roll.pred_ids.shape[1] == 3
    for b in range(3):
        assert identity_violations(roll.pred_ids[:, b]) == 0
    scores = tracking_scores(*roll)
    assert 0.0 <= scores.idf1 <= 1.0 and scores.mota <= 1.0 and scores.num_switches >= 0
    with pytest.raises(ValueError, match="episodes must be >= 1, got 0"):
        play_moving_mnist(env, episodes=0)


class _WithoutTruth(gym.Wrapper):
    """The moving-MNIST frames without the ground truth in ``info``."""

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)[0], {}


def test_play_moving_mnist_needs_the_ground_truth(tiny_ckpt):
    from sqair_world.envs.moving_mnist import MovingMNISTEnv
    from sqair_world.envs.slots import SQAIRObservation

    env = SQAIRObservation(_WithoutTruth(MovingMNISTEnv()), tiny_ckpt)
    with pytest.raises(ValueError, match="needs an env whose info has ground-truth 'boxes' and 'track_ids'"):
        play_moving_mnist(env)


def test_shipped_checkpoint_tracks_identities():
    """The shipped moving-MNIST checkpoint (60 CPU-minutes of training) against the ground-truth tracks.

    Matched by "digit centre inside the glimpse" (SQAIR's glimpses are not tight boxes). Measured with
    `python -m sqair_world.evaluate tracking --episodes 20 --match centre`: MOTA 0.46, IDF1 0.68, 22 switches.
    """
    env = gym.make("SQAIR-Wrapped/MovingMNIST")
    roll = play_moving_mnist(env, episodes=20, seed=0)
    scores = tracking_scores(*roll, match="centre")
    assert scores.idf1 > 0.55 and scores.mota > 0.3 and scores.num_switches <= 40, scores
    strict = tracking_scores(*TrackRollout(*(a[:, :5] for a in roll)), match="iou")  # tight IoU is much stricter
    assert strict.idf1 < scores.idf1


def test_reidentifier_gives_a_lost_track_its_identity_back_by_appearance():
    from sqair_world.envs.reid import ReIdentifier

    a, b, far = [0.0, 0.0], [3.0, 0.0], [0.0, 50.0]
    reid = ReIdentifier(num_envs=2, num_slots=3, what_dim=2, window=5, max_distance=1.0)
    step = lambda ids, what: reid(np.array(ids), np.array(what, dtype=float)).tolist()
    # env 0 sees tracks 0 (looks like a) and 1 (b); env 1 sees track 0 (b)
    assert step([[0, 1, -1], [0, -1, -1]], [[a, b, a], [b, a, a]]) == [[0, 1, -1], [0, -1, -1]]
    # env 0 loses both; env 1 loses its track
    assert step([[-1, -1, -1], [-1, -1, -1]], [[a, a, a], [a, a, a]]) == [[-1] * 3] * 2
    # new model tracks 2 (looks like b) and 3 (like a) in env 0 take 1 and 0 back, one to one; env 1's new track
    # looks like nothing it lost and gets a fresh id
    assert step([[2, 3, -1], [1, -1, -1]], [[b, a, a], [far, a, a]]) == [[1, 0, -1], [1, -1, -1]]
    # a track lost longer than the window is forgotten
    reid = ReIdentifier(num_envs=1, num_slots=2, what_dim=2, window=2, max_distance=1.0)
    assert step([[0, -1]], [[a, a]]) == [[0, -1]]
    for _ in range(3):
        assert step([[-1, -1]], [[a, a]]) == [[-1, -1]]
    assert step([[1, -1]], [[a, a]]) == [[1, -1]]  # fresh: no id is ever shown twice at once or revived late
    reid.reset_rows(np.array([True]))
    assert step([[5, -1]], [[a, a]]) == [[0, -1]]  # a reset env starts again at 0
    with pytest.raises(ValueError, match="window must be >= 0 steps, max_distance > 0"):
        ReIdentifier(1, 2, 2, window=-1, max_distance=1.0)


def test_reidentifier_remembers_a_tracks_mean_appearance_not_its_last():
    """A track that ends on an atypical frame (a flicker, a stack) is still recognised by how it looked over its life;
    with the last code alone (1.5 away) the new track would get a fresh id."""
    from sqair_world.envs.reid import ReIdentifier

    reid = ReIdentifier(num_envs=1, num_slots=2, what_dim=1, window=5, max_distance=1.0)
    for code in (0.0, 0.0, 0.0, 1.5):  # track 0 lives four steps; mean 0.375
        assert reid(np.array([[0, -1]]), np.array([[[code], [0.0]]])).tolist() == [[0, -1]]
    reid(np.array([[-1, -1]]), np.zeros((1, 2, 1)))  # lost
    assert reid(np.array([[1, -1]]), np.array([[[0.1], [0.0]]])).tolist() == [[0, -1]]
    with pytest.raises(ValueError, match=r"what must be \[e, N, 1\]"):
        reid(np.array([[1, -1]]), np.zeros((1, 2, 3)))


def test_reidentifier_position_weight_breaks_an_appearance_tie_by_where_the_track_was_lost():
    from sqair_world.envs.reid import ReIdentifier

    same = [[[0.0], [0.0]]]  # two sprites that look alike
    left, right = [[[0.1, 0.5], [0.9, 0.5]]], [[[0.88, 0.5], [0.5, 0.5]]]
    for weight, expected in ((0.0, [[0, -1]]), (10.0, [[1, -1]])):
        reid = ReIdentifier(1, 2, 1, window=5, max_distance=1.0, position_weight=weight)
        reid(np.array([[0, 1]]), np.array(same), centre=np.array(left))  # tracks 0 (left) and 1 (right)
        reid(np.array([[-1, -1]]), np.array(same), centre=np.array(left))  # both lost
        # a new track where track 1 was lost: appearance alone takes the first remembered (0), position takes 1
        shown = reid(np.array([[2, -1]]), np.array(same), centre=np.array(right))
        assert shown.tolist() == expected, weight
    with pytest.raises(ValueError, match="pass the box centres"):
        ReIdentifier(1, 2, 1, window=5, max_distance=1.0, position_weight=1.0)(np.array([[0, 1]]), np.array(same))


def test_wrapper_shows_reidentified_ids_in_stable_slots(tiny_sqair, tmp_path):
    """With the checkpoint's ``track_reid_steps`` on, the observation's ids are the re-identifier's and imagined
    slots are named the same way; with no lost track they equal the model's."""
    from sqair_world.training.checkpoints import save_model

    obs_ids = {}
    for steps in (0, 50):
        path = tmp_path / f"reid{steps}.pt"
        save_model(path, tiny_sqair(image_shape=(1, 50, 50), glimpse_size=(20, 20), n_what=8, track_reid_steps=steps))
        env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(path))
        obs, _ = env.reset(seed=0)
        ids = [obs["id"]]
        for _ in range(6):
            ids.append(env.step(env.action_space.sample())[0]["id"])
        obs_ids[steps] = np.stack(ids)
        encoder = env.get_wrapper_attr("encoder")
        assert (encoder.reid is None) == (steps == 0)
        imagined = env.get_wrapper_attr("imagine")(2, 2)["id"]  # [H, S, N]
        shown = set(obs_ids[steps][-1][obs_ids[steps][-1] >= 0].tolist())
        assert set(imagined[imagined >= 0].tolist()) <= shown
    # the untrained model keeps its tracks on these frames: nothing is lost, so nothing is renamed
    np.testing.assert_array_equal(obs_ids[0], obs_ids[50])
