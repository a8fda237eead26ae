#!/usr/bin/env python3
"""Exports a small CNN with PyTorch's own ONNX exporters, for tests/it/torch_exports.rs.

usage: export_torch.py OUT_DIR

Run it where PyTorch is installed (it is not a test dependency: its wheels are gigabytes); the
files it writes are checked in under tests/models/torch/ and the tests only read them.

Writes into OUT_DIR:
  images/a.png, images/b.png  two 48 x 40 RGB pictures (deterministic: gradients, a disc, bars)
  cnn_dynamic.onnx            torch.onnx.export(dynamo=False): the TorchScript exporter, with
                              symbolic batch, height and width (dynamic_axes)
  cnn_dynamo.onnx             torch.onnx.export(dynamo=True): the torch.export-based exporter
                              (the default since PyTorch 2.9), with a symbolic batch
  cnn_batch1.onnx             the TorchScript exporter with a fixed batch of 1 and a fixed size
  reference.json              what PyTorch itself computes on the two pictures, preprocessed as
                              torchvision's ImageNet models expect (x / 255 - mean) / std in
                              float32: for each probed module, per image, per channel the
                              statistics layerwise stores (mean, std, min, max, frac_positive),
                              one whole map, and the softmax output

The network, in eval mode with seeded weights and BatchNorm running statistics:
  features: Conv2d(3, 8, 3, pad 1) ReLU Conv2d(8, 8, 3, pad 1) ReLU MaxPool2d(2)
            Conv2d(8, 16, 3, pad 1) BatchNorm2d(16) ReLU MaxPool2d(2)
  AdaptiveAvgPool2d(1) -> flatten -> Linear(16, 4) -> softmax
The probes are named by the ONNX selectors that find the same tensors in every export:
  op:Conv#0 (features[0]), op:Relu#0 (features[1]), op:Relu#-1 (features[7]), op:Softmax#0.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from torch import nn

HEIGHT, WIDTH = 40, 48
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# (selector, index in features or None for the softmax, channel whose whole map is kept)
PROBES = [("op:Conv#0", 0, 1), ("op:Relu#0", 1, 1), ("op:Relu#-1", 7, 3), ("op:Softmax#0", None, None)]


class SmallVgg(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.flatten(self.pool(self.features(x)), 1)
        return torch.softmax(self.classifier(x), dim=1)


def model():
    torch.manual_seed(3)
    net = SmallVgg()
    bn = net.features[6]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def pictures():
    """Two RGB pictures of HEIGHT x WIDTH with edges in several directions."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    a = np.stack([x * 255 / WIDTH, y * 255 / HEIGHT, np.full_like(x, 90)], axis=-1)
    disc = (x - 30) ** 2 + (y - 18) ** 2 < 100
    a[disc] = [250, 40, 30]
    b = np.stack([(x // 6 % 2) * 200 + 20, np.full_like(x, 128), (y // 5 % 2) * 230], axis=-1)
    b[10:30, 8:20] = [30, 220, 60]
    return {"a.png": a.astype(np.uint8), "b.png": b.astype(np.uint8)}


def preprocess(pixels):
    x = (pixels.astype(np.float32) / np.float32(255) - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def channel_stats(maps):
    """layerwise's statistics of each channel of a [channels, ...] array, in float64."""
    out = []
    for m in maps.reshape(maps.shape[0], -1).astype(np.float64):
        out.append({"mean": m.mean(), "std": m.std(), "min": m.min(), "max": m.max(),
                    "frac_positive": float((m > 0).mean())})
    return out


def probe(net, batch):
    """Each probe's output for the batch, captured by forward hooks (cloned before the in-place
    ReLUs overwrite them)."""
    captured = {}
    hooks = []
    for selector, index, _ in PROBES:
        if index is None:
            continue
        def hook(_module, _inputs, output, selector=selector):
            captured[selector] = output.detach().clone().numpy()
        hooks.append(net.features[index].register_forward_hook(hook))
    with torch.no_grad():
        captured["op:Softmax#0"] = net(batch).numpy()
    for h in hooks:
        h.remove()
    return captured


def export(net, out):
    example = torch.zeros(1, 3, HEIGHT, WIDTH)
    torch.onnx.export(
        net, (example,), os.path.join(out, "cnn_dynamic.onnx"), dynamo=False,
        input_names=["input"], output_names=["probs"], opset_version=17,
        dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "probs": {0: "batch"}})
    torch.onnx.export(
        net, (example,), os.path.join(out, "cnn_dynamo.onnx"), dynamo=True,
        input_names=["input"], output_names=["probs"], external_data=False,
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}})
    torch.onnx.export(
        net, (example,), os.path.join(out, "cnn_batch1.onnx"), dynamo=False,
        input_names=["input"], output_names=["probs"], opset_version=17)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    net = model()
    images = pictures()
    names = sorted(images)
    for name in names:
        Image.fromarray(images[name]).save(os.path.join(out, "images", name))
    # Read back what was written, as layerwise will.
    pixels = [np.asarray(Image.open(os.path.join(out, "images", n)).convert("RGB")) for n in names]
    batch = torch.stack([preprocess(p) for p in pixels])
    captured = probe(net, batch)
    export(net, out)

    reference = {"torch": torch.__version__, "size": [HEIGHT, WIDTH],
                 "mean": MEAN.tolist(), "std": STD.tolist(), "images": names, "probes": {}}
    for selector, _, keep in PROBES:
        values = captured[selector]
        entry = {"shape": list(values.shape[1:]), "per_image": []}
        for i in range(len(names)):
            if values.ndim == 2:
                entry["per_image"].append({"vector": values[i].tolist()})
            else:
                entry["per_image"].append({"channels": channel_stats(values[i]),
                                           "keep": keep, "map": values[i, keep].ravel().tolist()})
        reference["probes"][selector] = entry
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")

    # Each export, run by ONNX Runtime, gives PyTorch's probabilities.
    for file in ["cnn_dynamic.onnx", "cnn_dynamo.onnx"]:
        session = ort.InferenceSession(os.path.join(out, file), providers=["CPUExecutionProvider"])
        (probs,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
        print(file, [i.shape for i in session.get_inputs()], "max |onnxruntime - torch| =",
              float(np.abs(probs - captured["op:Softmax#0"]).max()))
    session = ort.InferenceSession(os.path.join(out, "cnn_batch1.onnx"), providers=["CPUExecutionProvider"])
    print("cnn_batch1.onnx", [i.shape for i in session.get_inputs()])
    print("torch", torch.__version__, "onnxruntime", ort.__version__)


if __name__ == "__main__":
    main()
