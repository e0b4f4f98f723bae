"""Every registered network through forward, backward and a no-NaN check at two input sizes
(timm style), plus the architectural facts the paper and the notes fix."""

from __future__ import annotations

import pytest
import torch

from distpaint.errors import ConfigError
from distpaint.models import create_model, get_entry, list_models, model_config
from distpaint.models.layers import count_parameters
from distpaint.models.local_disc import window_starts

torch.set_num_threads(1)


def _sizes(model) -> list[tuple[int, int]]:
    m = getattr(model, "size_multiple", 1)
    base = max(getattr(model, "min_size", 1), 32)
    base = -(-base // m) * m
    return [(base, base), (base + m * max(1, 16 // m), base + 2 * m * max(1, 16 // m))]  # square, non-square


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_no_nan(name):
    torch.manual_seed(0)
    model = create_model(name)
    role = get_entry(name).role
    for h, w in _sizes(model):
        x = (torch.rand(2, 1, h, w) > 0.8).float().requires_grad_(True)
        out = model(x, (torch.rand(2, 1, h, w) > 0.8).float()) if role == "global_disc" else model(x)
        if role == "generator":
            assert out.shape == (2, 2, h, w)
        else:
            assert out.shape[0] == 2
        assert torch.isfinite(out).all()
        model.zero_grad()
        out.float().square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_paper_sizes():
    # notes: G ~6 M (ours 5.5 M), D_L ~2.8 M parameters
    assert 5.0e6 < count_parameters(create_model("unet_paper")) < 6.5e6
    assert 2.6e6 < count_parameters(create_model("patchgan_paper")) < 3.0e6
    assert count_parameters(create_model("unet_small")) < count_parameters(create_model("unet_paper")) / 3


def test_generator_probabilities_and_size_check():
    g = create_model("unet_tiny").eval()
    x = torch.zeros(1, 1, 48, 64)
    p = g.predict_proba(x)
    assert p.shape == (1, 1, 48, 64) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        g(torch.zeros(1, 1, 40, 64))


def test_local_disc_scores_sub_patches():
    d = create_model("patchgan_paper").eval()
    assert d(torch.zeros(1, 1, 128, 128)).shape == (1, 1)  # one 128x128 window
    assert d(torch.zeros(3, 1, 256, 256)).shape == (3, 9)  # stride 64: 3 x 3 windows
    assert window_starts(300, 128, 64) == [0, 64, 128, 172]  # last window flush with the border
    # a window's score depends only on its own pixels
    x = torch.zeros(1, 1, 256, 256)
    y = x.clone()
    y[..., 200:, 200:] = 1
    with torch.no_grad():
        sx, sy = d(x), d(y)
    assert torch.equal(sx[0, 0], sy[0, 0]) and not torch.equal(sx[0, -1], sy[0, -1])


def test_paper_faithful_local_disc_scores_four_side_by_side_windows():
    """The paper's D_L (section IV-C) scores a 256-px patch as four 128-px windows; the
    paper_faithful recipe's D_L must do the same (stride 128), not the default nine overlapping."""
    from distpaint.train.config import load_config, packaged_config

    cfg = load_config(packaged_config("paper_faithful"))
    d = create_model(cfg.model.local_disc, "local_disc", **cfg.model.local_disc_args).eval()
    p = cfg.data.patch_size
    assert p == 256 and d.windows(torch.zeros(2, 1, p, p)).shape == (2 * 4, 1, 128, 128)
    # window k is quadrant k (row-major): a stroke in one quadrant changes only that score
    x = torch.zeros(4, 1, p, p)
    for k, (i, j) in enumerate([(0, 0), (0, 128), (128, 0), (128, 128)]):
        x[k, :, i + 40:i + 90, j + 60] = 1
    with torch.no_grad():
        scores, empty = d(x), d(torch.zeros(1, 1, p, p))
    assert scores.shape == (4, 4)
    changed = ~torch.isclose(scores, empty.expand(4, 4))
    assert torch.equal(changed, torch.eye(4, dtype=torch.bool))


@pytest.mark.parametrize("similarity", ["dot", "scaled_dot", "weighted", "l1"])
@pytest.mark.parametrize("embed_norm", ["none", "layer"])
def test_global_disc_any_size_and_consistent_branches(similarity, embed_norm):
    torch.manual_seed(0)
    d = create_model("siamese_tiny", similarity=similarity, embed_norm=embed_norm).eval()
    a = (torch.rand(1, 1, 80, 48) > 0.9).float()
    b = (torch.rand(1, 1, 80, 48) > 0.9).float()
    s = d(a, b)
    assert s.shape == (1,) and 0 < s.item() < 1
    # the pair is embedded in one forward; the same as embedding each branch alone (no batch norm)
    product = d.embed(a) * d.embed(b)
    head = (lambda v: v @ d.head.weight[0] + d.head.bias) if d.head is not None else None
    alone = {"dot": lambda: product.sum(1), "scaled_dot": lambda: product.sum(1) / 16**0.5,
             "weighted": lambda: head(product),
             "l1": lambda: head((d.embed(a) - d.embed(b)).abs())}[similarity]()
    assert torch.allclose(d.logits(a, b), alone, atol=1e-5)
    if similarity == "l1":  # identical inputs: zero distance, the head's bias alone
        assert torch.allclose(d.logits(a, a), d.head.bias, atol=1e-6)
    assert torch.allclose(d.logits(a, b), d.logits(b, a), atol=1e-6)  # a similarity: symmetric
    big = (torch.rand(1, 1, 300, 200) > 0.9).float()
    assert d(big, big).shape == (1,)


def test_injectable_norm_and_errors():
    g = create_model("unet_tiny", norm="instance")
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in create_model("patchgan_paper").modules())
    with pytest.raises(ConfigError, match="BatchNorm"):
        model_config("siamese_paper", norm="batch")
    for option, bad in (("similarity", "cosine"), ("pool", "median"), ("embed_norm", "batch")):
        with pytest.raises(ConfigError, match=f"global_disc.{option}"):
            model_config("siamese_paper", **{option: bad})
    with pytest.raises(ConfigError, match="unknown option"):
        create_model("unet_tiny", depth=3)
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("resnet50")
    with pytest.raises(ConfigError, match="is a local_disc"):
        create_model("patchgan_tiny", "generator")
