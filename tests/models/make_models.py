#!/usr/bin/env python3
"""Generate the tiny ONNX test models used by layerwise's integration tests.

usage: make_models.py OUT_DIR

Writes into OUT_DIR (created if missing), all opset 17 / IR version 8:

  tiny_nchw.onnx          input "input" [batch,3,8,8] -> Conv/Relu "conv1" [batch,4,8,8]
                          -> Conv(stride 2)/Relu "conv2" [batch,6,4,4] -> GlobalAveragePool "gap"
                          -> Flatten "flat" [batch,6] -> MatMul "logits" [batch,5]
                          -> Softmax(axis=1) "probs" [batch,5]; graph output: "probs" only.
  tiny_nchw_outputs.onnx  the same graph and weights, with graph outputs "conv1", "conv2",
                          "logits" and "probs": an independent reference for the tool's
                          own graph surgery.
  tiny_nhwc.onnx          input [batch,8,8,3] -> Transpose(perm 0,3,1,2) "to_nchw" -> same body
                          (like Keras models exported with tf2onnx).
  tiny_fixed1.onnx        the tiny_nchw graph with a fixed batch of 1: input [1,3,8,8], probs [1,5].
  tiny_symbolic.onnx      the tiny_nchw graph with input [batch,3,height,width] (symbolic H and W).
  tiny_uint8.onnx         input "input" uint8 [batch,8,8,3] (raw bytes, NHWC) -> Cast -> Mul(1/255)
                          -> Transpose -> the tiny body.
  tiny_rank3.onnx         the tiny body plus Reshape(conv2) "seq" [batch,6,16] (rank 3),
                          Transpose(seq) "tokens" [batch,16,6] (token-like) and Shape(input)
                          "input_shape" (int64); graph outputs "probs" and "tokens".
  tiny_external.onnx      tiny_nchw with every initializer in tiny_external.onnx.data
                          (external data, as exported for models over 2 GB).
  vgg16.onnx              the VGG16 conv stack of the Keras application: 13 Conv/Relu layers
                          whose Relu outputs are named block1_conv1 .. block5_conv3, 5 MaxPools,
                          GlobalAveragePool, MatMul, Softmax "predictions"; input [batch,3,224,224];
                          random He weights (seed 7), about 59 MB.
  tiny_vit.onnx           a tiny ViT (tiny_vit.py): input "pixel_values" [batch,3,8,8], a 2 x 2
                          patch convolution, a class token and 4 x 4 patches, 2 blocks whose
                          outputs "block0", "block1" are [batch,17,8]; graph output "predictions".
  tiny_vit_outputs.onnx   the same, with "block0" and "block1" graph outputs too (the reference).
  tiny_vit_reg.onnx       the same with 5 prefix tokens (a class token and 4 registers, as
                          DINOv2 with registers): blocks [batch,21,8]; "block*" outputs too.
  tiny_vit_seq.onnx       the class-token ViT sequence-first (as OpenAI CLIP's transformer):
                          blocks [17,batch,8]; "block*" outputs too.
  identity_nchw.onnx      input [batch,3,height,width] -> Identity -> "pixels".
  identity_nhwc.onnx      input [batch,height,width,3] -> Identity -> "pixels".

Weights are drawn once from numpy.random.default_rng(1) (weights normal*0.5, biases
normal*0.1) and shared by the four tiny models, so their outputs agree exactly.
Each model is checked with onnx.checker and run once in onnxruntime on a random input;
finally the four tiny models are checked to give the same "probs" on the same input, and the tiny
ViTs' blocks against their forward pass in numpy (tiny_vit.forward).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import tiny_vit

OPSET = 17
IR_VERSION = 8
FLOAT = TensorProto.FLOAT


def make_weights():
    """Draw the tiny CNN's parameters once (deterministic, seed 1)."""
    rng = np.random.default_rng(1)

    def normal(shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return {
        "conv1/W": normal((4, 3, 3, 3), 0.5),
        "conv1/B": normal((4,), 0.1),
        "conv2/W": normal((6, 4, 3, 3), 0.5),
        "conv2/B": normal((6,), 0.1),
        "fc/W": normal((6, 5), 0.5),
    }


def tiny_body(x, weights):
    """Nodes and initializers of the tiny CNN body, reading NCHW tensor `x`; ends in "probs"."""
    nodes = [
        helper.make_node("Conv", [x, "conv1/W", "conv1/B"], ["conv1/conv"], name="conv1/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv1/conv"], ["conv1"], name="conv1/Relu"),
        helper.make_node("Conv", ["conv1", "conv2/W", "conv2/B"], ["conv2/conv"], name="conv2/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv2/conv"], ["conv2"], name="conv2/Relu"),
        helper.make_node("GlobalAveragePool", ["conv2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("MatMul", ["flat", "fc/W"], ["logits"], name="fc/MatMul"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    inits = [numpy_helper.from_array(w, name) for name, w in weights.items()]
    return nodes, inits


def finish(graph):
    """Wrap a graph into a checked opset-17 / IR-8 model."""
    model = helper.make_model(graph, producer_name="layerwise-tests",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def tiny_model(name, weights, batch="batch", nhwc=False, extra_outputs=False, size=(8, 8)):
    """The tiny CNN; NHWC input gets a leading Transpose, extra_outputs exposes inner tensors,
    size gives the input's H and W (ints, or names for symbolic dimensions)."""
    h, w = size
    if nhwc:
        inp = helper.make_tensor_value_info("input", FLOAT, [batch, h, w, 3])
        pre = [helper.make_node("Transpose", ["input"], ["to_nchw"], name="to_nchw", perm=[0, 3, 1, 2])]
        x = "to_nchw"
    else:
        inp = helper.make_tensor_value_info("input", FLOAT, [batch, 3, h, w])
        pre, x = [], "input"
    nodes, inits = tiny_body(x, weights)
    names = ["conv1", "conv2", "logits", "probs"] if extra_outputs else ["probs"]
    outputs = [helper.make_tensor_value_info(n, FLOAT, TINY_SHAPES[n](batch)) for n in names]
    return finish(helper.make_graph(pre + nodes, name, [inp], outputs, inits))


TINY_SHAPES = {
    "conv1": lambda n: [n, 4, 8, 8],
    "conv2": lambda n: [n, 6, 4, 4],
    "logits": lambda n: [n, 5],
    "probs": lambda n: [n, 5],
}


def uint8_model(name, weights):
    """Raw NHWC bytes in, scaled to 0..1 inside the graph (as some TF image models do)."""
    inp = helper.make_tensor_value_info("input", TensorProto.UINT8, ["batch", 8, 8, 3])
    scale = numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale")
    pre = [
        helper.make_node("Cast", ["input"], ["as_float"], name="cast", to=FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"], name="scale"),
        helper.make_node("Transpose", ["scaled"], ["to_nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
    ]
    nodes, inits = tiny_body("to_nchw", weights)
    out = helper.make_tensor_value_info("probs", FLOAT, ["batch", 5])
    return finish(helper.make_graph(pre + nodes, name, [inp], [out], inits + [scale]))


def rank3_model(name, weights):
    """The tiny body with rank-3 tensors after it and an int64 tensor; two graph outputs."""
    inp = helper.make_tensor_value_info("input", FLOAT, ["batch", 3, 8, 8])
    nodes, inits = tiny_body("input", weights)
    inits.append(numpy_helper.from_array(np.array([0, 6, 16], dtype=np.int64), "seq_shape"))
    nodes += [
        helper.make_node("Reshape", ["conv2", "seq_shape"], ["seq"], name="to_seq"),
        helper.make_node("Transpose", ["seq"], ["tokens"], name="to_tokens", perm=[0, 2, 1]),
        helper.make_node("Shape", ["input"], ["input_shape"], name="shape"),
    ]
    outputs = [helper.make_tensor_value_info("probs", FLOAT, ["batch", 5]),
               helper.make_tensor_value_info("tokens", FLOAT, ["batch", 16, 6])]
    return finish(helper.make_graph(nodes, name, [inp], outputs, inits))


def vgg16_model(name):
    """The VGG16 convolutional stack with Keras' layer names and random He weights."""
    rng = np.random.default_rng(7)
    nodes, inits, x, cin = [], [], "input", 3
    for b, (convs, cout) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
        for i in range(1, convs + 1):
            layer = f"block{b}_conv{i}"
            w = rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / (cin * 9)))
            inits += [numpy_helper.from_array(w, layer + "/kernel"),
                      numpy_helper.from_array(np.zeros(cout, np.float32), layer + "/bias")]
            nodes += [
                helper.make_node("Conv", [x, layer + "/kernel", layer + "/bias"], [layer + "/conv"],
                                 name=layer + "/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", [layer + "/conv"], [layer], name=layer + "/Relu"),
            ]
            x, cin = layer, cout
        nodes.append(helper.make_node("MaxPool", [x], [f"block{b}_pool"], name=f"block{b}_pool",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        x = f"block{b}_pool"
    fc = rng.standard_normal((512, 10), dtype=np.float32) * np.float32(0.05)
    inits.append(numpy_helper.from_array(fc, "fc/kernel"))
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc/kernel"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["predictions"], name="predictions", axis=1),
    ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("predictions", FLOAT, ["batch", 10])], inits)
    return finish(graph)


def identity_model(name, nhwc):
    """Identity over a float image batch with symbolic batch/height/width."""
    shape = ["batch", "height", "width", 3] if nhwc else ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["pixels"], name="identity")], name,
        [helper.make_tensor_value_info("input", FLOAT, shape)],
        [helper.make_tensor_value_info("pixels", FLOAT, shape)])
    return finish(graph)


def concrete(dims, sizes):
    """Replace symbolic dims by concrete sizes for a smoke-test input."""
    return [d if isinstance(d, int) else sizes[d] for d in dims]


def smoke_test(path, rng):
    """Load `path` in onnxruntime, run it on a random input and describe the outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    shape = concrete(inp.shape, {"batch": 2, "height": 5, "width": 7})
    if inp.type == "tensor(uint8)":
        x = rng.integers(0, 256, shape).astype(np.uint8)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    outs = sess.run(None, {inp.name: x})
    desc = ", ".join(f"{o.name}{list(v.shape)}" for o, v in zip(sess.get_outputs(), outs))
    return f"{os.path.basename(path)}: input{list(x.shape)} -> {desc}"


def cross_check(out, rng):
    """The tiny models share weights: their "probs" must agree on the same images."""
    import onnxruntime as ort

    def run(fname, x):
        sess = ort.InferenceSession(os.path.join(out, fname), providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": x})

    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    conv1, conv2, _, probs = run("tiny_nchw_outputs.onnx", x)
    np.testing.assert_allclose(run("tiny_nchw.onnx", x)[0], probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run("tiny_nhwc.onnx", x.transpose(0, 2, 3, 1))[0], probs,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run("tiny_fixed1.onnx", x[:1])[0], probs[:1], rtol=1e-5, atol=1e-6)
    print(f"cross-check ok: probs agree across tiny models; fraction > 0: "
          f"conv1 {np.mean(conv1 > 0):.2f}, conv2 {np.mean(conv2 > 0):.2f}")


def vit_check(out, vits, rng):
    """Each tiny ViT's blocks and predictions equal its numpy forward pass."""
    import onnxruntime as ort

    x = rng.standard_normal((3, 3, tiny_vit.SIZE, tiny_vit.SIZE)).astype(np.float32)
    for fname, (weights, seq_first) in vits.items():
        sess = ort.InferenceSession(os.path.join(out, fname), providers=["CPUExecutionProvider"])
        predictions, *blocks = sess.run(None, {"pixel_values": x})
        want_blocks, want = tiny_vit.forward(weights, x)
        np.testing.assert_allclose(predictions, want, rtol=1e-4, atol=1e-6)
        for got, block in zip(blocks, want_blocks):
            got = got.transpose(1, 0, 2) if seq_first else got
            np.testing.assert_allclose(got, block, rtol=1e-4, atol=1e-5)
        print(f"{fname}: blocks and predictions equal the numpy forward pass")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    weights = make_weights()
    models = {
        "tiny_nchw.onnx": tiny_model("tiny_nchw", weights),
        "tiny_nchw_outputs.onnx": tiny_model("tiny_nchw_outputs", weights, extra_outputs=True),
        "tiny_nhwc.onnx": tiny_model("tiny_nhwc", weights, nhwc=True),
        "tiny_fixed1.onnx": tiny_model("tiny_fixed1", weights, batch=1),
        "tiny_symbolic.onnx": tiny_model("tiny_symbolic", weights, size=("height", "width")),
        "tiny_uint8.onnx": uint8_model("tiny_uint8", weights),
        "tiny_rank3.onnx": rank3_model("tiny_rank3", weights),
        "vgg16.onnx": vgg16_model("vgg16"),
        "identity_nchw.onnx": identity_model("identity_nchw", nhwc=False),
        "identity_nhwc.onnx": identity_model("identity_nhwc", nhwc=True),
    }
    vit = tiny_vit.make_weights(prefix=1)
    registers = tiny_vit.make_weights(prefix=5, seed=4)
    vits = {
        "tiny_vit_outputs.onnx": (vit, False),
        "tiny_vit_reg.onnx": (registers, False),
        "tiny_vit_seq.onnx": (vit, True),
    }
    models["tiny_vit.onnx"] = finish(tiny_vit.model("tiny_vit", vit))
    for fname, (vit_weights, seq_first) in vits.items():
        graph = tiny_vit.model(fname[:-5], vit_weights, seq_first=seq_first, outputs=True)
        models[fname] = finish(graph)
    rng = np.random.default_rng(0)
    for fname, model in models.items():
        path = os.path.join(out, fname)
        onnx.save(model, path)
        print(smoke_test(path, rng))
    external = tiny_model("tiny_external", weights)
    onnx.save(external, os.path.join(out, "tiny_external.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="tiny_external.onnx.data", size_threshold=0)
    print(smoke_test(os.path.join(out, "tiny_external.onnx"), rng))
    cross_check(out, rng)
    vit_check(out, vits, rng)


if __name__ == "__main__":
    main()
