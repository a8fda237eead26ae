"""A tiny vision transformer built with the `onnx` package, and its forward pass in numpy.

The structure is a ViT's, at toy size: a patch convolution (kernel = stride = PATCH), PREFIX
tokens (a class token, then registers) before the GRID x GRID patches, learned position
embeddings, DEPTH pre-norm blocks (multi-head attention, GELU MLP, LayerNormalization), a final
norm and a head on the class token. Block i's output (the residual sum that ends it) is named
"block{i}": [batch, PREFIX + GRID * GRID, DIM], or [tokens, batch, DIM] in the sequence-first
variant (as OpenAI CLIP's transformer runs).
"""
import math

import numpy as np
from onnx import TensorProto, helper, numpy_helper

SIZE = 8
PATCH = 2
GRID = SIZE // PATCH
DIM = 8
HEADS = 2
MLP = 16
DEPTH = 2
CLASSES = 5
EPS = 1e-6
FLOAT = TensorProto.FLOAT


def make_weights(prefix, seed=3):
    """The parameters of a tiny ViT with `prefix` prefix tokens (deterministic)."""
    rng = np.random.default_rng(seed)

    def normal(shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {
        "patch/w": normal((DIM, 3, PATCH, PATCH), 0.5),
        "patch/b": normal((DIM,), 0.1),
        "prefix": normal((1, prefix, DIM), 0.5),
        "pos": normal((1, prefix + GRID * GRID, DIM), 0.2),
        "head/w": normal((DIM, CLASSES), 0.5),
    }
    for name in [f"b{i}/norm{j}" for i in range(DEPTH) for j in (1, 2)] + ["final"]:
        w[name + "/scale"] = (1 + normal((DIM,), 0.1)).astype(np.float32)
        w[name + "/bias"] = normal((DIM,), 0.1)
    for i in range(DEPTH):
        for name, (cin, cout) in {"q": (DIM, DIM), "k": (DIM, DIM), "v": (DIM, DIM),
                                  "proj": (DIM, DIM), "fc1": (DIM, MLP), "fc2": (MLP, DIM)}.items():
            w[f"b{i}/{name}/w"] = normal((cin, cout), 0.4)
            w[f"b{i}/{name}/b"] = normal((cout,), 0.05)
    return w


def model(name, weights, seq_first=False, outputs=False):
    """The ONNX model: input "pixel_values" [batch, 3, SIZE, SIZE]; graph output "predictions",
    and with `outputs` the blocks' outputs too."""
    prefix = weights["prefix"].shape[1]
    tokens = prefix + GRID * GRID
    nodes = []
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]

    def const(name, values, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], name=out, **kw))
        return out

    def linear(x, name):
        return node("Add", [node("MatMul", [x, name + "/w"], name + "/matmul"), name + "/b"],
                    name + "/add")

    def norm(x, name):
        return node("LayerNormalization", [x, name + "/scale", name + "/bias"], name + "/ln",
                    axis=-1, epsilon=EPS)

    const("shape/patches", [0, DIM, GRID * GRID])
    const("shape/heads", [0, 0, HEADS, DIM // HEADS])
    const("shape/merge", [0, 0, DIM])
    const("slice/0", [0])
    const("slice/1", [1])
    const("axes/1", [1])
    x = node("Conv", ["pixel_values", "patch/w", "patch/b"], "patch/conv",
             kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    x = node("Transpose", [node("Reshape", [x, "shape/patches"], "patch/flat")], "patch/tokens",
             perm=[0, 2, 1])
    # The prefix tokens, broadcast over the batch: 0 * the first patch + the learned tokens.
    first = node("Slice", [x, "slice/0", "slice/1", "axes/1"], "prefix/first")
    zero = node("Mul", [first, const("zero", 0.0, np.float32)], "prefix/zero")
    pre = node("Add", [zero, "prefix"], "prefix/batch")
    x = node("Concat", [pre, x], "tokens", axis=1)
    x = node("Add", [x, "pos"], "embedded")
    if seq_first:
        x = node("Transpose", [x], "embedded/seq", perm=[1, 0, 2])
    scale = const("attn/scale", (DIM // HEADS) ** -0.5, np.float32)
    half, one = const("half", 0.5, np.float32), const("one", 1.0, np.float32)
    rsqrt2 = const("rsqrt2", 0.5 ** 0.5, np.float32)
    for i in range(DEPTH):
        b = f"b{i}"
        # A sequence-first block works batch-first inside, as exported attention does.
        inp = node("Transpose", [x], b + "/batch_first", perm=[1, 0, 2]) if seq_first else x
        h = norm(inp, b + "/norm1")

        def heads_of(t, perm):
            split = node("Reshape", [t, "shape/heads"], t + "/split")
            return node("Transpose", [split], t + "/heads", perm=perm)

        q = heads_of(linear(h, b + "/q"), [0, 2, 1, 3])
        k = heads_of(linear(h, b + "/k"), [0, 2, 3, 1])
        v = heads_of(linear(h, b + "/v"), [0, 2, 1, 3])
        s = node("Mul", [node("MatMul", [q, k], b + "/scores"), scale], b + "/scaled")
        a = node("Softmax", [s], b + "/attn", axis=-1)
        o = node("Transpose", [node("MatMul", [a, v], b + "/context")], b + "/context_t",
                 perm=[0, 2, 1, 3])
        o = node("Reshape", [o, "shape/merge"], b + "/merged")
        r = node("Add", [inp, linear(o, b + "/proj")], b + "/residual1")
        h = linear(norm(r, b + "/norm2"), b + "/fc1")
        g = node("Erf", [node("Mul", [h, rsqrt2], b + "/gelu_in")], b + "/erf")
        g = node("Mul", [node("Mul", [h, half], b + "/half_x"),
                         node("Add", [g, one], b + "/erf1")], b + "/gelu")
        out = f"block{i}"
        if seq_first:
            r2 = node("Add", [r, linear(g, b + "/fc2")], b + "/residual2")
            x = node("Transpose", [r2], out, perm=[1, 0, 2])
        else:
            x = node("Add", [r, linear(g, b + "/fc2")], out)
    if seq_first:
        x = node("Transpose", [x], "final/batch_first", perm=[1, 0, 2])
    x = norm(x, "final")
    c = node("Squeeze", [node("Slice", [x, "slice/0", "slice/1", "axes/1"], "cls/slice"),
                         "axes/1"], "cls")
    node("Softmax", [node("MatMul", [c, "head/w"], "logits")], "predictions", axis=-1)
    block = ["tokens_", "batch", DIM] if seq_first else ["batch", "tokens_", DIM]
    block = [tokens if d == "tokens_" else d for d in block]
    outs = [helper.make_tensor_value_info("predictions", FLOAT, ["batch", CLASSES])]
    if outputs:
        outs += [helper.make_tensor_value_info(f"block{i}", FLOAT, block) for i in range(DEPTH)]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(
        "pixel_values", FLOAT, ["batch", 3, SIZE, SIZE])], outs, inits)
    return graph


def forward(weights, x):
    """The blocks' outputs ([batch, tokens, DIM] each) and the predictions, in numpy (float64)."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    n = x.shape[0]
    patches = x.reshape(n, 3, GRID, PATCH, GRID, PATCH).transpose(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(n, GRID * GRID, 3 * PATCH * PATCH)
    t = patches @ w["patch/w"].reshape(DIM, -1).T + w["patch/b"]
    t = np.concatenate([np.broadcast_to(w["prefix"], (n,) + w["prefix"].shape[1:]), t], axis=1)
    t = t + w["pos"]

    def norm(v, name):
        mean = v.mean(-1, keepdims=True)
        var = ((v - mean) ** 2).mean(-1, keepdims=True)
        return (v - mean) / np.sqrt(var + EPS) * w[name + "/scale"] + w[name + "/bias"]

    def linear(v, name):
        return v @ w[name + "/w"] + w[name + "/b"]

    erf = np.vectorize(math.erf)
    blocks = []
    for i in range(DEPTH):
        b = f"b{i}"
        h = norm(t, b + "/norm1")
        split = lambda v: v.reshape(n, -1, HEADS, DIM // HEADS).transpose(0, 2, 1, 3)
        q, k, v = (split(linear(h, f"{b}/{p}")) for p in "qkv")
        s = q @ k.transpose(0, 1, 3, 2) * (DIM // HEADS) ** -0.5
        a = np.exp(s - s.max(-1, keepdims=True))
        a = a / a.sum(-1, keepdims=True)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(n, -1, DIM)
        t = t + linear(o, b + "/proj")
        h = linear(norm(t, b + "/norm2"), b + "/fc1")
        t = t + linear(0.5 * h * (1 + erf(h / math.sqrt(2))), b + "/fc2")
        blocks.append(t)
    c = norm(t, "final")[:, 0]
    logits = c @ w["head/w"]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return blocks, e / e.sum(-1, keepdims=True)
