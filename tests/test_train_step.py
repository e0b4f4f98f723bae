"""Algorithm 1's step: losses, the policy-gradient sign, re-composition and the variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distpaint.train import losses
from distpaint.train.config import config_from_dict
from distpaint.train.data import LocalData
from distpaint.train.recompose import InMemoryRecomposer, Recomposer, compose, view_window
from distpaint.train.step import StepState, build_models, build_optimizers, train_step

torch.set_num_threads(1)

TINY = {
    "model": {"generator": "unet_tiny", "local_disc": "patchgan_tiny", "global_disc": "siamese_tiny"},
    "data": {"mask_size": 128, "n_masks": 3, "patch_size": 32, "batch_size": 4},
    "loss": {"global_margin": 16, "global_max_size": 96},
}


def _setup(variant="gan-gl", model=None, **loss):
    cfg = config_from_dict({**TINY, "variant": variant, "model": {**TINY["model"], **(model or {})},
                            "loss": {**TINY["loss"], **loss}})
    torch.manual_seed(0)
    models = build_models(cfg)
    opts = build_optimizers(models, cfg.optim)
    data = LocalData(cfg.data, 0, cfg.variant)
    rec = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
    for name, truth in data.masks.items():
        rec.add_mask(name, truth)
    return cfg, models, opts, data, rec, torch.Generator().manual_seed(1), StepState()


def test_losses_go_down():
    cfg, models, opts, data, rec, sampler, state = _setup()
    hist = [train_step(models, opts, data.batch(s), rec, cfg, s, sampler, state) for s in range(200)]

    def mean(key, part):
        return np.mean([h[key] for h in part])

    first, last = hist[:25], hist[-25:]
    assert mean("ce", last) < 0.6 * mean("ce", first)
    assert mean("loss_g", last) < 0.6 * mean("loss_g", first)
    assert mean("loss_dl", last) < mean("loss_dl", first)
    assert all(np.isfinite(v) for h in hist for v in h.values())


def test_policy_gradient_sign_hand_checked():
    # p = 0.5 everywhere; actions a; d loss / d logit_fg = -(r - b) * (a - p) / (H * W)
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    actions = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    loss = losses.policy_gradient_loss(logits, actions, advantage=1.0)
    loss.backward()
    assert loss.item() == pytest.approx(-np.log(0.5))  # -(1) * mean log 0.5
    expected = -(actions[0, 0] - 0.5) / 4
    assert torch.allclose(logits.grad[0, 1], expected)
    assert torch.allclose(logits.grad[0, 0], -expected)


@pytest.mark.parametrize("advantage", [0.7, -0.7])
def test_policy_gradient_step_raises_log_prob_of_good_samples(advantage):
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 6, requires_grad=True)  # non-square patches work
    actions = torch.bernoulli(torch.full((2, 1, 8, 6), 0.5))
    before = losses.action_log_prob(logits, actions).sum().item()
    losses.policy_gradient_loss(logits, actions, advantage).backward()
    with torch.no_grad():
        logits -= 10.0 * logits.grad
    after = losses.action_log_prob(logits, actions).sum().item()
    assert (after > before) == (advantage > 0)


def test_policy_gradient_region_and_reduction():
    logits = torch.zeros(1, 2, 4, 4, requires_grad=True)
    actions = torch.ones(1, 1, 4, 4)
    region = torch.zeros(1, 1, 4, 4)
    region[..., 0, 0] = 1
    losses.policy_gradient_loss(logits, actions, 1.0, region, reduction="sum").backward()
    grad = logits.grad[0, 1]
    assert grad[0, 0].item() == pytest.approx(-0.5) and grad.abs().sum().item() == pytest.approx(0.5)


def test_masked_ce_only_inside_mask_and_ste_passes_gradient():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    y = torch.ones(1, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    losses.masked_ce_loss(logits, y, mask).backward()
    assert logits.grad[0, :, 0, 0].abs().sum() > 0 and logits.grad[0, :, 1:, :].abs().sum() == 0
    prob = torch.tensor([0.2, 0.7], requires_grad=True)
    out = losses.fake_for_local(prob, "ste")
    assert out.tolist() == [0.0, 1.0]
    out.sum().backward()
    assert prob.grad.tolist() == [1.0, 1.0]


def test_compose_pastes_exactly():
    background = np.zeros((10, 12), bool)
    patches = np.ones((2, 4, 4), bool)
    out = compose(background, patches, np.array([0, 8]), np.array([0, 10]))
    expected = np.zeros((10, 12), bool)
    expected[0:4, 0:4] = True
    expected[8:10, 10:12] = True  # clipped at the border
    assert np.array_equal(out, expected) and not background.any()
    assert view_window((100, 100), np.array([10, 40]), np.array([20, 20]), (8, 8), 5, 1000) == (5, 53, 15, 33)
    y0, y1, x0, x1 = view_window((100, 100), np.array([0, 90]), np.array([0, 90]), (10, 10), 0, 40)
    assert (y1 - y0, x1 - x0) == (40, 40)


def test_in_memory_recomposer_gathers_ranks():
    truth = np.zeros((64, 64), bool)
    truth[:, 30] = True
    rec = InMemoryRecomposer(max_size=64, margin=0)
    assert isinstance(rec, Recomposer)
    rec.add_mask("m", truth)
    rec.put("m", 3, np.ones((1, 16, 16), np.uint8), np.array([0]), np.array([0]), rank=0)
    rec.put("m", 3, np.zeros((1, 16, 16), np.uint8), np.array([16]), np.array([24]), rank=1)
    x_hat, y, origin = rec.global_view("m", 3)
    assert origin == (0, 0) and x_hat.shape == y.shape == (32, 40)
    assert x_hat[:16, :16].all() and not x_hat[16:32, 24:40].any() and x_hat[:16, 30].all()
    assert np.array_equal(y, truth[:32, :40])
    with pytest.raises(KeyError):
        rec.global_view("m", 4)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters, buffers (spectral norm's u/v) and gradients of `module`, cloned."""
    out = {k: v.detach().clone() for k, v in module.state_dict().items()}
    out.update({f"{k}.grad": p.grad.clone() for k, p in module.named_parameters() if p.grad is not None})
    return out


@pytest.mark.parametrize("baseline", ["none", "ema", "self_critical"])
def test_baselines_and_reward_leaves_dg_untouched(baseline):
    """D_G changes in a step only by its own update (eq. 8): scoring the rewards (its forwards
    on the composed views) and G's update leave its parameters, buffers and gradients as that
    update left them."""
    cfg, models, opts, data, rec, sampler, state = _setup(baseline=baseline)
    before = _state(models.d_global)
    after_update = {}
    step_dg = opts.d_global.step

    def step_and_snapshot(*args, **kwargs):
        out = step_dg(*args, **kwargs)
        after_update.update(_state(models.d_global))
        return out

    opts.d_global.step = step_and_snapshot
    m = train_step(models, opts, data.batch(0), rec, cfg, 0, sampler, state)
    assert 0 < m["reward"] < 1 and m["advantage"] == pytest.approx(m["reward"] - m["baseline"])
    if baseline == "none":
        assert m["baseline"] == 0
    if baseline == "self_critical":
        rec.global_view(data.batch(0).name, 0, tag="greedy")  # the thresholded output was composed
    assert after_update and any(not torch.equal(before[k], after_update[k]) for k in before)  # D_G trained
    end = _state(models.d_global)
    assert end.keys() == after_update.keys()
    assert all(torch.equal(end[k], after_update[k]) for k in end), \
        [k for k in end if not torch.equal(end[k], after_update[k])]


@pytest.mark.parametrize("term, weight, extra", [
    ("lsgan_g", "lambda_local", {}),
    # baseline none: with the moving average the first step's advantage is exactly 0
    ("pg", "lambda_global", {"baseline": "none"}),
])
def test_adversarial_terms_each_move_g(term, weight, extra):
    """With every other weight of G's objective 0, the LSGAN term (D_L, eq. 6) alone and the
    policy-gradient term (D_G, eq. 9) alone change G's weights in `train_step`; with its weight
    0 as well G does not move (Adam turns zero gradients into zero steps), so the change comes
    from that term and its weight scales it."""
    zero = {"lambda_ce": 0.0, "lambda_local": 0.0, "lambda_global": 0.0}

    def g_moves(loss: dict) -> bool:
        cfg, models, opts, data, rec, sampler, state = _setup(**extra, **loss)
        before = [p.detach().clone() for p in models.g.parameters()]
        m = train_step(models, opts, data.batch(0), rec, cfg, 0, sampler, state)
        assert m[term] != 0 and np.isfinite(m[term])
        return any(not torch.equal(a, b) for a, b in zip(before, models.g.parameters()))

    assert g_moves({**zero, weight: 1.0})
    assert not g_moves(zero)


def _spy_logits(models) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record every pair D_G scores (its update first, then the rewards)."""
    calls, original = [], models.d_global.logits

    def spy(a, b):
        calls.append((a.detach().clone(), b.detach().clone()))
        return original(a, b)

    models.d_global.logits = spy
    return calls


@pytest.mark.parametrize("positive", ["other", "self"])
def test_dg_positive_pairs(positive):
    cfg, models, opts, data, rec, sampler, state = _setup(dg_positive=positive)
    calls = _spy_logits(models)
    batch = data.batch(0)
    train_step(models, opts, batch, rec, cfg, 0, sampler, state)
    a, b = calls[0]  # D_G's update: positives, then negatives (G's output, its own y)
    m = batch.y.shape[0]
    assert torch.equal(a[:m], batch.y) and torch.equal(b[m:], batch.y)
    assert torch.equal(b[:m], batch.y if positive == "self" else batch.y_other)
    assert not torch.equal(batch.y, batch.y_other)


@pytest.mark.parametrize("baseline", ["none", "ema", "self_critical"])
def test_patch_reward_scope_scores_each_patch_in_place(baseline):
    cfg, models, opts, data, rec, sampler, state = _setup(reward_scope="patch", baseline=baseline)
    calls = _spy_logits(models)
    batch = data.batch(0)
    m = train_step(models, opts, batch, None, cfg, 0, sampler, state)  # no recomposer needed
    sampled, truth = calls[1]
    assert sampled.shape == batch.y.shape and torch.equal(truth, batch.y)  # patch against its own y
    assert torch.all(sampled >= batch.x)  # the output is input OR sample
    assert len(calls) == (3 if baseline == "self_critical" else 2)
    assert 0 < m["reward"] < 1 and m["advantage"] == pytest.approx(m["reward"] - m["baseline"], abs=1e-6)
    cfg, models, opts, data, rec, sampler, state = _setup()  # the paper's view reward needs one
    with pytest.raises(ValueError, match="needs a recomposer"):
        train_step(models, opts, data.batch(0), None, cfg, 0, sampler, state)


def test_variants_train_only_their_parts():
    cfg, models, opts, data, rec, sampler, state = _setup("unet")
    assert models.d_local is None and models.d_global is None
    m = train_step(models, opts, data.batch(0), None, cfg, 0, sampler, state)
    assert set(m) == {"ce", "loss_g"}
    cfg, models, opts, data, rec, sampler, state = _setup("gan-l")
    assert models.d_global is None and "lsgan_g" in train_step(models, opts, data.batch(0), None, cfg, 0, sampler, state)
    cfg, models, opts, data, rec, sampler, state = _setup("gan-gl-m")
    assert not data.batch(0).real and data.batch(1).real
    d_before = [p.clone() for p in models.d_local.parameters()]
    m = train_step(models, opts, data.batch(1), rec, cfg, 1, sampler, state)  # real: masked CE only
    assert set(m) == {"masked_ce", "loss_g"}
    assert all(torch.equal(a, b) for a, b in zip(d_before, models.d_local.parameters()))
    m = train_step(models, opts, data.batch(2), rec, cfg, 2, sampler, state)
    assert {"ce", "lsgan_g", "pg", "loss_dl", "loss_dg"} <= set(m)
    # unet-m (the ablation): GAN-GL-M's alternation without discriminators
    cfg, models, opts, data, rec, sampler, state = _setup("unet-m")
    assert models.d_local is None and models.d_global is None
    assert not data.batch(0).real and data.batch(1).real
    assert set(train_step(models, opts, data.batch(0), None, cfg, 0, sampler, state)) == {"ce", "loss_g"}
    assert set(train_step(models, opts, data.batch(1), None, cfg, 1, sampler, state)) == {"masked_ce", "loss_g"}


def test_gan_gl_trains_another_generator_architecture():
    """GAN-GL around the Sasaki CNN (an experiment the config allows): every loss is finite and
    G's weights move."""
    cfg, models, opts, data, rec, sampler, state = _setup(model={"generator": "cnn_tiny"})
    before = [p.clone() for p in models.g.parameters()]
    m = train_step(models, opts, data.batch(0), rec, cfg, 0, sampler, state)
    assert {"ce", "lsgan_g", "pg", "loss_dl", "loss_dg"} <= set(m)
    assert all(np.isfinite(v) for v in m.values() if isinstance(v, float))
    assert any(not torch.equal(a, b) for a, b in zip(before, models.g.parameters()))


def test_batches_are_deterministic_and_from_one_mask():
    cfg, *_ = _setup()
    a, b = LocalData(cfg.data, 0).batch(5), LocalData(cfg.data, 0).batch(5)
    assert torch.equal(a.x, b.x) and np.array_equal(a.ys, b.ys)
    assert a.x.shape == (4, 1, 32, 32) and (a.x <= a.y).all()  # gaps only remove foreground
    cells = {(int(y), int(x)) for y, x in zip(a.ys, a.xs)}
    assert len(cells) == 4  # non-overlapping


def _bar(width: int, size: int = 48) -> torch.Tensor:
    y = torch.zeros(1, 1, size, size)
    c = size // 2
    y[..., c - width // 2:c - width // 2 + width, 4:size - 4] = 1
    return y


def test_soft_skeleton_thins_a_bar_to_about_its_centreline():
    y = _bar(6)
    skeleton = losses.soft_skeleton(y, 4)
    assert skeleton.max() <= 1 and skeleton.min() >= 0
    assert skeleton.sum() < 0.45 * y.sum()  # far thinner than the 6-px bar
    assert (skeleton * (1 - y)).sum() == 0  # and inside it


def test_soft_cldice_charges_a_gap_by_centreline_and_its_gradient_closes_it():
    y = _bar(4)
    assert losses.soft_cldice_loss(y, y, 4).item() == pytest.approx(0.0, abs=1e-6)
    short, long = y.clone(), y.clone()
    short[..., 20:24], long[..., 12:36] = 0, 0
    l_short, l_long = (losses.soft_cldice_loss(p, y, 4).item() for p in (short, long))
    assert 0 < l_short < l_long
    # a uniform 0.3 everywhere: raising the probability on the bar's centreline lowers the
    # loss; nothing pushes the bar down
    p = torch.full_like(y, 0.3, requires_grad=True)
    losses.soft_cldice_loss(p, y, 4).backward()
    centreline = losses.soft_skeleton(y, 4) > 0.5
    assert (p.grad[centreline] < 0).all() and (p.grad[y > 0] <= 0).all()


def test_cldice_term_is_off_by_default_and_reported_when_on():
    cfg, models, opts, data, rec, sampler, state = _setup()
    assert cfg.loss.lambda_cldice == 0
    assert "soft_cldice" not in train_step(models, opts, data.batch(0), rec, cfg, 0, sampler, state)
    cfg, models, opts, data, rec, sampler, state = _setup(lambda_cldice=100.0, cldice_iterations=3)
    m = train_step(models, opts, data.batch(0), rec, cfg, 0, sampler, state)
    assert 0 <= m["soft_cldice"] <= 1
    ce_only = m["loss_g"] - 100.0 * m["soft_cldice"]
    assert ce_only == pytest.approx(cfg.loss.lambda_ce * m["ce"] + m["lsgan_g"] + m["pg"], rel=1e-4)
    with pytest.raises(Exception, match="cldice_iterations"):
        _setup(lambda_cldice=1.0, cldice_iterations=0)
