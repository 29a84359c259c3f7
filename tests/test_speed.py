"""Speed devices (sqair_world/speed/) must not change the maths: compiled = eager, bf16 matmuls ~ float32, row
subsets = every row."""

import functools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sqair_world.envs.slots import SlotEncoder
from sqair_world.model.types import Slots
from sqair_world.speed import accelerate, flush_denormals, mixed_precision, reduced_precision_matmul, row_compaction
from sqair_world.utils import frames_to_input

# on the shared tiny SQAIR (conftest.py): two slots keep the compiled graphs (and the compile time of these tests)
# small; most first frames find both objects
TWO_SLOTS = dict(max_objects=2, disc_step_bias=3.0)


def _pair(tiny_sqair):
    eager, fast = tiny_sqair(**TWO_SLOTS), tiny_sqair(**TWO_SLOTS)
    fast.load_state_dict(eager.state_dict())
    return eager, fast


def test_flush_denormals_zeroes_subnormal_products():
    assert flush_denormals()
    tiny = torch.tensor([1e-30]) * torch.tensor([1e-10])  # 1e-40 is subnormal in float32
    assert tiny.item() == 0.0


def test_row_compaction_equals_computing_every_row(tiny_sqair):
    """Eager, a slot step runs only on the rows where that slot exists (nn.RowSubset), when few enough of them do.
    Computing every row, as a compiled step does, gives the same samples of the present objects, bound and
    gradients, with more FLOPs; so does the default mix of gathered and dense steps."""
    model = tiny_sqair(disc_step_bias=0.0, exit_margin=0.05)
    x = torch.rand(4, 3, 1, 24, 24)
    runs = []
    # gather the active rows of every step (however small and full), of those with at most 80% active, then never
    for setting in ((0, 1.0), (0, 0.8), (None,)):
        torch.manual_seed(1)
        with row_compaction(*setting), FlopCounterMode(display=False) as flops:
            out = model(x, k=4)
            model.zero_grad()
            out.loss.backward()
        runs.append((out, {n: p.grad.clone() for n, p in model.named_parameters()}, flops.get_total_flops()))
    b, gb, fb = runs[-1]
    pres = b.latents.pres
    assert 0 < pres.mean() < 1 and ((pres.sum(-1) > 0) & (pres.sum(-1) < 3)).any()  # rows with some slots absent
    assert runs[0][2] < runs[1][2] < fb and runs[0][2] < 0.9 * fb  # the absent slots were not computed
    for a, ga, _ in runs[:-1]:
        assert torch.equal(pres, a.latents.pres) and torch.equal(a.latents.id, b.latents.id)
        for name in ("where", "what"):  # absent slots hold fills or unused values
            za, zb = (getattr(o.latents, name) * o.latents.pres.unsqueeze(-1) for o in (a, b))
            assert torch.allclose(za, zb, atol=1e-5), name
        assert torch.allclose(a.iwae, b.iwae, rtol=1e-5) and torch.allclose(a.loss, b.loss, rtol=1e-5)
        for name in ga:
            assert torch.allclose(ga[name], gb[name], rtol=1e-4, atol=1e-5), name


def test_render_of_the_present_objects_equals_rendering_every_slot(tiny_sqair):
    """Gathered, the renderer writes an image per present object and adds it to its row (ObjectSubset.sum_slots);
    dense, one product over every slot. Same canvas, also when no object is present at all."""
    model = tiny_sqair(**TWO_SLOTS)
    what, where = torch.randn(4, 2, 6), torch.randn(4, 2, 4)
    for pres in (torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), torch.zeros(4, 2)):
        z = Slots(what, where, pres, torch.full((4, 2), -1))
        canvases = []
        for setting in ((0, 1.0), (None,)):  # gather every step with an absent object, then never
            with row_compaction(*setting):
                canvases.append(model.render(z))
        assert torch.allclose(*canvases, atol=1e-6)
    assert canvases[0].shape == (4, 1, 24, 24)


def test_compiled_training_step_equals_eager(monkeypatch, tiny_sqair):
    """Training with ``accelerate``: the compiled steps' bound, counts and gradients are the eager ones.

    The graphs are compiled with ``aot_eager``: dynamo's capture and AOT autograd's joint forward-backward graph, the
    graphs inductor receives, run with eager kernels. Inductor's code generation is compared by the two tests below;
    generating and compiling C++ kernels for the backward graphs as well would take minutes more."""
    eager, fast = _pair(tiny_sqair)
    with monkeypatch.context() as m:
        m.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
        accelerate(fast)
    x = torch.rand(2, 2, 1, 24, 24)
    outs = []
    for model in (eager, fast):
        out = model(x, k=3, sample=False)
        out.loss.backward()
        outs.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (a, ga), (b, gb) = outs
    assert torch.allclose(a.iwae, b.iwae, rtol=1e-4, atol=1e-2)
    assert torch.equal(a.count, b.count) and a.count.sum() > 0
    assert ga.keys() == gb.keys()
    for name in ga:
        assert torch.allclose(ga[name], gb[name], rtol=1e-3, atol=1e-3), name


def test_compiled_validation_step_equals_eager(tiny_sqair):
    """Validation with ``accelerate`` (inductor, no gradients): the compiled step of a tracking frame, whose discovery
    is a ``torch.cond`` (speed.compile.skip_full_discovery), gives the eager step's latents and bound on both sides of
    the branch, every slot taken by propagation (no discovery step) and a slot free, with one graph."""
    eager, fast = _pair(tiny_sqair)
    accelerate(fast)
    x, K, N = torch.rand(2, 2, 1, 24, 24), 3, TWO_SLOTS["max_objects"]
    with torch.no_grad():
        full = eager.step(eager.initial_state(2 * K), x[0], eager.encode_images(x[0]), sample=False, first=True).state
        assert (full.z.pres == 1).all()
        pres = torch.cat([full.z.pres[:, :-1], torch.zeros(2 * K, 1)], 1)  # as if the last object had left
        free = full._replace(z=full.z._replace(pres=pres, id=torch.where(pres > 0, full.z.id, -1)))
        for state, every_slot_taken in ((full, True), (free, False)):
            a, b = (model.step(state, x[1], model.encode_images(x[1]), sample=False) for model in (eager, fast))
            assert bool((a.num_prop == N).all()) == every_slot_taken and (a.num_disc.sum() > 0) != every_slot_taken
            assert torch.equal(a.state.z.pres, b.state.z.pres) and torch.equal(a.state.z.id, b.state.z.id)
            p = a.state.z.pres.unsqueeze(-1)
            for name in ("what", "where"):
                assert torch.allclose(getattr(a.state.z, name) * p, getattr(b.state.z, name) * p, atol=1e-4), name
            for name in ("log_lik", "log_p", "log_q"):
                assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-2), name


def test_compiled_tracking_equals_eager(tiny_sqair):
    """The env wrappers' compiled step (cpp_wrapper; dynamo's guards skipped once both graphs exist) tracks as the
    eager model does: on both sides of the discovery branch (speed.compile.skip_full_discovery) and across a reset."""
    eager, fast = _pair(tiny_sqair)
    enc = SlotEncoder(fast, 1, device="cpu", compile=True)
    frames = torch.randint(0, 256, (6, 1, 24, 24, 1), dtype=torch.uint8).numpy()
    N = TWO_SLOTS["max_objects"]

    def free_last_slot(state):  # as if that object had left: the next frame runs discovery again
        return state._replace(z=state.z._replace(pres=torch.cat([state.z.pres[:, :-1], torch.zeros(1, 1)], 1)))

    state, all_taken = None, []
    for t in range(6):
        if t == 4:
            enc.reset()
            state = None
        if t == 5:  # steps 2-4 ran without guard evaluation; a state made outside inference mode fits no
            assert (
                enc.online_step.skipping
            )  # compiled graph: the encoder falls back to evaluating guards (and recompiles)
            enc.state = enc.state._replace(h_temporal=enc.state.h_temporal.clone())
        with torch.inference_mode():
            enc.encode(frames[t])
            out = eager.online_step(state, frames_to_input(frames[t], channels_last=True))
        state, a, b = out.state, out.state.z, enc.state.z
        assert torch.equal(a.pres, b.pres) and torch.equal(a.id, b.id), t
        assert torch.allclose(a.where * a.pres.unsqueeze(-1), b.where * b.pres.unsqueeze(-1), atol=1e-4), t
        assert torch.allclose(
            out.log_lik + out.log_p - out.log_q,
            enc.last.log_lik + enc.last.log_p - enc.last.log_q,
            rtol=1e-4,
            atol=1e-2,
        ), t
        if t not in (0, 4):
            all_taken.append(bool((out.num_prop == N).all()))
        if t == 1:
            with torch.inference_mode():
                state, enc.state = free_last_slot(state), free_last_slot(enc.state)
    assert not enc.online_step.enabled
    assert all_taken[:2] == [True, False]  # both sides of the branch were compared


def test_reduced_precision_matmul_keeps_the_bound(tiny_sqair):
    eager, _ = _pair(tiny_sqair)
    x = torch.rand(3, 4, 1, 24, 24)
    bounds = []
    for enable in (False, True):
        reduced_precision_matmul(enable)
        torch.manual_seed(1)
        with torch.no_grad():
            bounds.append(eager(x, k=3).iwae)
    reduced_precision_matmul(False)
    # bfloat16 products keep ~3 significant digits; the bound of a 3-frame sequence moves by well under 0.1%
    assert torch.allclose(bounds[0], bounds[1], rtol=1e-3)


def test_autocast_keeps_samples_and_bound_in_float32(tiny_sqair):
    # a presence bias of 0: rows differ in their objects, so slot steps run on row subsets
    eager = tiny_sqair(disc_step_bias=0.0)
    x = torch.rand(3, 4, 1, 24, 24)
    outs = []
    for enable in (False, True):
        torch.manual_seed(1)
        # gather row subsets however small the batch and few the inactive rows
        with row_compaction(0, 1.0), mixed_precision("cpu", enable):
            out = eager(x, k=3)
        out.loss.backward()
        missing = [n for n, p in eager.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing and all(torch.isfinite(p.grad).all() for p in eager.parameters() if p.grad is not None)
        eager.zero_grad(set_to_none=True)
        outs.append(out)
    fp32, bf16 = outs
    assert 0 < fp32.latents.pres.mean() < 1
    for t in (bf16.iwae, bf16.canvas, bf16.latents.where, bf16.latents.what, bf16.latents.pres):
        assert t.dtype == torch.float32
    assert torch.allclose(fp32.iwae, bf16.iwae, rtol=1e-3)


def test_row_compaction_is_per_context_and_off_the_cpu():
    """The policy is restored when its block ends (also on an error) and never gathers off the CPU."""
    from sqair_world.model.subsets import RowSubset, current_row_compaction

    default = current_row_compaction()
    active = torch.tensor([True, False] * 100)
    assert RowSubset(active).idx is not None  # 200 rows, half active: gathered by default
    try:
        with row_compaction(None):
            assert RowSubset(active).idx is None
            raise KeyError
    except KeyError:
        pass
    assert current_row_compaction() == default
    meta = RowSubset(active.to("meta"))  # any non-CPU device: no gathering, no device sync
    assert meta.idx is None and not meta.empty
    with pytest.raises(ValueError, match="fraction"):
        with row_compaction(128, 1.5):
            pass
