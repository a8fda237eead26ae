#!/usr/bin/env python3
"""Build layerwise's demo: a small VGG16-shaped CNN and a two-class folder of real photos.

usage: make_demo.py OUT_DIR

Writes
  OUT_DIR/models/demo_vgg.onnx         NCHW CNN, input "input" float32 [batch,3,224,224],
                                       output "predictions" [batch,2] (softmax).
  OUT_DIR/images/<class>/<class>_NNN.jpg
                                       24 JPEGs (quality 90) per class, classes "astronaut" and
                                       "cat": random crops / flips of skimage's bundled
                                       astronaut.png and chelsea.png, 180..320 px per side.
  OUT_DIR/images/<class>/<class>_gray.png
                                       image 000 of the class as an 8-bit grayscale PNG.
  OUT_DIR/images/cat/corrupt.jpg       an HTML 404 page with a .jpg name (an error row).

The model expects Keras VGG16 "caffe" preprocessing: RGB -> BGR, values 0..255 minus
the mean [103.939, 116.779, 123.68] (BGR), no scaling. Layers follow the Keras VGG16
names: the tensor after each conv's Relu is named exactly like the layer ("block1_conv1"),
the raw conv output "<layer>/BiasAdd", the pools "block{b}_pool":

  block1_conv1 (3->64) block1_conv2 (64->64) block1_pool      224 -> 112
  block2_conv1 (64->128)                     block2_pool      112 -> 56
  block3_conv1 (128->256)                    block3_pool       56 -> 28
  block4_conv1 (256->512)                    block4_pool       28 -> 14
  block5_conv1 (512->512) block5_conv3 (512->512) block5_pool  14 -> 7
  GlobalAveragePool "gap" -> Flatten "flatten" -> MatMul [512,2] "logits" -> Softmax "predictions"

block1_conv1 holds a hand-made bank of 64 interpretable 3x3 filters (oriented Sobel and
Prewitt edges, centre-surround, colour opponents, blurs, a few random ones); filter 11 is a
strong contour tracer. The other weights are He-normal from numpy default_rng(7).
The classifier is random: the demo is about the activations, not the predictions.

At the end the script runs the model in onnxruntime (when installed) on every generated image
and prints, per conv layer, the shape, the fraction of positive activations and the mean, plus
the predictions for two images. The two photos come from LAYERWISE_DEMO_PHOTOS, a folder, when
set, else from the installed scikit-image. Everything is deterministic; no network access is needed.
"""
import os
import random
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

OPSET = 17
IR_VERSION = 8
SIZE = 224
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
LUMA_BGR = np.array([0.114, 0.587, 0.299])  # Rec. 601 luma weights in B, G, R order

# (layer name, input channels, output channels); a pool follows the last conv of each block.
CONVS = [
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128),
    ("block3_conv1", 128, 256),
    ("block4_conv1", 256, 512),
    ("block5_conv1", 512, 512), ("block5_conv3", 512, 512),
]
CLASSES = {"astronaut": "astronaut.png", "cat": "chelsea.png"}  # bundled with skimage 0.26
IMAGES_PER_CLASS = 24
CORRUPT = b"<html><body>404 Not Found</body></html>"


# ---------------------------------------------------------------------------------------
# block1_conv1: a bank of interpretable first-layer filters
# ---------------------------------------------------------------------------------------

SOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)  # bright to the right
PREWITT = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64)
LAPLACE_ON = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)  # bright centre
BOX = np.full((3, 3), 1 / 9)
CENTRE = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64)
SURROUND = (np.ones((3, 3)) - CENTRE) / 8
# Colour of typical photos (raw 0..255 units): red minus green, blue minus yellow.
WARM_RG, WARM_BY = 20.0, -25.0
# Clockwise order of the 8 border taps of a 3x3 kernel, starting top-left.
RING = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]


def rotate45(kernel, steps):
    """Rotate a 3x3 kernel by steps * 45 degrees (clockwise) by cycling its border ring."""
    out = kernel.copy()
    for i, (r, c) in enumerate(RING):
        out[RING[(i + steps) % 8]] = kernel[r, c]
    return out


def on_channels(kernel, channel_weights):
    """A [3,3,3] filter applying a spatial kernel to the BGR channels with the given weights."""
    return np.asarray(channel_weights, dtype=np.float64)[:, None, None] * kernel[None]


def first_layer_filters():
    """64 filters [64,3,3,3] and biases [64] for block1_conv1 on caffe-normalised BGR input.

    Each filter is designed on raw 0..255 pixels as  response = scale * (W . raw) - threshold.
    The caffe input is raw - mean, so the bias that gives that response is
    W . mean - threshold (zero-sum edge kernels do not see the mean at all).
    Scales put typical responses at O(1..100); thresholds above zero silence JPEG noise
    in flat regions, so the edge filters light up along edges rather than everywhere.
    """
    bank = []  # (name, weights [3,3,3] on raw pixels, threshold)

    def add(name, w, threshold):
        bank.append((name, w, threshold))

    gray = LUMA_BGR
    B, G, R = np.eye(3)
    angles = {0: 0, 45: 1, 90: 2, 135: 3}  # steps of 45 degrees

    add("luma_blur", on_channels(BOX, gray) * 0.5, 0.5 * 110)        # 0: brighter than mid grey
    add("luma_blur_dark", on_channels(BOX, -gray) * 0.5, -0.5 * 110)  # 1: darker than mid grey
    for sign in (1, -1):                                              # 2..9: Sobel edges
        for deg, steps in angles.items():
            add(f"sobel_{deg}{'_neg' if sign < 0 else ''}",
                on_channels(rotate45(SOBEL, steps), gray) * 0.25 * sign, 2.0)
    add("centre_on", on_channels(LAPLACE_ON, gray) * 0.25, 2.0)       # 10
    # 11: the contour tracer: a strong Laplacian summed over all three channels. Along
    # every contour its response is large on one side of the edge, so after the Relu it
    # draws the outlines of objects while flat regions stay at zero.
    add("contour", on_channels(LAPLACE_ON, [1, 1, 1]) * 0.25, 3.0)
    add("centre_off", on_channels(-LAPLACE_ON, gray) * 0.25, 2.0)     # 12
    # 13..16: single colour opponents on the centre tap, in complementary pairs split at
    # the colour of typical (warm) photos, R-G = +20 and B-Y = -25, rather than at grey.
    add("red_green", on_channels(CENTRE, R - G), WARM_RG)
    add("green_red", on_channels(CENTRE, G - R), -WARM_RG)
    add("blue_yellow", on_channels(CENTRE, B - (R + G) / 2), WARM_BY)
    add("yellow_blue", on_channels(CENTRE, (R + G) / 2 - B), -WARM_BY)
    # 17..20: double opponents: colour contrast between the centre and its surround.
    for cname, chans in (("red_green", R - G), ("green_red", G - R),
                         ("blue_yellow", B - (R + G) / 2), ("yellow_blue", (R + G) / 2 - B)):
        add(f"double_{cname}", on_channels(CENTRE - SURROUND, chans) * 2, 1.0)
    for sign in (1, -1):                                              # 21..28: Prewitt edges
        for deg, steps in angles.items():
            add(f"prewitt_{deg}{'_neg' if sign < 0 else ''}",
                on_channels(rotate45(PREWITT, steps), gray) / 3 * sign, 2.0)
    for cname, chan in (("blue", B), ("green", G), ("red", R)):       # 29..40: per-channel edges
        for sign in (1, -1):
            for deg in (0, 90):
                add(f"sobel_{cname}_{deg}{'_neg' if sign < 0 else ''}",
                    on_channels(rotate45(SOBEL, angles[deg]), chan) * 0.25 * sign, 3.0)
    for cname, chan in (("blue", B), ("green", G), ("red", R)):       # 41..43: channel blurs
        add(f"blur_{cname}", on_channels(BOX, chan) * 0.5, 0.5 * 110)
    for cname, chan in (("blue", B), ("green", G), ("red", R)):       # 44..46: channel blobs
        add(f"centre_on_{cname}", on_channels(LAPLACE_ON, chan) * 0.25, 3.0)
    for sign in (1, -1):                                              # 47..50: strong edges
        for deg in (0, 90):
            add(f"sobel_strong_{deg}{'_neg' if sign < 0 else ''}",
                on_channels(rotate45(SOBEL, angles[deg]), gray) * 0.5 * sign, 15.0)
    add("centre_on_soft", on_channels(LAPLACE_ON, gray) * 0.125, 0.5)  # 51
    add("centre_off_soft", on_channels(-LAPLACE_ON, gray) * 0.125, 0.5)  # 52
    # 53..55: colour blobs: one channel against the mean of the other two, blurred.
    # 53..55: colour blobs: one channel against the mean of the other two, blurred,
    # thresholded like the opponents above.
    add("red_blob", on_channels(BOX, R - (G + B) / 2), WARM_RG)
    add("green_blob", on_channels(BOX, G - (R + B) / 2), -5.0)
    add("blue_blob", on_channels(BOX, B - (R + G) / 2), WARM_BY)
    # 56..63: seeded random filters, zero-sum on each channel (texture, not colour),
    # with unit norm.
    rng = np.random.default_rng(11)
    for i in range(8):
        w = rng.standard_normal((3, 3, 3))
        w -= w.mean(axis=(1, 2), keepdims=True)
        add(f"random_{i}", w / np.linalg.norm(w), 2.0)

    assert len(bank) == 64, len(bank)
    assert bank[11][0] == "contour"
    weights = np.stack([w for _, w, _ in bank])
    thresholds = np.array([t for _, _, t in bank])
    biases = (weights * CAFFE_MEAN_BGR[None, :, None, None]).sum(axis=(1, 2, 3)) - thresholds
    return weights.astype(np.float32), biases.astype(np.float32)


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------

def model_weights():
    """All parameters: the filter bank, then He-normal convs and a classifier from rng(7)."""
    rng = np.random.default_rng(7)
    params = {}
    for name, cin, cout in CONVS:
        if name == "block1_conv1":
            w, b = first_layer_filters()
        else:
            fan_in = cin * 9
            w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / fan_in)).astype(np.float32)
            b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        params[name] = (w, b)
    # Pooled features are O(10..50); this keeps the logits O(1) so the softmax is not saturated.
    fc = (rng.standard_normal((512, 2)) * 0.003).astype(np.float32)
    return params, fc


def build_model():
    """The VGG16-shaped graph with Keras layer names."""
    params, fc = model_weights()
    nodes, inits = [], []
    x = "input"
    for name, _, _ in CONVS:
        w, b = params[name]
        inits += [numpy_helper.from_array(w, f"{name}/kernel"),
                  numpy_helper.from_array(b, f"{name}/bias")]
        nodes += [
            helper.make_node("Conv", [x, f"{name}/kernel", f"{name}/bias"], [f"{name}/BiasAdd"],
                             name=f"{name}/Conv2D", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                             strides=[1, 1]),
            helper.make_node("Relu", [f"{name}/BiasAdd"], [name], name=f"{name}/Relu"),
        ]
        x = name
        block = name.split("_")[0]
        if name in ("block1_conv2", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv3"):
            pool = f"{block}_pool"
            nodes.append(helper.make_node("MaxPool", [x], [pool], name=f"{pool}/MaxPool",
                                          kernel_shape=[2, 2], strides=[2, 2]))
            x = pool
    inits.append(numpy_helper.from_array(fc, "predictions/kernel"))
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flatten"], name="flatten", axis=1),
        helper.make_node("MatMul", ["flatten", "predictions/kernel"], ["logits"], name="logits/MatMul"),
        helper.make_node("Softmax", ["logits"], ["predictions"], name="predictions/Softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "demo_vgg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["batch", 2])],
        inits)
    model = helper.make_model(graph, producer_name="layerwise-demo",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------------------
# The images
# ---------------------------------------------------------------------------------------

def photo_folder():
    """The folder holding skimage's astronaut.png and chelsea.png: LAYERWISE_DEMO_PHOTOS (where
    scripts/demo.sh puts the two files, taken from the scikit-image wheel) or the installed
    skimage.data package."""
    folder = os.environ.get("LAYERWISE_DEMO_PHOTOS")
    if folder:
        return folder
    import skimage.data

    return os.path.dirname(skimage.data.__file__)


def write_images(out):
    """Random crops / flips / sizes of two bundled skimage photos; returns the written paths."""
    root = photo_folder()
    rng = random.Random(42)
    paths = []
    for cls, fname in CLASSES.items():
        src = Image.open(os.path.join(root, fname)).convert("RGB")
        W, H = src.size
        folder = os.path.join(out, cls)
        os.makedirs(folder, exist_ok=True)
        for i in range(IMAGES_PER_CLASS):
            w, h = rng.randint(180, 320), rng.randint(180, 320)
            # The largest crop with the target aspect ratio, shrunk by a random factor.
            ch = int(min(H, W * h / w) * rng.uniform(0.45, 1.0))
            cw = min(W, round(ch * w / h))
            x, y = rng.randint(0, W - cw), rng.randint(0, H - ch)
            im = src.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            path = os.path.join(folder, f"{cls}_{i:03d}.jpg")
            im.save(path, quality=90)
            paths.append(path)
            if i == 0:
                gray = os.path.join(folder, f"{cls}_gray.png")
                im.convert("L").save(gray)
                paths.append(gray)
    with open(os.path.join(out, "cat", "corrupt.jpg"), "wb") as f:
        f.write(CORRUPT)
    return paths


# ---------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------

def caffe_preprocess(path):
    """Keras VGG16 'caffe' preprocessing: RGB -> BGR, minus the BGR mean, NCHW [3,224,224]."""
    im = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    bgr = np.asarray(im, dtype=np.float32)[:, :, ::-1] - CAFFE_MEAN_BGR
    return bgr.transpose(2, 0, 1)


def verify(model, image_paths, batch=8):
    """Run the model with every conv layer exposed; report activation statistics.

    The first two images form their own batch and are reported in detail; the statistics
    cover all images, and every layer must have some positive activation on every image.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed here: the model's check is skipped "
              "(the tests run it; layerwise checks every layer when it runs)")
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    layers = [name for name, _, _ in CONVS]
    probe.graph.output.extend([onnx.ValueInfoProto(name=n) for n in layers + ["logits"]])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]

    shapes, frac, mean = {}, {n: [] for n in layers}, {n: [] for n in layers}
    batches = [image_paths[:2]] + [image_paths[i:i + batch] for i in range(2, len(image_paths), batch)]
    for chunk in batches:
        x = np.stack([caffe_preprocess(p) for p in chunk])
        res = dict(zip(names, sess.run(None, {"input": x})))
        if chunk is batches[0]:
            first = res
        for n in layers:
            a = res[n].reshape(len(x), -1)
            shapes[n] = list(res[n].shape[1:])
            frac[n] += list((a > 0).mean(axis=1))
            mean[n] += list(a.mean(axis=1))
    alive = {n: min(frac[n]) for n in layers}
    print(f"per-layer stats over {len(image_paths)} images "
          "(fraction > 0: mean [min over images], mean activation):")
    for n in layers:
        print(f"  {n:13s} [N,{','.join(map(str, shapes[n]))}]  "
              f"frac>0 {np.mean(frac[n]):.3f} [min {alive[n]:.3f}]  mean {np.mean(mean[n]):8.3f}")
    b1, b5 = first["block1_conv1"], first["block5_conv3"]
    print(f"two-image batch: block1_conv1 {list(b1.shape)}, block5_conv3 {list(b5.shape)}, "
          f"predictions {list(first['predictions'].shape)}")
    for i, p in enumerate(image_paths[:2]):
        print(f"  {os.path.basename(p)}: frac>0 block1_conv1 {np.mean(b1[i] > 0):.3f} "
              f"(channel 11, contours: {np.mean(b1[i, 11] > 0):.3f}), "
              f"block5_conv3 {np.mean(b5[i] > 0):.3f}; "
              f"predictions [{', '.join(f'{v:.4f}' for v in first['predictions'][i])}]")
    assert all(v > 0 for v in alive.values()), "a layer is all zero on some image"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    t0 = time.perf_counter()
    out = sys.argv[1]
    models = os.path.join(out, "models")
    os.makedirs(models, exist_ok=True)
    model = build_model()
    model_path = os.path.join(models, "demo_vgg.onnx")
    onnx.save(model, model_path)
    print(f"wrote {model_path} ({os.path.getsize(model_path) / 1e6:.1f} MB)")
    paths = write_images(os.path.join(out, "images"))
    print(f"wrote {len(paths)} images + 1 corrupt file under {os.path.join(out, 'images')}")
    # The first two images of the verification batch: one per class.
    first_cat = next(i for i, p in enumerate(paths) if os.path.basename(p).startswith("cat_000"))
    order = [paths[0], paths[first_cat]] + [p for i, p in enumerate(paths) if i not in (0, first_cat)]
    verify(model, order)
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
