"""Losses of the method (paper section IV): CE (eq. 4), masked CE (eq. 11), LSGAN for D_L
(eq. 5, 6), the Siamese cross-entropy of D_G (eq. 8) and the REINFORCE term (eq. 9); and,
not in the paper, the soft-clDice loss of Shit et al. (CVPR 2021), an option (`loss.lambda_cldice`).

Shapes: generator logits `(B, 2, H, W)` (channel 1 = foreground), masks `(B, 1, H, W)` float
in {0, 1}. All losses are *minimised*; the policy-gradient loss is `-(r - b) * log pi(a)`, so
a gradient step raises the log-probability of samples whose reward beats the baseline.

    from distpaint.train.losses import ce_loss, policy_gradient_loss
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ce_loss",
    "masked_ce_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "siamese_d_loss",
    "foreground_prob",
    "fake_for_local",
    "action_log_prob",
    "policy_gradient_loss",
    "soft_skeleton",
    "soft_cldice_loss",
]


def _target(y: torch.Tensor) -> torch.Tensor:
    return y[:, 0].round().long()  # (B, H, W) class indices


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 4: pixel-mean cross-entropy between G's softmax and the complete patches y."""
    return F.cross_entropy(logits, _target(y))


def masked_ce_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 11: cross-entropy restricted to `mask` (the artificial gaps), mean over its pixels.
    Zero (with a graph) when the mask is empty."""
    per_pixel = F.cross_entropy(logits, _target(y), reduction="none")  # (B, H, W)
    m = mask[:, 0]
    return (per_pixel * m).sum() / m.sum().clamp_min(1.0)


def lsgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 5: E[(1 - D_L(y))^2] + E[D_L(G(x))^2], means over patches and sub-patch windows."""
    return (1 - real_scores).pow(2).mean() + fake_scores.pow(2).mean()


def lsgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 6: E[(1 - D_L(G(x)))^2]."""
    return (1 - fake_scores).pow(2).mean()


def siamese_d_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 8 as a minimised binary cross-entropy on D_G's logits f(a).f(b): complete pairs
    (y1, y2) of different masks labelled 1, (G(x1), y1) labelled 0."""
    pos = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits))
    neg = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))
    return pos + neg


def foreground_prob(logits: torch.Tensor) -> torch.Tensor:
    """Foreground probability `(B, 1, H, W)` of logits `(B, 2, H, W)`."""
    return torch.softmax(logits, dim=1)[:, 1:2]


def fake_for_local(prob: torch.Tensor, mode: str, threshold: float = 0.5) -> torch.Tensor:
    """What D_L sees of G's output: `probs` (differentiable probabilities) or `ste` (binary
    forward, straight-through gradient: d out / d prob = 1), so D_L's loss reaches G."""
    if mode == "probs":
        return prob
    if mode == "ste":
        hard = (prob > threshold).to(prob.dtype)
        return prob + (hard - prob).detach()
    raise ValueError(f"unknown local_fake mode {mode!r}")


def action_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a) per pixel `(B, 1, H, W)` of binary actions `(B, 1, H, W)` under softmax(logits)."""
    log_p = torch.log_softmax(logits, dim=1)  # (B, 2, H, W)
    return log_p.gather(1, actions.round().long())


def policy_gradient_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    advantage: torch.Tensor | float,
    region: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """REINFORCE (eq. 9): `-mean_i[(r - b)_i * sum_pixels log pi(a_i)]`, element-wise.

    `advantage` is r - b, a scalar or `(B,)` (no gradient flows through it). `region`
    `(B, 1, H, W)` selects the pixels whose actions count (e.g. input == 0); `reduction="mean"`
    divides each patch's sum by its pixel count H*W, `"sum"` keeps the paper's sum. Works for
    any H, W (no matrix product: the authors' bmm scaled by the width and needed squares).
    """
    logp = action_log_prob(logits, actions)  # (B, 1, H, W)
    if region is not None:
        logp = logp * region
    per_patch = logp.flatten(1).sum(dim=1)  # (B,)
    if reduction == "mean":
        per_patch = per_patch / logp[0].numel()
    elif reduction != "sum":
        raise ValueError(f"unknown reduction {reduction!r}")
    adv = torch.as_tensor(advantage, dtype=logits.dtype, device=logits.device).detach()
    return -(adv * per_patch).mean()


def _soft_erode(img: torch.Tensor) -> torch.Tensor:
    # min over a plus-shaped neighbourhood, as in the soft-clDice reference code
    return torch.minimum(-F.max_pool2d(-img, (3, 1), 1, (1, 0)), -F.max_pool2d(-img, (1, 3), 1, (0, 1)))


def _soft_open(img: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(_soft_erode(img), 3, 1, 1)


def soft_skeleton(img: torch.Tensor, iterations: int) -> torch.Tensor:
    """Differentiable skeleton of probabilities `(B, 1, H, W)` (Shit et al. 2021, algorithm 1):
    the union over `iterations` erosions of what each opening removes. Structures up to about
    2 x `iterations` px wide reduce to their centrelines; wider ones keep a thick core."""
    skeleton = F.relu(img - _soft_open(img))
    for _ in range(iterations):
        img = _soft_erode(img)
        delta = F.relu(img - _soft_open(img))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def soft_cldice_loss(prob: torch.Tensor, y: torch.Tensor, iterations: int, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft clDice of foreground probabilities `prob` against the complete masks `y` (both
    `(B, 1, H, W)`), over the whole batch: the harmonic mean of topology precision (share of
    the predicted soft skeleton inside `y`) and sensitivity (share of `y`'s skeleton inside
    `prob`). Zero for a perfect prediction; a missed bridge costs sensitivity in proportion
    to its centreline length, however thin."""
    skel_pred = soft_skeleton(prob, iterations)
    with torch.no_grad():  # the target's skeleton: no gradient needed
        skel_true = soft_skeleton(y, iterations)
    precision = ((skel_pred * y).sum() + smooth) / (skel_pred.sum() + smooth)
    sensitivity = ((skel_true * prob).sum() + smooth) / (skel_true.sum() + smooth)
    return 1 - 2 * precision * sensitivity / (precision + sensitivity)
