#!/usr/bin/env python3
"""The ceiling on a chosen execution provider: ONNX Runtime alone, on pre-decoded batches, with
the same tensors exposed as graph outputs (and copied to the host, as any caller gets them), after
one warm-up batch. ../shared/bench/peer_ort.py `bare` is the same on the CPU provider only.

usage: ceiling.py MODEL IMAGES_DIR --outputs a,b --provider cpu|cuda|tensorrt [--device N]
         [--size S] [--scale F] [--batch B] [--threads T]
Prints 'images_per_s=X' last. Needs onnxruntime-gpu for cuda and tensorrt.
"""
import argparse, glob, os, time
import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("images")
ap.add_argument("--outputs", required=True); ap.add_argument("--provider", default="cpu", choices=PROVIDERS)
ap.add_argument("--device", type=int, default=0); ap.add_argument("--size", type=int, default=224)
ap.add_argument("--scale", type=float, default=1 / 255); ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--threads", type=int, default=0)
a = ap.parse_args()

names = a.outputs.split(",")
m = onnx.load(a.model)
have = {o.name for o in m.graph.output}
m.graph.output.extend([onnx.ValueInfoProto(name=n) for n in names if n not in have])
so = ort.SessionOptions()
if a.threads:
    so.intra_op_num_threads = a.threads
wanted = PROVIDERS[a.provider]
if wanted not in ort.get_available_providers():
    raise SystemExit(f"ceiling.py: this onnxruntime has no {wanted} (it has {ort.get_available_providers()}); "
                     "install onnxruntime-gpu for cuda and tensorrt")
options = [{} if a.provider == "cpu" else {"device_id": str(a.device)}]
sess = ort.InferenceSession(m.SerializeToString(), so, providers=[wanted], provider_options=options)
inp = sess.get_inputs()[0].name

paths = sorted(glob.glob(os.path.join(a.images, "**", "*.jpg"), recursive=True))
def load(p):
    x = np.asarray(Image.open(p).convert("RGB").resize((a.size, a.size), Image.BILINEAR), dtype=np.float32)
    return (x * a.scale).transpose(2, 0, 1)
pre = [np.stack([load(p) for p in paths[i:i + a.batch]]) for i in range(0, len(paths), a.batch)]
sess.run(names, {inp: pre[0]})
t0 = time.perf_counter()
for x in pre:
    sess.run(names, {inp: x})
dt = time.perf_counter() - t0
print(f"provider={a.provider} images={len(paths)} seconds={dt:.3f}")
print(f"images_per_s={len(paths) / dt:.3f}")
