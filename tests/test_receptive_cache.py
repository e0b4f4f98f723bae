"""The receptive radius is measured once per network structure and remembered on disk: a second
load gets the same radius without measuring, other structures get their own, and a cache that
cannot be written never stops a repair."""

from __future__ import annotations

import json

import torch

from distpaint.infer import predictor
from distpaint.infer.predictor import RADIUS_CACHE_VARIABLE, cached_receptive_radius, receptive_radius


def _net(kernel: int, dilation: int = 1) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, kernel, padding="same", dilation=dilation),
                               torch.nn.ReLU(), torch.nn.Conv2d(2, 1, 3, padding=1))


def test_a_structure_is_measured_once_and_others_get_their_own(tmp_path, monkeypatch):
    cache = tmp_path / "radii.json"
    monkeypatch.setenv(RADIUS_CACHE_VARIABLE, str(cache))
    measured = []
    monkeypatch.setattr(predictor, "receptive_radius",
                        lambda module, align=1: measured.append(1) or receptive_radius(module, align))
    small, dilated = _net(3), _net(3, dilation=4)
    assert cached_receptive_radius(small) == 2
    assert cached_receptive_radius(_net(3)) == 2  # other weights, same structure: not measured
    assert cached_receptive_radius(dilated) == 5
    assert cached_receptive_radius(small, align=4) == receptive_radius(small, 4)
    assert len(measured) == 3
    assert sorted(json.loads(cache.read_text()).values()) == sorted([2, 5, receptive_radius(small, 4)])


def test_an_unwritable_or_broken_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv(RADIUS_CACHE_VARIABLE, str(tmp_path / "file" / "radii.json"))
    (tmp_path / "file").write_text("a file where the cache folder would be")
    assert cached_receptive_radius(_net(5)) == 3
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    monkeypatch.setenv(RADIUS_CACHE_VARIABLE, str(broken))
    assert cached_receptive_radius(_net(5)) == 3
    assert list(json.loads(broken.read_text()).values()) == [3]  # replaced whole
