"""Fixtures of the Python package's tests: the test models and the demo, built once per session
by the same scripts as the Rust tests use, and the `layerwise` command of this package."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _build(script: str, out: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / script), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """tests/models/make_models.py's models (tiny_nchw.onnx, tiny_nhwc.onnx, ...)."""
    return _build("tests/models/make_models.py", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """demo/make_demo.py's model and photos (models/demo_vgg.onnx, images/<label>/*.jpg)."""
    return _build("demo/make_demo.py", tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def pictures(tmp_path_factory):
    """Twelve 8 x 8 RGB pictures, as uint8 arrays and as PNG files (lossless: the files decode
    to exactly the arrays)."""
    rng = np.random.default_rng(5)
    arrays = rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    folder = tmp_path_factory.mktemp("pictures")
    paths = []
    for i, array in enumerate(arrays):
        path = folder / f"p{i:02}.png"
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return arrays, paths


def command(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """This package's `layerwise` command (the console script's entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "layerwise._cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),
    )


def demo_config(demo: Path, out: Path, **run) -> dict:
    """The demo study (pipelines/demo.toml's model input and preprocessing) over `demo`, as a
    dict, with small parts so that runs have several."""
    with open(ROOT / "pipelines/demo.toml", "rb") as f:
        study = tomllib.load(f)
    run_keys = {"batch_size": 4, "threads": 0, "part_size": 16}
    run_keys.update(run)
    return {
        "name": study["name"],
        "input": {"root": str(demo / "images"), "extensions": ["jpg", "jpeg", "png"], "label": "parent"},
        "model": {"path": str(demo / "models/demo_vgg.onnx"), "input": study["model"]["input"]},
        "preprocess": study["preprocess"],
        "run": run_keys,
        "layers": [
            {"name": "block1_conv1", "tensor": "block1_conv1", "keep": [0, 11, 12, 27, 30, 34]},
            {"name": "block5_conv3", "tensor": "block5_conv3", "keep": "all", "top_k": 4, "positions": 4},
            {"name": "predictions", "tensor": "predictions"},
        ],
        "output": {"dir": str(out)},
    }


def toml_text(config: dict) -> str:
    """A config dict as TOML (the few value types the tests use)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return "[" + ", ".join(value(x) for x in v) + "]"

    lines = [f"name = {value(config['name'])}"]
    for table in ("input", "model", "preprocess", "run", "output"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {value(v)}" for k, v in config[table].items()]
    for layer in config["layers"]:
        lines.append("[[layers]]")
        lines += [f"{k} = {value(v)}" for k, v in layer.items()]
    return "\n".join(lines) + "\n"
