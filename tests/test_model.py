"""MLP-SQAIR: shapes, masks, gradients, IWAE(K=1) = ELBO, numerics, tracking, imagination, checkpoints."""

import pytest
import torch

from sqair_world.model.config import SQAIRConfig
from sqair_world.model.distributions import bernoulli_log_prob, mvn_tril_log_prob, normal_log_prob
from sqair_world.model.registry import build_model, model_config
from sqair_world.training.checkpoints import CheckpointError, load_model, save_model


def test_default_parameter_count_matches_the_reference():
    model = build_model("mlp-sqair")
    n = model.num_parameters()
    # authors: 2,951,522 (reference §2.1); the 512 missing belong to a where-prior variable the reference does not list
    assert abs(n - 2_951_522) <= 520, n
    assert model.cfg.max_objects == 3 and model.cfg.glimpse_size == (20, 20) and model.cfg.n_what == 50


def test_initial_probabilities_match_the_reference():
    cfg = SQAIRConfig()
    assert abs(torch.sigmoid(torch.tensor(cfg.prop_step_bias)) - 0.993) < 1e-3
    assert abs(torch.sigmoid(torch.tensor(cfg.disc_step_bias)) - 0.731) < 1e-3
    model = build_model("mlp-sqair")
    lp = model.discovery.prior.count_log_probs(torch.zeros(1, 1), torch.ones(1), None)
    assert lp.exp()[0, 0] > 0.999  # p(0 new objects | t > 0) ~ 0.9999 at init


def test_shapes_masks_and_ids(tiny_sqair):
    model = tiny_sqair()
    x = torch.rand(4, 2, 1, 24, 24)
    out = model(x)
    T, B, K, N = 4, 2, 3, 3
    assert out.iwae.shape == (B,) and out.log_weights.shape == (B, K)
    assert out.canvas.shape == (T, B, K, 1, 24, 24)
    assert out.latents.what.shape == (T, B, K, N, 6) and out.latents.where.shape == (T, B, K, N, 4)
    assert out.slot_features.shape == (T, B, K, N, 10) and out.slot_mask.shape == (T, B, K, N)
    pres = out.latents.pres
    assert torch.all(pres[..., 1:] <= pres[..., :-1])  # present slots packed first
    assert torch.all((out.latents.id >= 0) == (pres > 0))  # ids exactly on present slots
    assert torch.all(out.num_prop + out.num_disc == out.count)
    assert torch.all(out.num_prop[0] == 0)  # nothing to propagate at t = 0
    assert torch.isfinite(out.loss) and torch.all(out.ess >= 1 - 1e-4)


def test_gradients_reach_every_parameter(tiny_sqair):
    for name in ("mlp-sqair", "mlp-air"):
        model = tiny_sqair(name)
        model(torch.rand(3, 2, 1, 24, 24)).loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        if name == "mlp-air":  # no propagation modules exist at all
            assert model.propagation is None
        assert not missing, missing


def test_iwae_with_one_particle_is_the_elbo(tiny_sqair):
    model = tiny_sqair()
    x = torch.rand(3, 2, 1, 24, 24)
    torch.manual_seed(5)
    out = model(x, k=1)
    torch.testing.assert_close(out.iwae, out.log_weights[:, 0])
    torch.testing.assert_close(out.iwae, out.rec - out.kl, rtol=1e-5, atol=1e-3)


def test_log_probability_helpers_against_torch_distributions():
    torch.manual_seed(0)
    x, mu, std = torch.randn(5, 4), torch.randn(5, 4), torch.rand(5, 4) + 0.1
    torch.testing.assert_close(normal_log_prob(x, mu, std), torch.distributions.Normal(mu, std).log_prob(x))
    L = torch.tril(torch.randn(5, 4, 4), -1) + torch.diag_embed(torch.rand(5, 4) + 0.5)
    torch.testing.assert_close(
        mvn_tril_log_prob(x, mu, L),
        torch.distributions.MultivariateNormal(mu, scale_tril=L).log_prob(x),
        rtol=1e-5,
        atol=1e-5,
    )
    v, logit = (torch.rand(7) > 0.5).float(), torch.randn(7) * 3
    torch.testing.assert_close(bernoulli_log_prob(v, logit), torch.distributions.Bernoulli(logits=logit).log_prob(v))


def test_discovery_count_is_the_modified_geometric(tiny_sqair):
    """The number discovered has the closed form P(n) = p1...pn (1 - p_{n+1}), with no last factor at the cap (or at
    N): exactly in log q(n) of the stopping chain, row by row, and in the frequencies of the sampled counts.

    The inputs that carry the previous slot's sampled what and where are cut (zero weights), so that p_j depends on
    the slot j only and the closed form holds unconditionally; p_j is recomputed here from the networks."""
    model = tiny_sqair()
    disc, (N, D, H) = model.discovery, (model.cfg.max_objects, model.cfg.n_what, model.cfg.n_hidden)
    with torch.no_grad():
        disc.rnn.cell.weight[:, 2 * H : 2 * H + D + 4] = 0  # RNN input [image, c, what, where, pres, h]
        disc.pres_predictor.mlp[0].weight[:, H:] = 0  # presence input [h, what]
        disc.presence_offset.fill_(-0.4)
    R = 8000
    image = torch.rand(1, 1, 24, 24)  # one frame shared by every row (K = R particles)
    feats = model.encode_images(image).expand(R, -1)
    cap = torch.tensor([N, 1]).repeat(R // 2)  # half the rows may discover N objects, half one
    torch.manual_seed(3)
    with torch.no_grad():
        out = disc(image, feats, torch.zeros(R, H), torch.full((R, 1), -0.5), torch.zeros(R), cap)
        h, p = disc.h0, []
        for _ in range(N):
            h = disc.rnn(torch.cat([feats[0], torch.zeros(H + D + 4), torch.ones(1)]), h)
            p.append(torch.sigmoid(disc.pres_predictor(torch.cat([h, torch.zeros(D)])) + disc.presence_offset))
    p = torch.stack(p).double()
    assert 0.2 < p.min() and p.max() < 0.8 and p.max() - p.min() > 0.01, p  # every count likely, p_j differ

    def closed_form(m):  # P(n) for n = 0..m under the cap m
        return torch.stack([p[:n].prod() * (1 - p[n] if n < m else 1) for n in range(m + 1)])

    n = out.pres.sum(-1).long()
    for m in (N, 1):
        rows = cap == m
        P = closed_form(m)
        torch.testing.assert_close(out.log_q_pres[rows].double(), P.log()[n[rows]], rtol=0, atol=1e-5)
        freq = torch.bincount(n[rows], minlength=N + 1).double() / rows.sum()
        assert (freq[m + 1 :] == 0).all(), (m, freq)
        sigma = (P * (1 - P) / rows.sum()).sqrt()
        assert ((freq[: m + 1] - P).abs() < 4 * sigma).all(), (m, freq, P)


def test_discovery_cap_never_exceeds_n(tiny_sqair):
    model = tiny_sqair(disc_step_bias=20.0, prop_step_bias=20.0)
    out = model(torch.rand(4, 2, 1, 24, 24))
    assert torch.all(out.num_disc[1:] <= 3 - out.num_prop[1:])


@pytest.mark.parametrize("frames", ["empty", "full", "edge"])
def test_no_nan_on_hard_frames(frames, tiny_sqair):
    model = tiny_sqair()
    x = torch.zeros(3, 2, 1, 24, 24)
    if frames == "full":
        x = torch.ones_like(x)
    if frames == "edge":
        x[..., -3:, -3:] = 1.0  # objects leaving through the corner
    with torch.no_grad():
        model.discovery.where_param.mlp[-1].bias.fill_(8.0)  # extreme boxes
    out = model(x)
    assert torch.isfinite(out.loss) and torch.isfinite(out.iwae).all()
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_all_absent_rows_are_finite(tiny_sqair):
    model = tiny_sqair(disc_step_bias=-50.0)
    out = model(torch.rand(3, 2, 1, 24, 24))
    assert out.count.sum() == 0 and torch.isfinite(out.iwae).all()


@pytest.mark.parametrize("disc_step_bias, prop_step_bias", [(-50.0, 0.0), (0.0, 0.0), (2.0, 0.0), (30.0, 30.0)])
def test_inference_without_gradients_skips_absent_slots_exactly(disc_step_bias, prop_step_bias, tiny_sqair):
    # without gradients, discovery stops once every row's chain has ended (or runs no step when propagation
    # fills every slot: the last case) and propagation after the last present slot; the present slots,
    # identities and weights must equal the full computation
    model = tiny_sqair(disc_step_bias=disc_step_bias, prop_step_bias=prop_step_bias).eval()
    x = torch.rand(4, 3, 1, 24, 24)
    runs = []
    for grad in (True, False):
        outs = []
        with torch.set_grad_enabled(grad):
            for t in range(4):
                out = model.step(
                    outs[-1].state if outs else model.initial_state(3),
                    x[t],
                    model.encode_images(x[t]),
                    sample=False,
                    first=t == 0,
                )
                outs.append(out)
        runs.append(outs)
    for full, fast in zip(*runs):
        p = full.state.z.pres
        assert torch.equal(p, fast.state.z.pres) and torch.equal(full.state.z.id, fast.state.z.id)
        assert torch.allclose(full.state.z.where * p[..., None], fast.state.z.where * p[..., None], atol=1e-5)
        assert torch.allclose(full.state.z.what * p[..., None], fast.state.z.what * p[..., None], atol=1e-5)
        for name in ("log_lik", "log_q", "log_p"):
            assert torch.allclose(getattr(full, name), getattr(fast, name), atol=1e-3), name
    if prop_step_bias > 0:  # the case above happened: every slot propagated, so no discovery step ran
        assert bool(runs[1][-1].state.z.pres.all()) and runs[1][-1].num_disc.sum() == 0


def test_identities_persist_when_forced_to_propagate(tiny_sqair):
    # discovery finds objects at t = 0; propagation keeps them (p ~ 1); afterwards no discovery (cap full)
    model = tiny_sqair(disc_step_bias=30.0, prop_step_bias=30.0)
    x = torch.rand(6, 2, 1, 24, 24)
    state = None
    ids = []
    for t in range(6):
        out = model.online_step(state, x[t])
        state = out.state
        ids.append(state.z.id.clone())
    assert torch.all(ids[0] == torch.tensor([[0, 1, 2], [0, 1, 2]]))
    for later in ids[1:]:
        assert torch.equal(later, ids[0])
    assert torch.all(state.next_id == 3) and torch.all(state.t == 6)


def test_online_step_new_objects_get_new_ids_and_reset_rows(tiny_sqair):
    model = tiny_sqair(disc_step_bias=30.0, prop_step_bias=-30.0)  # everything disappears and is rediscovered
    x = torch.rand(3, 2, 1, 24, 24)
    s1 = model.online_step(None, x[0]).state
    s2 = model.online_step(s1, x[1]).state
    assert torch.equal(s2.z.id, s1.z.id + 3)
    s3 = model.reset_rows(s2, torch.tensor([True, False]))
    assert torch.all(s3.z.id[0] == -1) and s3.t[0] == 0 and s3.next_id[0] == 0
    assert torch.equal(s3.z.id[1], s2.z.id[1])


def test_imagination_and_generation_shapes_and_no_side_effects(tiny_sqair):
    model = tiny_sqair()
    x = torch.rand(2, 3, 1, 24, 24)
    state = model.online_step(model.online_step(None, x[0]).state, x[1]).state
    before = [t.clone() for t in state.z]
    im = model.imagine(state, horizon=4, num_samples=5, render=True)
    assert im.z.pres.shape == (4, 3, 5, 3) and im.z.what.shape == (4, 3, 5, 3, 6)
    assert im.frames.shape == (4, 3, 5, 1, 24, 24)
    assert all(torch.equal(a, b) for a, b in zip(before, state.z))
    gen = model.generate(2, 3)
    assert gen.frames.shape == (3, 2, 1, 1, 24, 24) and torch.isfinite(gen.frames).all()
    out, im = model.condition_and_imagine(x, horizon=2)
    assert im.frames.shape == (2, 3, 1, 1, 24, 24)


def test_bad_input_errors(tiny_sqair):
    model = tiny_sqair()
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(1, 24, 24\)"):
        model(torch.rand(3, 2, 1, 20, 20))
    with pytest.raises(TypeError, match="uint8"):
        model((torch.rand(3, 2, 1, 24, 24) * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(torch.rand(3, 2, 1, 24, 24) * 255)
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((3, 2, 1, 24, 24), float("nan")))
    with pytest.raises(ValueError, match="glimpse_size"):
        SQAIRConfig(glimpse_size=(60, 60))
    with pytest.raises(ValueError, match="did you mean 'n_what'"):
        model_config("mlp-sqair", n_wht=3)
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("mlp-sqiar")


def test_checkpoint_round_trip_and_errors(tmp_path, tiny_sqair):
    model = tiny_sqair()
    path = tmp_path / "m.pt"
    save_model(path, model, extra={"step": 7})
    raw = torch.load(path, weights_only=True)  # plain, weights_only-loadable contents
    assert raw["model_name"] == "mlp-sqair"
    loaded = load_model(path)
    assert loaded.checkpoint_extra == {"step": 7} and loaded.cfg == model.cfg
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match="another configuration"):
        load_model(path, expected_config=model.cfg.replace(n_what=7))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    data = torch.load(path, weights_only=True)
    data["state_dict"]["mean_image"] = torch.zeros(1, 5, 5)
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(tmp_path / "mismatch.pt")


def test_air_on_one_frame_is_sqair_discovery_with_the_same_weights(tiny_sqair):
    sqair, air = tiny_sqair("mlp-sqair"), tiny_sqair("mlp-air")
    air.load_state_dict({k: v for k, v in sqair.state_dict().items() if not k.startswith("propagation.")})
    x = torch.rand(1, 3, 1, 24, 24)
    torch.manual_seed(11)
    a = sqair(x)
    torch.manual_seed(11)
    b = air(x)
    torch.testing.assert_close(a.iwae, b.iwae)
    torch.testing.assert_close(a.log_weights, b.log_weights)


def test_air_forgets_objects_between_frames(tiny_sqair):
    air = tiny_sqair("mlp-air", disc_step_bias=30.0)
    out = air(torch.rand(3, 2, 1, 24, 24))
    assert torch.all(out.num_prop == 0) and torch.all(out.num_disc == 3)
    ids = out.latents.id
    assert torch.all(ids[1] == ids[0] + 3)  # fresh identities every frame: AIR does not track


def test_full_background_shows_everywhere_and_masked_only_under_objects(tiny_sqair):
    bg = torch.rand(1, 24, 24)
    for mode in ("masked", "full"):
        model = tiny_sqair(background=mode)
        model.set_background(bg, trainable=False)
        assert not model.mean_image.requires_grad
        empty = model.initial_state(2).z  # no objects present
        canvas = model.render(empty)
        expected = bg.expand(2, 1, 24, 24) if mode == "full" else torch.sigmoid(torch.tensor(-10.0)) * bg
        assert torch.allclose(canvas, expected, atol=1e-6), mode


def _ids_after_moving(model, shifts: dict[int, float]):
    """Three objects found on a noise frame (presence forced on by the model's biases), the box centres of the slots
    in ``shifts`` moved to that shift logit, one more step: (the ids present after it, that step's output)."""
    x = torch.rand(2, 1, 1, 24, 24)
    state = model.online_step(None, x[0]).state
    assert state.z.id.tolist() == [[0, 1, 2]]
    where = state.z.where.clone()
    for slot, shift in shifts.items():
        where[0, slot, 2:] = shift
    out = model.online_step(state._replace(z=state.z._replace(where=where)), x[1])
    return set(out.state.z.id[0].tolist()), out


def test_objects_parked_at_the_border_leave_with_exit_margin(tiny_sqair):
    # presence forced on: the only way out is the exit margin (SQAIRConfig.exit_margin)
    ids = {}
    for margin in (0.0, 0.05):
        model = tiny_sqair(disc_step_bias=30.0, prop_step_bias=30.0, exit_margin=margin)
        ids[margin], _ = _ids_after_moving(model, {0: 6.0})  # centre tanh(6) ~ 1: parked in the bottom-right corner
    assert 0 in ids[0.0]  # reference behaviour: the parked object stays
    assert 0 not in ids[0.05] and {1, 2, 3} <= ids[0.05]  # it left; discovery filled the slot with a new id
    with pytest.raises(ValueError, match="exit_margin"):
        SQAIRConfig(exit_margin=0.5)


def test_a_second_track_on_an_older_tracks_object_is_dropped_with_prop_merge_distance(tiny_sqair):
    # presence forced on: only the merge rule can drop a track (SQAIRConfig.prop_merge_distance)
    ids = {}
    for distance in (0.0, 0.2):
        model = tiny_sqair(disc_step_bias=30.0, prop_step_bias=30.0, prop_merge_distance=distance)
        # tracks 0 and 1 on one object (centre at 0.12 of the side), track 2 far from both (0.88)
        ids[distance], out = _ids_after_moving(model, {0: -1.0, 1: -1.0, 2: 1.0})
        assert torch.isfinite(out.log_q).all() and torch.isfinite(out.log_p).all()  # the dropped track: a valid q
    assert {0, 1, 2} <= ids[0.0]  # reference behaviour: both tracks stay
    assert {0, 2} <= ids[0.2] and 1 not in ids[0.2]  # the younger one is dropped; discovery may fill its slot
    with pytest.raises(ValueError, match="prop_merge_distance"):
        SQAIRConfig(prop_merge_distance=1.0)
