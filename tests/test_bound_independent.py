"""The bound of SQAIR, AIR and the VRNN recomputed from outside the model: from the returned latents, with the
densities of ``torch.distributions`` only, and with K = 1 (IWAE = ELBO) compared to the model's ``rec``, ``kl``
and ``iwae``.

The model's networks are re-run one object at a time on inputs built from the latents, in the dense form of the
paper's algorithms (Alg. 2 propagation, Alg. 3 discovery; reference §2-§3), to get each distribution's
parameters. The latents the model drops are read by forward hooks: an object that propagation lets disappear
and the slot that stops the discovery chain are sampled, and enter the presence logit and the next slot's input,
but are not in ``SequenceOutput.latents``.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Independent, MultivariateNormal, Normal

from sqair_world.model.grid import covered_fraction
from sqair_world.model.registry import build_model
from sqair_world.model.spatial import box_coverage, glimpse_to_image, image_to_glimpse, where_to_box
from sqair_world.speed import row_compaction

# on the shared tiny SQAIR (conftest.py, N = 3 slots): chains that stop after 0..3 objects, and propagated objects
# that stay and objects that disappear
VARIED = dict(disc_step_bias=0.5, prop_step_bias=0.0)


def softplus_std(raw, min_std):
    return F.softplus(raw) + min_std


class DroppedLatents:
    """Forward hooks that record, per frame (one call of discovery or propagation), the ``z_what`` (and for
    propagation the ``z_where``) sampled at each slot step, ``[R, ...]``, including the samples the model does not
    return."""

    def __init__(self, model):
        H, D = model.cfg.n_hidden, model.cfg.n_what
        self.disc, self.prop_what, self.prop_where = [], [], []
        self.handles = []
        if model.cfg.discovery == "sequential":  # grid discovery has no chain (GridCells records what it drops)
            self.handles += [
                model.discovery.register_forward_pre_hook(lambda *_: self.disc.append([])),
                # the presence predictors read [.., what] last: the what sampled at this slot step
                model.discovery.pres_predictor.register_forward_hook(
                    lambda m, i, o: self.disc[-1].append(i[0][:, -D:])
                ),
            ]
        if model.propagation is not None:
            prop = model.propagation
            self.handles += [
                prop.register_forward_pre_hook(lambda *_: self.prop_what.append([])),
                prop.register_forward_pre_hook(lambda *_: self.prop_where.append([])),
                prop.pres_predictor.register_forward_hook(lambda m, i, o: self.prop_what[-1].append(i[0][:, -D:])),
                # the temporal GRU reads [h_rel, where, glimpse loc, glimpse std]
                prop.temporal_rnn.register_forward_hook(lambda m, i, o: self.prop_where[-1].append(i[0][:, H : H + 4])),
            ]

    def remove(self):
        for h in self.handles:
            h.remove()


def glimpse(cfg, image, where, mask=None):
    """The ``[C, h, w]`` glimpse of ``image [C, H, W]`` at ``where [4]``, times the flat ``mask [h*w]`` if given."""
    g = image_to_glimpse(image[None], where.view(1, 1, 4), cfg.glimpse_size)[0, 0]
    return g if mask is None else g * mask.view(1, *cfg.glimpse_size)


def render(model, what, where, pres):
    """sum_n pres_n warp^-1(decode(what_n)) + mean_image * sigmoid(-10 + 20 * coverage) (reference §2.3)."""
    cfg = model.cfg
    hw = cfg.image_shape[1:]
    canvas = torch.zeros(cfg.image_shape)
    cover = torch.zeros(hw)
    for n in range(cfg.max_objects):
        canvas = canvas + pres[n] * glimpse_to_image(model.glimpse_decoder(what[n]), where[n], hw)
        cover = cover + pres[n] * box_coverage(where[n], hw, cfg.glimpse_size)
    return canvas + model.mean_image * torch.sigmoid(-10 + 20 * cover)


def unit_tril(prop):
    """L + I: the learned lower-triangular factor of the propagation where-posterior."""
    L = torch.zeros(4, 4)
    rows, cols = torch.tril_indices(4, 4)
    L[rows, cols] = prop.cholesky
    return L + torch.eye(4)


def propagate_object(model, image, what_p, where_p, h_t, carry, h_rel, what, where):
    """Alg. 2 for one object of frame t-1 given its sampled ``what``/``where`` at frame t: the posterior
    distributions and the new recurrent states."""
    cfg, prop = model.cfg, model.propagation
    one = torch.ones(1)
    mask = torch.sigmoid(prop.glimpse_mask(h_t))
    proposal_where = where_p + cfg.where_bias_scale * prop.where_bias(h_t)
    proposal, _ = model.glimpse_encoder(glimpse(cfg, image, proposal_where, mask))
    h_rel = prop.relation_rnn(torch.cat([proposal, carry, what_p, where_p, one, h_t]), h_rel)
    delta, raw = prop.where_param(torch.cat([h_rel, where_p, h_t]))
    std = softplus_std(raw + cfg.prop_where_std_shift, cfg.min_std)
    q_where = MultivariateNormal(where_p + cfg.where_update_scale * delta, scale_tril=torch.diag(std) @ unit_tril(prop))
    g_loc, g_std = model.glimpse_encoder(glimpse(cfg, image, where, mask))
    h_t_new = prop.temporal_rnn(torch.cat([h_rel, where, g_loc, g_std]), h_t)
    t_loc, t_raw = prop.what_head(h_t_new).chunk(2)
    f, g_in, g_t = (torch.sigmoid(prop.gates(h_t_new)) * cfg.gate_scale).chunk(3)
    q_what = Normal(
        f * what_p + (1 - g_in) * g_loc + (1 - g_t) * t_loc,
        (1 - g_in) * g_std + (1 - g_t) * softplus_std(t_raw, cfg.min_std),
    )
    q_pres = Bernoulli(logits=prop.pres_predictor(torch.cat([h_rel, h_t, what])))
    return q_where, Independent(q_what, 1), q_pres, h_rel, h_t_new


def propagation_prior(model, what_p, where_p, h_p):
    """p^P(z_t | z_{t-1}) of one object: where, what, presence distributions and the new prior state."""
    cfg, prior = model.cfg, model.propagation.prior
    h_new = prior.gru(torch.cat([what_p, where_p]), h_p)
    logit, w_mu, w_raw, z_mu, z_raw = prior.head(h_new).split([1, 4, 4, cfg.n_what, cfg.n_what])
    p_where = Independent(Normal(w_mu, softplus_std(w_raw, cfg.min_std)), 1)
    p_what = Independent(Normal(z_mu, softplus_std(z_raw, cfg.min_std)), 1)
    return p_where, p_what, Bernoulli(logits=logit[0] + cfg.prop_prior_step_bias), h_new


def discovery_terms(model, image, c, e, t_pos, max_allowed, found, sampled_what):
    """Alg. 3 at one frame given the objects it ``found`` (``[(what, where)]``, in slot order) and the what sampled
    at each slot step (``sampled_what[j]``): ``(log q, log p, whether the chain stopped before the cap)``."""
    cfg, disc = model.cfg, model.discovery
    N, D = cfg.max_objects, cfg.n_what
    log_q = torch.zeros(())
    h, what, where, pres = disc.h0, torch.zeros(D), torch.zeros(4), torch.ones(())
    stopped = False
    for j in range(max_allowed):  # slots at or above the cap are absent with probability 1
        h = disc.rnn(torch.cat([model.image_encoder(image), c, what, where, pres.view(1)]), h)
        pres = torch.tensor(float(j < len(found)))
        if pres:
            what, where = found[j]
            torch.testing.assert_close(what, sampled_what[j])
            loc, raw = disc.where_param(h)
            q_where = Independent(Normal(loc, softplus_std(raw, cfg.min_std)), 1)
            q_what = Independent(Normal(*model.glimpse_encoder(glimpse(cfg, image, where))), 1)
            log_q = log_q + q_where.log_prob(where) + q_what.log_prob(what)
        else:  # the slot that stops the chain: sampled, scored for its presence only, not returned
            what = sampled_what[j]
        q_pres = Bernoulli(logits=disc.pres_predictor(torch.cat([h, what])) + disc.presence_offset)
        log_q = log_q + q_pres.log_prob(pres)
        if not pres:
            stopped = True
            break
    # p^D: the count (categorical; counts above the cap impossible), the autoregressive where, what ~ N(0, I)
    prior = disc.prior
    logits = F.elu(prior.count_bias + t_pos * prior.count_bias_t + prior.count_mlp(e))
    logits = logits.masked_fill(torch.arange(N + 1) > max_allowed, float("-inf"))
    log_p = Categorical(logits=logits).log_prob(torch.tensor(len(found)))
    s = F.elu(prior.context(torch.cat([prior.where_init, c, e])))
    prev_where = prior.where0
    for what, where in found:
        mu, raw = prior.out(torch.tanh(prior.in_to_hidden(prev_where) + prior.hidden_to_hidden(s))).chunk(2)
        log_p = log_p + Independent(Normal(mu, softplus_std(raw, cfg.min_std)), 1).log_prob(where)
        log_p = log_p + Independent(Normal(torch.zeros(D), 1.0), 1).log_prob(what)
        prev_where = where
    return log_q, log_p, stopped


def propagate_frame(model, x, z, t, b, prev, hidden, dropped, seen):
    """Alg. 2 at frame ``t`` of sequence ``b``: the objects ``prev`` (slots of frame t-1) in slot order, given the
    returned latents ``z`` and the ``dropped`` samples; updates ``hidden`` (id -> temporal and prior GRU states) and
    the case counts ``seen``. Returns ``(log q, log p, survivors [(what, where)], the prior's presence logits)``."""
    image, D = x[t, b], model.cfg.n_what
    what_t, where_t, pres_t, id_t = (a[t, b, 0] for a in z)
    log_q, log_p, survivors, prior_logits = torch.zeros(()), torch.zeros(()), [], []
    carry, h_rel = torch.zeros(D + 5), model.propagation.h_relation0 if model.propagation is not None else None
    for i, n in enumerate(prev):
        old_id = int(z.id[t - 1, b, 0, n])
        what_p, where_p = z.what[t - 1, b, 0, n], z.where[t - 1, b, 0, n]
        h_t, h_p = hidden[old_id]
        what, where = dropped.prop_what[t - 1][i][b], dropped.prop_where[t - 1][i][b]
        pres = torch.tensor(float(old_id in id_t[pres_t > 0].tolist()))
        if pres:  # a survivor: its returned latents are the samples the hooks saw
            slot = len(survivors)
            assert id_t[slot] == old_id, "propagated objects come first, in their old order"
            torch.testing.assert_close(what_t[slot], what)
            torch.testing.assert_close(where_t[slot], where)
        q_where, q_what, q_pres, h_rel, h_t_new = propagate_object(
            model, image, what_p, where_p, h_t, carry, h_rel, what, where
        )
        p_where, p_what, p_pres, h_p_new = propagation_prior(model, what_p, where_p, h_p)
        # an object that disappears pays only the presence terms (reference §3.3)
        log_q = log_q + q_pres.log_prob(pres) + pres * (q_where.log_prob(where) + q_what.log_prob(what))
        log_p = log_p + p_pres.log_prob(pres) + pres * (p_where.log_prob(where) + p_what.log_prob(what))
        carry = torch.cat([what, where, pres.view(1)])
        prior_logits.append(p_pres.logits)
        if pres:
            survivors.append((what, where))
            hidden[old_id] = (h_t_new, h_p_new)
        seen["survived" if pres else "disappeared"] += 1
    return log_q, log_p, survivors, prior_logits


def reference_bound(model, x, out, dropped):
    """Per sequence ``(sum_t log p(x_t | z_t), sum_t log q(z_t) - log p(z_t))`` of ``out``'s latents, ``[B]`` each,
    and how often each case of the algorithms occurred (so that a test can check it covered them)."""
    cfg, prop = model.cfg, model.propagation
    N = cfg.max_objects
    T, B = x.shape[:2]
    z = out.latents
    seen = dict(disappeared=0, survived=0, later_discovery=0, chain_stopped=0, capped=0)
    rec, kl = torch.zeros(B), torch.zeros(B)
    for b in range(B):
        hidden = {}  # id -> (temporal GRU state, propagation-prior GRU state) of the objects present
        next_id = 0
        for t in range(T):
            image = x[t, b]
            what_t, where_t, pres_t, id_t = (a[t, b, 0] for a in z)
            tracking = prop is not None and t > 0
            prev = [n for n in range(N) if z.pres[t - 1, b, 0, n] > 0] if tracking else []

            # --- propagation (Alg. 2): each object of frame t-1 in slot order, then the prior's summary e ---
            log_q, log_p, survivors, prior_logits = propagate_frame(model, x, z, t, b, prev, hidden, dropped, seen)
            # slots absent at t-1 have presence logit -88 in the prior: sigmoid(-88) - 0.5 ~ -0.5 each
            e = torch.as_tensor(sum(torch.sigmoid(lg) - 0.5 for lg in prior_logits) - 0.5 * (N - len(prev))).view(1) / N

            # --- discovery (Alg. 3) of the new objects, which follow the survivors with fresh identities ---
            n_prop = len(survivors)
            n_disc = int(pres_t.sum()) - n_prop
            assert (pres_t[: n_prop + n_disc] == 1).all() and (id_t[n_prop + n_disc :] == -1).all()
            assert id_t[n_prop : n_prop + n_disc].tolist() == list(range(next_id, next_id + n_disc))
            c = sum((model.discovery.latent_encoder(torch.cat(s)) for s in survivors), torch.zeros(cfg.n_hidden))
            max_allowed = N - n_prop  # the paper's cap (SQAIRConfig.enforce_discovery_cap)
            found = [(what_t[n], where_t[n]) for n in range(n_prop, n_prop + n_disc)]
            lq, lp, stopped = discovery_terms(
                model, image, c, e, float(tracking), max_allowed, found, [step[b] for step in dropped.disc[t]]
            )
            log_q, log_p = log_q + lq, log_p + lp
            seen["chain_stopped"] += stopped
            seen["capped"] += not stopped and max_allowed < N
            seen["later_discovery"] += tracking and n_disc > 0
            if prop is not None:
                for n in range(n_prop, n_prop + n_disc):
                    hidden[int(id_t[n])] = (prop.h_temporal0, prop.prior.h0)
            next_id += n_disc

            # --- likelihood of the frame under the rendered canvas ---
            canvas = render(model, what_t, where_t, pres_t)
            torch.testing.assert_close(canvas, out.canvas[t, b, 0], rtol=1e-4, atol=1e-5)
            rec[b] += Independent(Normal(canvas, cfg.output_std), 3).log_prob(image)
            kl[b] += log_q - log_p
    return rec, kl, seen


@pytest.mark.parametrize("name", ["mlp-sqair", "mlp-air"])
def test_sqair_bound_equals_an_independent_recomputation(name, tiny_sqair):
    model = tiny_sqair(name, **VARIED)
    with torch.no_grad():  # a background and a presence offset, so that both enter the bound
        model.mean_image.copy_(0.2 * torch.rand(1, 24, 24))
        model.discovery.presence_offset.fill_(0.3)
    x = torch.rand(4, 6, 1, 24, 24)
    dropped = DroppedLatents(model)
    torch.manual_seed(1)
    try:
        with row_compaction(None):  # every row computed: the hooks see [R, ...] tensors (rows b*K + k, K = 1)
            out = model(x, k=1)
    finally:
        dropped.remove()
    with torch.no_grad():
        rec, kl, seen = reference_bound(model, x, out, dropped)
    # every case of the algorithms occurred (AIR has no propagation, so no cap either)
    cases = ("chain_stopped", "capped", "disappeared", "survived", "later_discovery") if name == "mlp-sqair" else ()
    assert seen["chain_stopped"] and all(seen[c] for c in cases), seen
    torch.testing.assert_close(out.rec, rec, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.kl, kl, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.iwae, rec - kl, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
def test_vrnn_bound_equals_an_independent_recomputation(encoder):
    """p(z_t | h_{t-1}), q(z_t | x_t, h_{t-1}) and p(x_t | z_t, h_{t-1}) of Chung et al. (2015) at the returned
    z_t (``slot_features``), with the model's networks re-run on them."""
    torch.manual_seed(0)
    extra = dict(conv_channels=4) if encoder == "conv" else {}
    model = build_model(f"{encoder}-vrnn", image_shape=(1, 16, 16), n_hidden=16, n_latent=6, **extra)
    with torch.no_grad():
        model.mean_image.fill_(0.3)
    x = torch.rand(3, 2, 1, 16, 16)
    torch.manual_seed(1)
    out = model(x, k=1)
    cfg = model.cfg
    rec, kl = torch.zeros(2), torch.zeros(2)
    with torch.no_grad():
        h = model.h0.expand(2, -1)
        for t in range(3):
            z = out.slot_features[t, :, 0, 0]  # [B, Z]
            feat = model.phi_x(x[t])
            p_mu, p_raw = model.prior(h).chunk(2, -1)
            q_mu, q_raw = model.posterior(torch.cat([feat, h], -1)).chunk(2, -1)
            prior = Independent(Normal(p_mu, softplus_std(p_raw, cfg.min_std)), 1)
            posterior = Independent(Normal(q_mu, softplus_std(q_raw, cfg.min_std)), 1)
            fz = model.phi_z(z)
            mean = model.decoder(torch.cat([fz, h], -1)) + model.mean_image
            rec += Independent(Normal(mean, cfg.output_std), 3).log_prob(x[t])
            kl += posterior.log_prob(z) - prior.log_prob(z)
            h = model.rnn(torch.cat([feat, fz], -1), h)
    assert (z != q_mu).all()  # sampled, not the posterior means
    torch.testing.assert_close(out.rec, rec, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.kl, kl, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.iwae, rec - kl, rtol=1e-5, atol=1e-3)


# a tiny grid-discovery SQAIR (model.grid): 4 x 4 cells of 6 px, presences likely enough that more cells are on than
# there are free slots (the cap), and wide proposals, so that propagated objects reject some of them
GRID = dict(discovery="grid", grid_size=4, conv_channels=4, disc_step_bias=-0.5, disc_where_bias=(-0.5, -0.5, 0, 0))


class GridCells:
    """Records, per frame, the cells that grid discovery turned on (``[R, M]``) and the grid where (sx, sy, ox, oy)
    of its slots (``[R, N, 4]``): what the model passes to its prior's ``log_prob`` and does not return."""

    def __init__(self, model):
        self.prior, self.original = model.discovery.prior, model.discovery.prior.log_prob
        self.cells, self.raw = [], []

        def log_prob(pres_cells, raw, *rest):
            self.cells.append(pres_cells.detach().clone())
            self.raw.append(raw.detach().clone())
            return self.original(pres_cells, raw, *rest)

        self.prior.log_prob = log_prob

    def remove(self):
        del self.prior.log_prob  # back to the class's method


def grid_where(raw, cell, G):
    """SQAIR where logits of a grid proposal: the centre is its cell's centre plus tanh(offset) cells."""
    col, row = cell % G, cell // G
    centre = (torch.tensor([col, row], dtype=torch.float32) + 0.5) / G + torch.tanh(raw[2:]) / G
    return torch.cat([raw[:2], torch.atanh((2 * centre - 1).clamp(-1 + 1e-4, 1 - 1e-4))])


def grid_discovery_terms(model, image, survivors, t_pos, found, cells_on, raw):
    """Grid discovery at one frame, densities from torch.distributions: ``(log q, log p, cases)`` of the objects
    ``found`` (``[(what, where)]`` in slot order) given the cells that were on (``cells_on [M]``) and their grid
    where (``raw [N, 4]``)."""
    cfg, disc = model.cfg, model.discovery
    N, G, M = cfg.max_objects, cfg.grid_size, cfg.grid_size**2
    free = N - len(survivors)
    feats = model.image_encoder(model.foreground(image)[None])[0]  # [M, 9]
    logit, loc, raw_std = feats[:, 0], feats[:, 1:5], feats[:, 5:]
    c = torch.tensor(math.log(cfg.max_scale / (1 - cfg.max_scale))) if cfg.max_scale < 1 else None
    loc = loc if c is None else torch.cat([c - F.softplus(c - loc[:, :2]), loc[:, 2:]], -1)
    std = F.softplus(raw_std + disc.std_offset) + cfg.min_std
    # SCALOR's rejection: a proposal (at its mean box) mostly, or at its centre, under the propagated objects' render
    rejected = torch.zeros(M, dtype=torch.bool)
    if survivors:
        hw = cfg.image_shape[1:]
        cover = sum(box_coverage(where, hw, cfg.glimpse_size) for _, where in survivors).clamp(max=1)[None]
        boxes = where_to_box(torch.stack([grid_where(loc[m], m, G) for m in range(M)]))[None]
        centres = torch.cat([boxes[..., :2], torch.zeros_like(boxes[..., 2:])], -1)
        rejected = (covered_fraction(cover, boxes)[0] > cfg.grid_reject_overlap) | (
            covered_fraction(cover, centres)[0] > 0.5
        )
    q_logit = torch.where(rejected, torch.tensor(-cfg.mask_logit), logit + disc.presence_offset)
    # presences in order of decreasing logit, each sampled while fewer than `free` earlier cells are on
    log_q, on_before, picked = torch.zeros(()), 0, []
    for m in torch.argsort(q_logit, descending=True).tolist():
        if on_before >= free:
            assert cells_on[m] == 0, "a cell past the free slots is never on"
            continue
        log_q = log_q + Bernoulli(logits=q_logit[m]).log_prob(cells_on[m])
        if cells_on[m]:
            assert not rejected[m], "a rejected cell is never on"
            picked.append(m)
            on_before += 1
    assert len(picked) == len(found)
    # the prior: a Bernoulli on every cell, then where and what of the present slots
    prior = disc.prior
    log_p = Independent(Bernoulli(logits=prior.pres_logit + t_pos * prior.pres_logit_t), 1).log_prob(cells_on)
    p_where = Independent(Normal(prior.where_mu, F.softplus(prior.where_raw_std) + cfg.min_std), 1)
    for j, (m, (what, where)) in enumerate(zip(picked, found)):
        torch.testing.assert_close(where, grid_where(raw[j], m, G), rtol=1e-4, atol=1e-4)
        q_what = Independent(Normal(*model.glimpse_encoder(glimpse(cfg, image, where))), 1)
        log_q = log_q + Independent(Normal(loc[m], std[m]), 1).log_prob(raw[j]) + q_what.log_prob(what)
        log_p = log_p + p_where.log_prob(raw[j]) + Independent(Normal(torch.zeros_like(what), 1.0), 1).log_prob(what)
    cases = dict(rejected=int(rejected.sum()), capped=int(on_before == free and len(picked) < M))
    return log_q, log_p, cases


def test_grid_sqair_bound_equals_an_independent_recomputation(tiny_sqair):
    model = tiny_sqair("mlp-sqair", prop_step_bias=0.0, **GRID)
    with torch.no_grad():  # a background, a presence offset and learned-looking prior logits, so all enter the bound
        model.mean_image.copy_(0.2 * torch.rand(1, 24, 24))
        model.discovery.presence_offset.fill_(0.3)
        model.discovery.prior.pres_logit.normal_(-2.0, 1.0)
        model.discovery.prior.pres_logit_t.fill_(-0.7)
    x = torch.rand(4, 6, 1, 24, 24)
    dropped, cells = DroppedLatents(model), GridCells(model)
    torch.manual_seed(1)
    try:
        with row_compaction(None):
            out = model(x, k=1)
    finally:
        dropped.remove()
        cells.remove()
    T, B = x.shape[:2]
    N, z = model.cfg.max_objects, out.latents
    seen = dict(disappeared=0, survived=0, later_discovery=0, rejected=0, capped=0)
    rec, kl = torch.zeros(B), torch.zeros(B)
    with torch.no_grad():
        for b in range(B):
            hidden, next_id = {}, 0
            for t in range(T):
                image = x[t, b]
                what_t, where_t, pres_t, id_t = (a[t, b, 0] for a in z)
                prev = [n for n in range(N) if z.pres[t - 1, b, 0, n] > 0] if t > 0 else []
                log_q, log_p, survivors, _ = propagate_frame(model, x, z, t, b, prev, hidden, dropped, seen)
                n_prop = len(survivors)
                n_disc = int(pres_t.sum()) - n_prop
                assert id_t[n_prop : n_prop + n_disc].tolist() == list(range(next_id, next_id + n_disc))
                found = [(what_t[n], where_t[n]) for n in range(n_prop, n_prop + n_disc)]
                lq, lp, cases = grid_discovery_terms(
                    model, image, survivors, float(t > 0), found, cells.cells[t][b], cells.raw[t][b]
                )
                log_q, log_p = log_q + lq, log_p + lp
                seen["rejected"] += cases["rejected"]
                seen["capped"] += cases["capped"]
                seen["later_discovery"] += t > 0 and n_disc > 0
                for n in range(n_prop, n_prop + n_disc):
                    hidden[int(id_t[n])] = (model.propagation.h_temporal0, model.propagation.prior.h0)
                next_id += n_disc
                canvas = render(model, what_t, where_t, pres_t)
                torch.testing.assert_close(canvas, out.canvas[t, b, 0], rtol=1e-4, atol=1e-5)
                rec[b] += Independent(Normal(canvas, model.cfg.output_std), 3).log_prob(image)
                kl[b] += log_q - log_p
    assert all(seen.values()), seen  # every case of grid discovery and propagation occurred
    torch.testing.assert_close(out.rec, rec, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.kl, kl, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.iwae, rec - kl, rtol=1e-5, atol=1e-3)
