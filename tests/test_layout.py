"""The top-level layout the project promises: tune_spaces/, a cluster.yaml that Ray's own
cluster-config schema accepts (checked offline: `ray up` has no dry run), the console script.

Run: .venv/bin/python -m pytest tests/test_layout.py -q
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_layout_exists():
    for path in ("distpaint", "tests", "bench", "research", "tune_spaces", "README.md", "pyproject.toml",
                 "cluster.yaml", ".ci/run"):
        assert (ROOT / path).exists(), f"{path} is missing"
    assert (ROOT / "tune_spaces" / "README.md").read_text().strip()


def test_research_scripts_say_the_question_they_answer():
    """research/ holds one-off diagnostics, bench/ what users run: every research script opens
    with the question it answers and is listed in research/README.md."""
    listed = (ROOT / "research" / "README.md").read_text()
    scripts = sorted(p for p in (ROOT / "research").iterdir() if p.suffix in (".py", ".sh"))
    assert scripts
    for path in scripts:
        text = path.read_text()
        if path.suffix == ".py":
            opening = ast.get_docstring(ast.parse(text)) or ""
        else:  # the comment block under the shebang
            opening = "\n".join(line for line in text.splitlines()[1:12] if line.startswith("#"))
        assert "?" in opening.split("\n\n")[0], f"{path.name}: its docstring asks no question"
        assert f"`{path.name}`" in listed, f"{path.name} is not in research/README.md"


def test_cluster_yaml_is_a_valid_aws_cluster_config():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]
    _validate(config)


@pytest.mark.parametrize("breakage", [
    lambda c: c.__setitem__("max_workers", "many"),
    lambda c: c.__setitem__("head_node_type", "nope"),
    lambda c: c["available_node_types"].pop(c["head_node_type"]),
    lambda c: c.__setitem__("unknown_top_level_key", 1),
])
def test_the_validation_catches_a_broken_cluster_yaml(breakage):
    """So that the test above can fail: the same check refuses broken copies."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    breakage(config)
    with pytest.raises(Exception):  # noqa: B017 - Ray raises ValidationError, ValueError or TypeError
        _validate(config)


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["distpaint"] == "distpaint.cli:main"
    assert project["requires-python"] == ">=3.10"
