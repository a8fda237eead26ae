"""`Run.compare` (the engine of `layerwise compare`) against a straightforward numpy reference on
the same features read with pyarrow: Gram-matrix CKA, the debiased estimator with Gram matrices,
and RSA (dissimilarity matrices, ranks and correlations in numpy, no scipy)."""

import glob
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

import layerwise as lw

from conftest import command, demo_config, toml_text


def table(out: Path, name: str) -> pa.Table:
    return pq.read_table(sorted(glob.glob(str(out / name / "*.parquet"))))


def features(out: Path) -> dict:
    """{layer: {path: features}}: map layers' per-channel mean from stats, vectors' values."""
    images = table(out, "images").to_pydict()
    path_of = dict(zip(images["image_id"], images["path"]))
    found: dict = {}
    stats = table(out, "stats").sort_by([("image_id", "ascending"), ("layer", "ascending"), ("channel", "ascending")])
    for layer in set(stats.column("layer").to_pylist()):
        rows = stats.filter(pc.equal(stats["layer"], layer))
        ids = rows.column("image_id").to_numpy()
        means = rows.column("mean").to_numpy().astype(np.float64)
        width = int(rows.column("channel").to_numpy().max()) + 1
        order = list(dict.fromkeys(ids))
        matrix = means.reshape(len(order), width)
        found[layer] = {path_of[i]: matrix[k] for k, i in enumerate(order)}
    vectors = table(out, "vectors").to_pydict()
    for i, layer, values in zip(vectors["image_id"], vectors["layer"], vectors["values"]):
        found.setdefault(layer, {})[path_of[i]] = np.asarray(values, dtype=np.float64)
    return found


def cka(x: np.ndarray, y: np.ndarray) -> tuple:
    """(standard, debiased) linear CKA with n x n Gram matrices."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l = x @ x.T, y @ y.T
    kc, lc = h @ k @ h, h @ l @ h
    standard = (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())

    def hsic_u(k, l):
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        ones = np.ones(n)
        return ((k * l).sum() + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * ones @ k @ l @ ones) / (
            n * (n - 3)
        )

    return standard, hsic_u(k, l) / np.sqrt(hsic_u(k, k) * hsic_u(l, l))


def rank(v: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank."""
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rsa(x: np.ndarray, y: np.ndarray) -> float:
    upper = np.triu_indices(x.shape[0], k=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Ranked at 1e-9, as layerwise does: values equal but for rounding tie.
        a, b = (np.round(1 - np.corrcoef(m)[upper], 9) for m in (x, y))
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")  # an image whose features do not vary
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def assert_cka(rows, x: dict, y: dict, paths) -> None:
    """Each row's cka and cka_debiased equal the Gram-matrix estimators on its layers'
    features (layer_a's from x, layer_b's from y) over paths."""
    for row in rows:
        a = np.stack([x[row["layer_a"]][p] for p in paths])
        b = np.stack([y[row["layer_b"]][p] for p in paths])
        standard, debiased = cka(a, b)
        close(row["cka"], standard)
        close(row["cka_debiased"], debiased)


def close(got, want, tolerance=1e-9):
    if np.isnan(want):
        assert np.isnan(got), (got, want)
        return
    assert abs(got - want) <= tolerance * max(abs(got), abs(want)), (got, want)


@pytest.fixture(scope="module")
def runs(demo, models, tmp_path_factory):
    """The demo study (VGG16-shaped) and the tiny CNN over the same photos, by the command."""
    folder = tmp_path_factory.mktemp("compare")
    config = folder / "demo.toml"
    config.write_text(toml_text(demo_config(demo, folder / "vgg")))
    assert command("run", str(config), "--quiet").returncode == 0
    tiny = {
        "name": "tiny",
        "input": {"root": str(demo / "images"), "extensions": ["jpg", "jpeg", "png"]},
        "model": {"path": str(models / "tiny_nchw.onnx")},
        "layers": [{"tensor": "conv1"}, {"tensor": "conv2"}],
        "run": {"part_size": 20},
        "output": {"dir": str(folder / "tiny")},
    }
    lw.run(tiny, progress=False)
    return folder / "vgg", folder / "tiny"


def test_within_a_run_cka_and_rsa_equal_the_numpy_reference(runs, tmp_path):
    vgg, _ = runs
    found = lw.open(vgg).compare(rsa=12, seed=3, out=tmp_path)
    record = found.record
    assert record["images"] == 50 and record["left_out"]["failed"] == 1
    names = record["layers"][0]
    assert names == ["block1_conv1", "block5_conv3", "predictions"]
    x = features(vgg)
    paths = sorted(x["block1_conv1"])
    assert len(paths) == 50
    sample = [path for _, path in record["rsa"]["images"]]
    assert len(sample) == 12
    rows = found.table.to_pylist()
    assert len(rows) == 9
    assert_cka(rows, x, x, paths)
    for row in rows:
        sa = np.stack([x[row["layer_a"]][p] for p in sample])
        sb = np.stack([x[row["layer_b"]][p] for p in sample])
        close(row["rsa"], rsa(sa, sb))
    # The 2-class `predictions` correlates every two sampled photos by +1 (the same class
    # wins): its dissimilarities are all 0, their ranks constant, its RSA undefined.
    assert np.isnan(found.matrix("rsa")[2]).all() and not np.isnan(found.matrix("rsa")[:2, :2]).any()
    matrix = found.matrix("cka")
    assert matrix.shape == (3, 3) and np.allclose(np.diag(matrix), 1.0)
    assert np.array_equal(matrix, matrix.T)
    # The command writes what the API returns.
    written = pq.read_table(tmp_path / "similarity.parquet")
    assert written.drop_columns(["rsa"]).equals(found.table.drop_columns(["rsa"]))
    np.testing.assert_array_equal(written["rsa"].to_numpy(), found.table["rsa"].to_numpy())
    assert Image.open(io.BytesIO(found.heat_map)).size == Image.open(tmp_path / "similarity.png").size


def test_two_runs_are_compared_over_the_photos_ok_in_both(runs):
    vgg, tiny = runs
    found = lw.open(vgg).compare(lw.open(tiny), layers=["block5_conv3", "conv1", "conv2"])
    assert found.record["images"] == 50
    assert found.record["left_out"] == {"only_a": 0, "only_b": 0, "failed": 1, "repeated": 0}
    x, y = features(vgg), features(tiny)
    paths = sorted(x["block5_conv3"])
    rows = found.table.to_pylist()
    assert [(r["layer_a"], r["layer_b"]) for r in rows] == [("block5_conv3", "conv1"), ("block5_conv3", "conv2")]
    assert_cka(rows, x, y, paths)
    assert all(row["rsa"] is None for row in rows)
    assert found.matrix("cka").shape == (1, 2)
    with pytest.raises(lw.ConfigError, match="neither run has layer `nope`"):
        lw.open(vgg).compare(lw.open(tiny), layers=["nope"])
