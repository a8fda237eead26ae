"""examples/notebook.py, run headless as CI runs it, writes its figures."""

import subprocess
import sys
from pathlib import Path

from PIL import Image

from conftest import ROOT


def test_the_notebook_example_runs_and_draws_its_figures(demo, tmp_path):
    out = tmp_path / "figures"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/notebook.py"), str(demo), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "left out corrupt.jpg: not an image" in done.stdout
    assert "block5_conv3's strongest channels per label:" in done.stdout
    figures = sorted(p.name for p in out.glob("*.png"))
    assert figures[:3] == ["block1_conv1-grid.png", "channel11-images.png", "run-channel11.png"]
    assert len(figures) == 4 and figures[3].startswith("top-block5_conv3-")
    for name in figures:
        with Image.open(out / name) as picture:
            assert picture.format == "PNG" and min(picture.size) >= 300, name
