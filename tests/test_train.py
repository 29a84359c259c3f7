"""Training loop: schedules, optimiser, exact resume, atomic checkpoints, NaN stop, DDP; the pretrain command's
--output, --resume and --init-from (its parsing and every experiment's one step: test_cli.py)."""

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from sqair_world.model.registry import build_model
from sqair_world.speed import reduced_precision_matmul
from sqair_world.training.checkpoints import CheckpointError, load_model, safe_torch_load
from sqair_world.training.schedules import (
    authors_learning_rate,
    curriculum_length,
    linear_decay,
    piecewise_constant,
    warmup_constant,
)
from sqair_world.training.trainer import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    batch_indices,
    learning_rate,
    tf_rmsprop,
)

TINY_MODEL = dict(
    image_shape=(1, 24, 24), glimpse_size=(8, 8), n_what=4, n_hidden=16, n_hidden_small=8, max_objects=2, k_particles=2
)


def _data(S=24, T=4, seed=0):
    g = np.random.default_rng(seed)
    return (g.random((T, S, 1, 24, 24)) * 255).astype(np.uint8)


def _trainer(tmp_path, steps, **kw):
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **TINY_MODEL)
    cfg = TrainConfig(
        steps=steps,
        batch_size=4,
        curriculum_every=2,
        curriculum_max=4,
        run_dir=str(tmp_path),
        tensorboard=False,
        progress=False,
        val_every=1000,
        device="cpu",
        recipe="fast",
        lr=1e-3,
        **kw,
    )
    return Trainer(model, _data(), _data(8, seed=1), cfg, experiment="test")


def test_schedules_are_pure_functions_of_the_step():
    assert [curriculum_length(s) for s in (0, 99_999, 100_000, 700_000, 5_000_000)] == [3, 3, 4, 10, 10]
    assert authors_learning_rate(0) == 1e-5 and authors_learning_rate(400_000) == pytest.approx(1e-5 / 3)
    assert authors_learning_rate(1_000_000) == pytest.approx(1e-5 / 9)
    assert piecewise_constant(5, [3, 10], [1, 2, 3]) == 2 and warmup_constant(0, 1.0, 10) == pytest.approx(0.1)
    assert [linear_decay(s, 8.0, 100) for s in (0, 50, 100, 500)] == [8.0, 4.0, 0.0, 0.0]
    assert linear_decay(0, 8.0, 0) == 0.0


def test_fast_learning_rate_decays_once_per_curriculum_stage_and_stops_with_the_curriculum():
    cfg = TrainConfig(recipe="fast", lr_stage_decay=0.5).resolved(torch.device("cpu"))  # 3 frames + 1 every 500
    lrs = [learning_rate(s, cfg) for s in (199, 499, 500, 999, 1000, 3500, 10_000)]
    assert lrs == pytest.approx([3e-4, 3e-4, 1.5e-4, 1.5e-4, 7.5e-5, 3e-4 / 2**7, 3e-4 / 2**7])
    constant = TrainConfig(recipe="fast", lr_stage_decay=1.0).resolved(torch.device("cpu"))
    assert learning_rate(1000, constant) == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="lr_stage_decay"):
        TrainConfig(lr_stage_decay=0.0)


def test_steady_modules_keep_the_base_rate_while_the_rest_decays(tmp_path):
    tr = _trainer(tmp_path, 5, lr_stage_decay=0.5, steady_lr_modules=("glimpse_decoder", "mean_image"))
    decayed, steady = tr.opt.param_groups
    names = {id(p): n for n, p in tr.model.named_parameters()}
    assert all(names[id(p)].startswith(("glimpse_decoder", "mean_image")) for p in steady["params"])
    assert len(decayed["params"]) + len(steady["params"]) == len(list(tr.model.parameters()))
    for _ in range(5):  # curriculum_every=2: 3 frames, then 4 (curriculum_max) from step 2
        tr.train_step()
    assert steady["lr"] == pytest.approx(warmup_constant(4, 1e-3)) and decayed["lr"] == pytest.approx(steady["lr"] / 2)
    with pytest.raises(ValueError, match="match no parameter.*glimpse_decoder"):
        _trainer(tmp_path, 1, steady_lr_modules=("decoder",))
    tr.save()
    with pytest.raises(ValueError, match="resume with the same --steady-lr-modules"):
        _trainer(tmp_path, 6).load(tmp_path / "last.pt")


def test_presence_warmup_offsets_discovery_during_training_only(tmp_path):
    tr = _trainer(tmp_path, 3, presence_warmup=6.0, presence_warmup_steps=4)
    tr.train_step()
    assert tr.model.discovery.presence_offset.item() == pytest.approx(6.0)
    tr.train_step()
    assert tr.model.discovery.presence_offset.item() == pytest.approx(4.5)
    tr.validate()
    assert tr.model.discovery.presence_offset.item() == 0.0
    assert "presence_offset" not in tr.model.state_dict()  # not saved: a loaded model has no warm-up


def test_tf_rmsprop_starts_with_unit_square_average():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = tf_rmsprop([p], lr=0.1)
    assert torch.equal(opt.state[p]["square_avg"], torch.ones(3))
    assert opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-10 and opt.defaults["momentum"] == 0.9
    p.grad = torch.ones(3)
    opt.step()  # with square_avg = 1: avg = 0.9 + 0.1 = 1, update = lr * g / 1
    torch.testing.assert_close(p.detach(), torch.full((3,), -0.1))


def test_batches_are_epochs_without_replacement_and_sharded():
    seen = np.concatenate([batch_indices(s, 12, 4, seed=0) for s in range(3)])
    assert sorted(seen.tolist()) == list(range(12))
    r0, r1 = batch_indices(5, 12, 4, 0, rank=0, world=2), batch_indices(5, 12, 4, 0, rank=1, world=2)
    assert np.array_equal(np.concatenate([r0, r1]), batch_indices(5, 12, 4, 0))


def test_resume_equals_uninterrupted(tmp_path):
    straight = _trainer(tmp_path / "a", steps=6)
    straight.fit()
    first = _trainer(tmp_path / "b", steps=3)
    first.fit()
    resumed = _trainer(tmp_path / "b", steps=6)
    resumed.load(tmp_path / "b" / "last.pt")
    assert resumed.step == 3 and resumed.seq_len(resumed.step) == 4
    resumed.fit()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    tr = _trainer(tmp_path, steps=2)
    tr.fit()
    before = load_model(tmp_path / "last.pt").state_dict()
    tr.step += 5

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        tr.save()
    monkeypatch.undo()
    after = load_model(tmp_path / "last.pt")
    assert after.checkpoint_extra["step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(before.values(), after.state_dict().values()))
    assert not list(tmp_path.glob("*.tmp"))


def test_nan_stops_with_step_and_batch_and_keeps_checkpoint(tmp_path):
    tr = _trainer(tmp_path, steps=4)
    tr.cfg = tr.cfg.__class__(**{**tr.cfg.__dict__, "steps": 2})
    tr.fit()
    with torch.no_grad():
        tr.model.glimpse_decoder.output_scale.fill_(float("nan"))
    tr.cfg = tr.cfg.__class__(**{**tr.cfg.__dict__, "steps": 4})
    with pytest.raises(TrainingDiverged, match=r"at step 2 on training sequences \["):
        tr.fit()
    assert load_model(tmp_path / "last.pt").checkpoint_extra["step"] == 2


def test_resume_rejects_a_mismatched_model(tmp_path):
    tr = _trainer(tmp_path, steps=1)
    tr.fit()
    torch.manual_seed(0)
    other = build_model("mlp-sqair", **{**TINY_MODEL, "n_what": 5})
    tr2 = Trainer(other, _data(), _data(8), tr.cfg, experiment="test")
    with pytest.raises(CheckpointError, match="another configuration"):
        tr2.load(tmp_path / "last.pt")


def test_pretrain_output_and_resume(tmp_path, monkeypatch, capsys):
    from sqair_world.pretrain import main

    monkeypatch.setenv("SQAIR_WORLD_CACHE", str(tmp_path / "cache"))
    base = [
        "mnist-mlp-sqair",
        *("--num-train-sequences", "16", "--num-val-sequences", "4", "--batch-size", "4", "--curriculum-max", "3"),
        *("--val-every", "2", "--run-dir", str(tmp_path / "run"), "--no-progress", "--model.k-particles", "2"),
        *("--model.n-hidden", "16", "--model.n-what", "4", "--model.glimpse-size", "8", "8"),
    ]
    assert main([*base, "--steps", "2", "--output", str(tmp_path / "m.pt")]) == 0
    model = load_model(tmp_path / "m.pt")
    assert model.cfg.n_what == 4 and model.cfg.k_particles == 2 and model.checkpoint_extra["step"] == 2
    assert safe_torch_load(tmp_path / "m.pt")["state_dict"]["mean_image"].dtype == torch.float32  # no --half
    capsys.readouterr()
    assert main([*base, "--steps", "3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resumed {tmp_path / 'run' / 'last.pt'} at step 2" in err and "(step 3)" in err, err


def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **TINY_MODEL)
    cfg = TrainConfig(
        steps=2,
        batch_size=4,
        curriculum_max=3,
        run_dir=out_dir,
        tensorboard=False,
        progress=False,
        device="cpu",
        recipe="fast",
        lr=1e-2,
        deterministic=True,
        val_every=1000,
    )
    tr = Trainer(model, _data(), _data(8, seed=1), cfg, experiment="ddp")
    tr.fit()
    torch.save(tr.model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    import torch.distributed as dist

    dist.destroy_process_group()


def test_ddp_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **TINY_MODEL)
    cfg = TrainConfig(
        steps=2,
        batch_size=4,
        curriculum_max=3,
        run_dir=str(tmp_path / "single"),
        tensorboard=False,
        progress=False,
        device="cpu",
        recipe="fast",
        lr=1e-2,
        deterministic=True,
        val_every=1000,
    )
    single = Trainer(model, _data(), _data(8, seed=1), cfg, experiment="single")
    single.fit()
    for k, v in single.model.state_dict().items():
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
        torch.testing.assert_close(r0[k], v, atol=2e-5, rtol=1e-4, msg=f"DDP != single process in {k}")


def test_pretrain_atari_output_half_and_init_from(tmp_path, capsys):
    from sqair_world.pretrain import main

    args = [
        *("atari", "--env", "ALE/Pacman-v5", "--steps", "2", "--num-train-sequences", "4", "--num-val-sequences", "2"),
        *("--batch-size", "2", "--curriculum-max", "3", "--val-every", "2", "--no-progress", "--no-tensorboard"),
        *("--model.n-hidden", "16", "--model.n-what", "4", "--model.k-particles", "2"),
    ]
    assert main([*args, "--run-dir", str(tmp_path / "run"), "--output", str(tmp_path / "pac.pt"), "--half"]) == 0
    model = load_model(tmp_path / "pac.pt")
    assert model.cfg.image_shape == (3, 84, 84) and model.cfg.max_objects == 8 and model.cfg.discovery == "grid"
    assert model.checkpoint_extra["env_id"] == "ALE/Pacman-v5"
    assert safe_torch_load(tmp_path / "pac.pt")["state_dict"]["mean_image"].dtype == torch.float16  # --half
    assert 0.2 < model.mean_image.mean().item() < 0.8  # the maze background, not zeros
    capsys.readouterr()
    # fine-tuning: a new run from those weights with a config that keeps the parameter shapes
    tune = ["--init-from", str(tmp_path / "pac.pt"), "--model.exit-margin", "0.05", "--run-dir", str(tmp_path / "tune")]
    assert main([*args, *tune, "--output", str(tmp_path / "tuned.pt")]) == 0
    assert f"initialised from {tmp_path / 'pac.pt'}" in capsys.readouterr().err
    tuned = load_model(tmp_path / "tuned.pt")
    assert tuned.cfg.exit_margin == 0.05 and tuned.checkpoint_extra["step"] == 2


def test_init_from_rejects_other_parameter_shapes(tmp_path, capsys):
    from sqair_world.pretrain import main
    from sqair_world.training.checkpoints import save_model

    save_model(tmp_path / "small.pt", build_model("mlp-sqair", **TINY_MODEL))
    assert main(["--init-from", str(tmp_path / "small.pt"), "--model.n-hidden", "16"]) == 2
    assert "do not fit this model's config" in capsys.readouterr().err
    assert main(["--init-from", str(tmp_path / "small.pt"), "--resume"]) == 2
    assert "give only one of them" in capsys.readouterr().err


def test_resume_from_corrupt_or_weights_only_files_fails_clearly(tmp_path, capsys, monkeypatch):
    from sqair_world.pretrain import main
    from sqair_world.training.checkpoints import save_model

    tr = _trainer(tmp_path, steps=1)
    save_model(tmp_path / "weights.pt", tr.model)
    with pytest.raises(ValueError, match="no training state"):
        tr.load(tmp_path / "weights.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        tr.load(tmp_path / "bad.pt")
    monkeypatch.setenv("SQAIR_WORLD_CACHE", str(tmp_path / "cache"))
    rc = main(
        [
            "--num-train-sequences",
            "4",
            "--num-val-sequences",
            "2",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--no-tensorboard",
            "--no-progress",
            "--run-dir",
            str(tmp_path / "run"),
            "--resume",
            str(tmp_path / "bad.pt"),
        ]
    )
    assert rc == 2 and "corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["autocast", "fast_matmul"])
def test_bfloat16_options_are_refused_on_a_cpu_without_native_bfloat16(tmp_path, monkeypatch, option):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match=f"{option}.*does not support natively"):
        _trainer(tmp_path, 1, **{option: True})
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    _trainer(tmp_path, 1, **{option: True})  # accepted where the CPU has it
    reduced_precision_matmul(False)  # undo fast_matmul's process-wide switch for later tests


def test_a_run_says_how_it_computes_even_without_the_progress_bar(tmp_path, capsys):
    _trainer(tmp_path, 1).fit()  # progress=False, as background runs with --no-progress
    line = capsys.readouterr().err
    assert "test: cpu (" in line and "recipe fast" in line and "float32" in line and "eager" in line
