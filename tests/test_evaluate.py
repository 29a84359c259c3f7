"""Evaluation glue: ground-truth tracks from the generator agree with the model's box convention; layering."""

import ast
from pathlib import Path

import numpy as np
import torch

from sqair_world.data import load_moving_mnist
from sqair_world.evaluation.metrics import tracking_scores
from sqair_world.evaluation.moving_mnist import format_table, ground_truth_tracks
from sqair_world.model.spatial import box_to_where, pixel_boxes


def _as_model_boxes(boxes_px: np.ndarray, hw=(50, 50)) -> np.ndarray:
    """Ground-truth (x_min, y_min, w, h) px -> where latents -> pixel boxes, as the evaluator reads the model."""
    H, W = hw
    b = torch.as_tensor(boxes_px, dtype=torch.float64)
    frac = torch.stack(
        [(b[..., 0] + b[..., 2] / 2) / W, (b[..., 1] + b[..., 3] / 2) / H, b[..., 2] / W, b[..., 3] / H], -1
    )
    return pixel_boxes(box_to_where(frac), hw).numpy()


def test_a_tracker_that_reports_the_generator_tracks_scores_perfectly():
    data = load_moving_mnist("eval", 6, seed=3)
    gt_boxes, gt_ids = ground_truth_tracks(data, 0.25)
    assert gt_boxes.shape == (*data.visible_frac.shape, 4) and (gt_ids >= 0).any()
    assert ((gt_ids >= 0) <= (data.visible_frac >= 0.25)).all()  # hidden digits are not ground truth
    pred_ids = np.where(gt_ids >= 0, gt_ids + 10, -1)
    perfect = tracking_scores(gt_boxes, gt_ids, _as_model_boxes(gt_boxes), pred_ids)
    assert perfect.mota == 1.0 and perfect.idf1 == 1.0 and perfect.motp < 1e-3
    # the model's boxes with x and y swapped (a convention bug) must not pass
    swapped = tracking_scores(gt_boxes, gt_ids, _as_model_boxes(gt_boxes[..., [1, 0, 3, 2]]), pred_ids)
    assert swapped.mota < 1.0


def test_table_has_the_paper_row_and_the_protocol():
    r = dict(
        log_px=1.0,
        rec=2.0,
        kl=1.0,
        count_acc=0.5,
        count_acc_visible=0.25,
        addition_acc=0.1,
        num_sequences=7,
        seq_len=10,
        particles=1000,
        mota=0.5,
        motp=0.3,
        idf1=0.6,
        num_switches=2,
        mota_centre=0.7,
        idf1_centre=0.8,
        num_switches_centre=1,
    )
    text = format_table("mlp-sqair", r)
    assert "mlp-sqair (paper)" in text and "6617.6" in text and "7 evaluation sequences" in text and "K=1000" in text
    assert "n/a" in format_table("mlp-vrnn", {**r, "count_acc": None})


def test_posterior_track_equals_the_online_tracker():
    from sqair_world.model.registry import build_model

    torch.manual_seed(0)
    model = build_model(
        "mlp-sqair", image_shape=(1, 24, 24), glimpse_size=(8, 8), n_hidden=16, n_what=4, n_hidden_small=8
    )
    model.eval()
    x = torch.rand(4, 3, 1, 24, 24)
    from sqair_world.evaluation.moving_mnist import posterior_track

    boxes, ids, feats, mask = posterior_track(model, x)
    state = None
    for t in range(4):
        state = model.online_step(state, x[t]).state
        torch.testing.assert_close(mask[t], state.z.pres)
        assert torch.equal(ids[t], torch.where(state.z.pres > 0, state.z.id, -1))
        torch.testing.assert_close(boxes[t], pixel_boxes(state.z.where, (24, 24)))
    assert feats.shape == (4, 3, model.cfg.max_objects, model.cfg.n_what + 4)


def test_evaluation_imports_neither_envs_nor_gymnasium():
    """evaluation/ scores recorded arrays; playing envs is the job of envs/ (sqair_world/envs/rollouts.py)."""
    import sqair_world.evaluation

    upward = (
        "gymnasium",
        "ale_py",
        "stable_baselines3",
        "sqair_world.envs",
        "sqair_world.agents",
        "sqair_world.evaluate",
    )
    for path in sorted(Path(sqair_world.evaluation.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            bad = [n for n in names if n.startswith(upward)]
            assert not bad, f"{path.name}:{node.lineno} imports {bad}"
