#!/usr/bin/env python3
"""Checks the export recipes of docs/models.md end to end.

usage: check_recipes.py LAYERWISE WORK_DIR [RECIPE ...]
  LAYERWISE  the layerwise executable to run
  RECIPE     torchscript, dynamo, timm, keras, hf, vit, timm-vit, timm-dinov2, open-clip,
             openai-clip, siglip (default: all)

For each recipe: builds the model as the recipe says (random, seeded weights: nothing can be
downloaded here, and the graph, its tensor names and the preprocessing are what a recipe is
about), exports it to ONNX the way the recipe does, writes two 224 x 224 pictures, takes the
recipe's config verbatim from docs/models.md (the ```toml block whose name is the recipe's) into
the recipe's folder, runs layerwise on it, and compares every per-channel mean and max that
layerwise stored with what the framework itself computes on the same pictures, preprocessed by
the framework's own code where it has one (Keras' preprocess_input). The pictures are already at
the model's size, so layerwise's resize leaves them as they are.

Not part of the test suite: PyTorch, TensorFlow and their friends are gigabytes. Needs, per
recipe: torch, torchvision, onnxscript (torchscript, dynamo); timm (timm, timm-vit, timm-dinov2);
tensorflow, tf2onnx (keras); transformers, optimum-onnx (hf, vit, siglip); open_clip_torch
(open-clip); openai-clip (openai-clip); and numpy, pillow, pyarrow.

For a vision transformer the statistics are compared over the patch grid (the prefix tokens
left out, as layerwise infers them), and the `positions` table's prefix tokens (the default for
token layers, float16) with the framework's tokens.
"""
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "models.md")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SIZE = 224


def pictures(folder):
    """Two deterministic 224 x 224 RGB pictures (gradients, a disc, bars, noise), as uint8."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    images = []
    for i, name in enumerate(["a.png", "b.png"]):
        r = (x * (1 + i) % 256).astype(np.float32)
        g = (y * 255 / SIZE).astype(np.float32)
        disc = ((x - 90 - 40 * i) ** 2 + (y - 120) ** 2 < 50 ** 2) * 200.0
        bars = ((x // (8 + 4 * i)) % 2) * 120.0
        b = np.clip(disc + bars, 0, 255)
        img = np.stack([r, g, b], -1) + rng.normal(0, 12, (SIZE, SIZE, 3))
        img = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, name))
        images.append(img)
    return images


def recipe_config(name):
    """The ```toml block of docs/models.md whose `name` is `name`."""
    text = open(DOCS).read()
    for block in re.findall(r"```toml\n(.*?)```", text, re.S):
        if re.search(rf'^name = "{re.escape(name)}"', block, re.M):
            return block
    raise SystemExit(f"docs/models.md has no config named {name}")


def run_layerwise(layerwise, folder, name):
    """Writes the recipe's config into `folder`, runs it, returns {(layer, path, channel): (mean, max)}."""
    import pyarrow.parquet as pq

    config = os.path.join(folder, "pipeline.toml")
    with open(config, "w") as f:
        f.write(recipe_config(name))
    out = os.path.join(folder, "out")
    subprocess.run([layerwise, "run", config, "--out", out, "--overwrite", "--quiet"], check=True)
    images = pq.read_table(os.path.join(out, "images")).to_pylist()
    paths = {r["image_id"]: r["path"] for r in images}
    assert all(r["status"] == "ok" for r in images), images
    stats = pq.read_table(os.path.join(out, "stats")).to_pylist()
    return {(r["layer"], paths[r["image_id"]], r["channel"]): (r["mean"], r["max"]) for r in stats}


def token_maps(tokens, prefix):
    """[images, tokens, dim] -> one channel per hidden unit, its map over the patches."""
    return np.asarray(tokens)[:, prefix:, :].transpose(0, 2, 1)


def compare_prefix(name, folder, want, prefix):
    """The `positions` rows of `folder`'s run (the prefix tokens of each layer, float16) against
    `want` ({layer: [images, tokens, dim]}, images in a, b order)."""
    import pyarrow.parquet as pq

    out = os.path.join(folder, "out")
    paths = {r["image_id"]: r["path"] for r in pq.read_table(os.path.join(out, "images")).to_pylist()}
    rows = pq.read_table(os.path.join(out, "positions")).to_pylist()
    assert len(rows) == 2 * len(want) * prefix, (len(rows), len(want), prefix)
    worst = 0.0
    for r in rows:
        assert r["position"] < prefix and r["y"] is None, r
        i = ["a.png", "b.png"].index(os.path.basename(paths[r["image_id"]]))
        w = np.asarray(want[r["layer"]], np.float64)[i, r["position"]]
        g = np.asarray(r["values"], np.float64)
        error = float(np.max(np.abs(g - w) / (1.0 + np.abs(w))))
        worst = max(worst, error)
        assert error < 2e-3, f"{name} {r['layer']} position {r['position']}: {error}"
    print(f"{name}: {len(rows)} prefix-token vectors match (float16); worst relative error {worst:.2e}")


def compare(name, got, want):
    """`want`: {layer: array [images, channels, ...]} from the framework, images in a, b order."""
    worst = 0.0
    for layer, array in want.items():
        array = np.asarray(array, dtype=np.float64)
        for i, path in enumerate(["a.png", "b.png"]):
            for c in range(array.shape[1]):
                mean, peak = got[(layer, path, c)]
                want_mean, want_max = array[i, c].mean(), array[i, c].max()
                for g, w in [(mean, want_mean), (peak, want_max)]:
                    error = abs(g - w) / (1.0 + abs(w))
                    worst = max(worst, error)
                    assert error < 1e-4, f"{name} {layer} {path} channel {c}: {g} vs {w}"
    rows = sum(a.shape[0] * a.shape[1] for a in map(np.asarray, want.values()))
    print(f"{name}: {rows} channel rows of {len(want)} layers match; worst relative error {worst:.2e}")


def torch_input(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """torchvision's ToTensor + Normalize, by hand, in float32 (NCHW)."""
    import torch

    x = np.stack(images).astype(np.float32) / 255.0
    x = (x - mean) / std
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def forward_with_hooks(model, x, modules):
    """The outputs of `modules` ({layer: module}) on `x`."""
    import torch

    captured = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: captured.__setitem__(k, o.detach().clone()))
             for k, m in modules.items()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return {k: v.numpy() for k, v in captured.items()}


def vgg16():
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


def check_vgg16(layerwise, work, recipe, config, export):
    """VGG16 exported by `export(model, path)`, run with docs/models.md's `config`."""
    import torch

    folder = os.path.join(work, recipe)
    images = pictures(os.path.join(folder, "images"))
    model = vgg16()
    export(model, os.path.join(folder, "vgg16.onnx"))
    got = run_layerwise(layerwise, folder, config)
    want = forward_with_hooks(model, torch_input(images),
                              {"block1_conv1": model.features[1], "block5_conv3": model.features[29]})
    compare(recipe, got, want)


def check_torchscript(layerwise, work):
    import torch

    def export(model, path):
        # The recipe: the TorchScript exporter, the batch symbolic (VGG's classifier fixes the size).
        torch.onnx.export(
            model, (torch.zeros(1, 3, 224, 224),), path, dynamo=False,
            input_names=["input"], output_names=["logits"], opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    check_vgg16(layerwise, work, "torchscript", "torchvision-vgg16", export)


def check_dynamo(layerwise, work):
    import torch

    def export(model, path):
        # The recipe: the torch.export-based exporter, with a symbolic batch.
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(
            model, (torch.zeros(1, 3, 224, 224),), path, dynamo=True,
            input_names=["input"], output_names=["logits"], dynamic_shapes={"x": {0: batch}})

    check_vgg16(layerwise, work, "dynamo", "torchvision-vgg16-dynamo", export)


def check_timm(layerwise, work):
    import timm
    import torch

    folder = os.path.join(work, "timm")
    images = pictures(os.path.join(folder, "images"))
    torch.manual_seed(0)
    model = timm.create_model("resnet50", pretrained=False).eval()
    data = timm.data.resolve_data_config({}, model=model)
    print("timm resnet50 data config:", data)
    torch.onnx.export(
        model, (torch.zeros(1, 3, 224, 224),), os.path.join(folder, "resnet50.onnx"), dynamo=False,
        input_names=["input"], output_names=["logits"], opset_version=17,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    got = run_layerwise(layerwise, folder, "timm-resnet50")
    x = torch_input(images, np.array(data["mean"], np.float32), np.array(data["std"], np.float32))
    # The exporter folds each BatchNorm into the Conv before it: op:Conv#0 is bn1's output.
    want = forward_with_hooks(model, x, {"stem": model.bn1, "last_relu": model.layer4[-1].act3})
    compare("timm", got, want)


def check_keras(layerwise, work):
    import tensorflow as tf
    import tf2onnx

    folder = os.path.join(work, "keras")
    images = pictures(os.path.join(folder, "images"))
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                               output_path=os.path.join(folder, "vgg16.onnx"))
    got = run_layerwise(layerwise, folder, "keras-vgg16")
    probe = tf.keras.Model(model.inputs, [model.get_layer(n).output for n in ["block1_conv1", "block5_conv3"]])
    # Keras' own preprocessing ("caffe" mode: RGB -> BGR, minus the ImageNet means).
    x = tf.keras.applications.vgg16.preprocess_input(np.stack(images).astype(np.float32))
    first, last = probe.predict(x, verbose=0)
    want = {"block1_conv1": first.transpose(0, 3, 1, 2), "block5_conv3": last.transpose(0, 3, 1, 2)}
    compare("keras", got, want)


def check_hf(layerwise, work):
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    folder = os.path.join(work, "hf")
    images = pictures(os.path.join(folder, "images"))
    torch.manual_seed(0)
    model = ResNetForImageClassification(ResNetConfig()).eval()  # microsoft/resnet-50's architecture
    model.save_pretrained(os.path.join(folder, "resnet-50"))
    # optimum's exporter needs the image processor beside the weights, as the Hub has it.
    from transformers import ConvNextImageProcessor

    ConvNextImageProcessor(crop_pct=0.875, size={"shortest_edge": 224}).save_pretrained(
        os.path.join(folder, "resnet-50"))
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "optimum-cli"), "export", "onnx", "--model", os.path.join(folder, "resnet-50"),
                    "--task", "image-classification", os.path.join(folder, "onnx")], check=True)
    got = run_layerwise(layerwise, folder, "hf-resnet-50")
    with torch.no_grad():
        hidden = model(torch_input(images), output_hidden_states=True).hidden_states
    want = {"embedder": hidden[0].numpy(), "last_stage": hidden[-1].numpy()}
    compare("hf", got, want)


def check_vit(layerwise, work):
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = os.path.join(work, "vit")
    images = pictures(os.path.join(folder, "images"))
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig()).eval()  # google/vit-base-patch16-224's architecture
    model.save_pretrained(os.path.join(folder, "vit"))
    ViTImageProcessor().save_pretrained(os.path.join(folder, "vit"))
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "optimum-cli"), "export", "onnx",
                    "--model", os.path.join(folder, "vit"), "--task", "image-classification",
                    os.path.join(folder, "onnx")], check=True)
    got = run_layerwise(layerwise, folder, "hf-vit")
    half = np.array([0.5, 0.5, 0.5], np.float32)
    with torch.no_grad():
        hidden = model(torch_input(images, half, half), output_hidden_states=True).hidden_states
    # One channel per hidden unit, its map over the 14 x 14 patches; the class token apart.
    want = {"layer11": hidden[-1].numpy()}
    compare("vit", got, {layer: token_maps(t, 1) for layer, t in want.items()})
    compare_prefix("vit", folder, want, 1)


def check_tokens(layerwise, name, folder, want, prefix):
    """Runs a transformer recipe and compares: `want` holds the framework's block outputs on
    the pictures ({layer: [images, tokens, dim]}), `prefix` tokens before the patches."""
    got = run_layerwise(layerwise, folder, name)
    compare(name, got, {layer: token_maps(t, prefix) for layer, t in want.items()})
    compare_prefix(name, folder, want, prefix)


def export_torch(model, path, input_name, output_name):
    """TorchScript export, batch axis free, opset 17 (as the recipes say)."""
    import torch

    torch.onnx.export(
        model, (torch.zeros(1, 3, 224, 224),), path, dynamo=False, input_names=[input_name],
        output_names=[output_name], opset_version=17,
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})


def check_timm_transformer(layerwise, work, recipe, arch, **kwargs):
    import timm
    import torch

    folder = os.path.join(work, recipe)
    images = pictures(os.path.join(folder, "images"))
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, **kwargs).eval()
    data = timm.data.resolve_data_config({}, model=model)
    print(f"timm {arch} data config:", data, "prefix tokens:", model.num_prefix_tokens)
    export_torch(model, os.path.join(folder, "vit.onnx"), "input", "logits")
    mean, std = np.array(data["mean"], np.float32), np.array(data["std"], np.float32)
    want = forward_with_hooks(model, torch_input(images, mean, std),
                              {"block0": model.blocks[0], "block11": model.blocks[-1]})
    check_tokens(layerwise, recipe, folder, want, model.num_prefix_tokens)


def check_timm_vit(layerwise, work):
    check_timm_transformer(layerwise, work, "timm-vit", "vit_small_patch16_224")


def check_timm_dinov2(layerwise, work):
    check_timm_transformer(layerwise, work, "timm-dinov2", "vit_small_patch14_reg4_dinov2",
                           img_size=224)


CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def check_clip_tower(layerwise, work, recipe, make_visual, sequence_first):
    """A CLIP image tower from `make_visual()`: blocks `transformer.resblocks`, [images, tokens,
    dim], or [tokens, images, dim] when it runs `sequence_first`."""
    import torch

    folder = os.path.join(work, recipe)
    images = pictures(os.path.join(folder, "images"))
    torch.manual_seed(0)
    visual = make_visual().eval()
    export_torch(visual, os.path.join(folder, "visual.onnx"), "image", "embedding")
    blocks = visual.transformer.resblocks
    want = forward_with_hooks(visual, torch_input(images, CLIP_MEAN, CLIP_STD),
                              {"block0": blocks[0], "block11": blocks[-1]})
    if sequence_first:
        want = {k: v.transpose(1, 0, 2) for k, v in want.items()}
    check_tokens(layerwise, recipe, folder, want, 1)


def check_open_clip(layerwise, work):
    import open_clip

    check_clip_tower(layerwise, work, "open-clip-vit-b-32",
                     lambda: open_clip.create_model("ViT-B-32", pretrained=None).visual, False)


def check_openai_clip(layerwise, work):
    from clip.model import VisionTransformer

    # ViT-B/32's image tower, as clip.load builds it; its transformer runs sequence first.
    def visual():
        return VisionTransformer(input_resolution=224, patch_size=32, width=768, layers=12,
                                 heads=12, output_dim=512)

    check_clip_tower(layerwise, work, "openai-clip-vit-b-32", visual, True)


def check_siglip(layerwise, work):
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    folder = os.path.join(work, "siglip")
    images = pictures(os.path.join(folder, "images"))
    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig()).eval()  # siglip-base-patch16-224's tower
    export_torch(model, os.path.join(folder, "siglip.onnx"), "pixel_values", "last_hidden_state")
    half = np.array([0.5, 0.5, 0.5], np.float32)
    with torch.no_grad():
        hidden = model(torch_input(images, half, half), output_hidden_states=True).hidden_states
    want = {"layer0": hidden[1].numpy(), "layer11": hidden[-1].numpy()}
    got = run_layerwise(layerwise, folder, "siglip-base")
    compare("siglip", got, {layer: token_maps(t, 0) for layer, t in want.items()})


RECIPES = {"torchscript": check_torchscript, "dynamo": check_dynamo, "timm": check_timm,
           "keras": check_keras, "hf": check_hf, "vit": check_vit, "timm-vit": check_timm_vit,
           "timm-dinov2": check_timm_dinov2, "open-clip": check_open_clip,
           "openai-clip": check_openai_clip, "siglip": check_siglip}


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    layerwise, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    for name in sys.argv[3:] or RECIPES:
        RECIPES[name](layerwise, work)


if __name__ == "__main__":
    main()
