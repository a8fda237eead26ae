"""`layerwise.extract` and `layerwise.layers` against a direct ONNX Runtime session."""

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import layerwise as lw

from conftest import command

# Exactly representable, so that the engine's x * (scale / std) - mean / std and numpy's agree
# to the bit.
PRE = {"size": [8, 8], "layout": "NCHW", "scale": 0.0078125, "mean": [0.5, 0.25, 0.125], "std": [1, 1, 1]}


def reference(models, arrays, outputs=("conv1", "conv2")):
    """The tensors of tiny_nchw_outputs.onnx (the tiny model with its inner tensors as graph
    outputs) on the arrays, preprocessed in numpy."""
    x = arrays.astype(np.float32).transpose(0, 3, 1, 2) * np.float32(PRE["scale"])
    x = x - np.array(PRE["mean"], dtype=np.float32)[None, :, None, None]
    session = ort.InferenceSession(str(models / "tiny_nchw_outputs.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip(outputs, session.run(list(outputs), {"input": x})))


def test_paths_arrays_and_pil_images_equal_a_direct_session(models, pictures):
    arrays, paths = pictures
    want = reference(models, arrays)
    pil = [Image.open(p) for p in paths]
    for images in (paths, arrays, pil, list(arrays)):
        got = lw.extract(models / "tiny_nchw.onnx", images, layers=["conv1", "conv2"], preprocess=PRE, batch_size=5)
        assert list(got) == ["conv1", "conv2"]
        assert got.indices == list(range(12)) and got.errors == []
        for name in want:
            assert got[name].dtype == np.float32
            assert got[name].shape == want[name].shape
            np.testing.assert_array_equal(got[name], want[name])


def test_an_nhwc_model_gives_the_same_tensors(models, pictures):
    arrays, paths = pictures
    want = reference(models, arrays)
    nhwc = dict(PRE, layout="NHWC")
    got = lw.extract(models / "tiny_nhwc.onnx", paths, layers="conv2", preprocess=nhwc, batch_size=4)
    np.testing.assert_array_equal(got["conv2"], want["conv2"])


def test_a_selector_that_matches_two_tensors_gives_both(models, pictures):
    arrays, _ = pictures
    want = reference(models, arrays[:3])
    got = lw.extract(models / "tiny_nchw.onnx", arrays[:3], layers=["conv?"], preprocess=PRE)
    assert sorted(got) == ["conv1", "conv2"]
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    last = lw.extract(models / "tiny_nchw.onnx", arrays[:3], layers=["op:Conv#-1"], preprocess=PRE)
    (name,) = last
    assert last[name].shape == (3, 6, 4, 4)
    none = lw.extract(models / "tiny_nchw.onnx", [], layers=["conv1"], preprocess=PRE)
    assert none["conv1"].shape == (0, 4, 8, 8) and none.indices == []


def test_a_bad_image_raises_with_its_index_or_is_skipped(models, pictures, tmp_path):
    arrays, paths = pictures
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    images = paths[:2] + [str(bad)] + paths[2:4]
    with pytest.raises(lw.RunError, match=r"image 2 cannot be used: .*not an image"):
        lw.extract(models / "tiny_nchw.onnx", images, layers="conv1", preprocess=PRE)
    got = lw.extract(models / "tiny_nchw.onnx", images, layers="conv1", preprocess=PRE, errors="skip")
    assert got.indices == [0, 1, 3, 4]
    assert [i for i, _ in got.errors] == [2] and "not an image" in got.errors[0][1]
    np.testing.assert_array_equal(got["conv1"], reference(models, arrays[:4])["conv1"])


def test_a_missing_layer_is_a_config_error_with_the_commands_message(models, pictures, tmp_path):
    _, paths = pictures
    with pytest.raises(lw.ConfigError) as raised:
        lw.extract(models / "tiny_nchw.onnx", paths[:1], layers=["nope"], preprocess=PRE)
    assert isinstance(raised.value, ValueError)
    config = tmp_path / "c.toml"
    config.write_text(
        f'name = "x"\n[input]\nroot = "{tmp_path}"\n[model]\npath = "{models / "tiny_nchw.onnx"}"\n'
        f'[preprocess]\nsize = [8, 8]\n[[layers]]\ntensor = "nope"\n[output]\ndir = "{tmp_path / "out"}"\n'
    )
    out = command("check", str(config))
    assert out.returncode == 2
    # The same words, after the part that names the config file or the call.
    said = str(raised.value).split("has no tensor", 1)[1]
    assert said in out.stderr, (said, out.stderr)


def test_wrong_arguments_are_type_errors(models, pictures):
    arrays, _ = pictures
    with pytest.raises(TypeError, match="uint8"):
        lw.extract(models / "tiny_nchw.onnx", arrays.astype(np.float32), layers="conv1", preprocess=PRE)
    with pytest.raises(TypeError, match=r"images\[1\]"):
        lw.extract(models / "tiny_nchw.onnx", [arrays[0], 3], layers="conv1", preprocess=PRE)
    with pytest.raises(lw.ConfigError, match="preprocess"):
        lw.extract(models / "tiny_nchw.onnx", arrays, layers="conv1", preprocess={"sise": [8, 8]})


def test_layers_lists_the_tensors_as_the_command_does(models):
    table = lw.layers(models / "tiny_nchw.onnx", shapes=True)
    assert table.column_names == ["index", "tensor", "op", "node", "dtype", "shape", "kind", "tokens", "output"]
    rows = table.to_pylist()
    assert rows[0]["kind"] == "input" and rows[0]["index"] is None
    conv1 = next(r for r in rows if r["tensor"] == "conv1")
    assert conv1["shape"] == "[1, 4, 8, 8]" and conv1["dtype"] == "float32"
    assert rows[-1]["tensor"] == "probs" and rows[-1]["kind"] == "output"
    listed = command("layers", str(models / "tiny_nchw.onnx"), "--json")
    import json

    assert [t["name"] for t in json.loads(listed.stdout)["tensors"]] == [
        r["tensor"] for r in rows if r["kind"] != "input"
    ]
