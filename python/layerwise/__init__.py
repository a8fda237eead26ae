"""layerwise: what the layers of a vision model respond to, across whole image datasets.

The same Rust engine as the ``layerwise`` command, in-process:

>>> import layerwise as lw
>>> lw.layers("model.onnx")                         # pyarrow.Table of the model's tensors
>>> acts = lw.extract("model.onnx", ["cat.jpg"], layers=["block1_conv1"],
...                   preprocess={"size": [224, 224]})
>>> acts["block1_conv1"].shape                      # numpy float32 [images, ...]
>>> run = lw.run("pipelines/exp.toml")              # writes what `layerwise run` writes
>>> run.stats(layer="block1_conv1")                 # pyarrow.Table (pl.from_arrow for Polars)

Errors are :class:`ConfigError` (a ``ValueError``: what the command exits 2 for) or
:class:`RunError` (a ``RuntimeError``: anything else).
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._native import ConfigError, RunError, __version__

__all__ = [
    "ConfigError",
    "RunError",
    "Activations",
    "Run",
    "PNG",
    "layers",
    "extract",
    "run",
    "open",
    "__version__",
]

# The ONNX Runtime library is looked for in the environment this interpreter runs in (the
# `onnxruntime` wheel's), as the `layerwise` command looks in the environment it is installed in.
_native.set_executable(sys.executable)

PathLike = Union[str, "os.PathLike[str]"]


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ImportError(
            "layerwise returns its tables as pyarrow Tables: pip install pyarrow"
        ) from None
    return pyarrow


def _table(stream: Any) -> Any:
    """A pyarrow Table from the engine's Arrow C stream (no copy)."""
    return _pyarrow().table(stream)


def layers(model: PathLike, shapes: bool = False) -> Any:
    """The tensors of a model (or a pipeline config) that can be extracted, as ``layerwise
    layers`` lists them.

    Returns a ``pyarrow.Table``, one row per graph input and tensor in graph order, with the
    columns ``index`` (what ``{index}`` and ``op:Type#n`` count; null for inputs), ``tensor``,
    ``op``, ``node``, ``dtype``, ``shape``, ``kind`` (``input``, ``tensor`` or ``output``),
    ``tokens`` (how a transformer's tokens lie over the image, when probed) and ``output``.
    ``shapes=True`` probes a model's real shapes with one zero input (a config always does).
    """
    return _table(_native.layers(os.fspath(model), shapes))


class Activations(dict):
    """What :func:`extract` returns: a ``dict`` of layer name -> ``numpy.ndarray``
    (float32, ``[images, ...]`` as the model produced it, a sequence-first tensor's batch axis
    moved to the front).

    Row ``i`` of every array is image ``indices[i]`` of the images given; ``errors`` lists the
    images left out with ``errors="skip"``, as ``(index, reason)``.
    """

    indices: List[int]
    errors: List[Tuple[int, str]]

    def __init__(self, arrays: Mapping[str, Any], indices: List[int], errors: List[Tuple[int, str]]):
        super().__init__(arrays)
        self.indices = indices
        self.errors = errors


def _images(images: Any) -> Dict[str, Any]:
    """The images as paths or as RGB uint8 arrays (height x width x 3), for the engine."""
    import numpy as np

    if isinstance(images, (str, os.PathLike)):
        return {"paths": [os.fspath(images)]}
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(
                f"an image array must be uint8 RGB (0..255), not {images.dtype}: convert it "
                "with .astype(numpy.uint8) if its values are pixels"
            )
        if images.ndim == 3:
            images = images[np.newaxis]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise TypeError(
                f"an image array must be [N, H, W, 3] (or one [H, W, 3]), not {list(images.shape)}"
            )
        images = np.ascontiguousarray(images)
        return {"pixels": [images[i] for i in range(images.shape[0])]}
    items = list(images)
    if all(isinstance(i, (str, os.PathLike)) for i in items):
        return {"paths": [os.fspath(i) for i in items]}
    pixels = []
    for n, item in enumerate(items):
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim != 3 or item.shape[-1] != 3:
                raise TypeError(
                    f"images[{n}] must be a uint8 [H, W, 3] array, not {item.dtype} "
                    f"{list(item.shape)}"
                )
            pixels.append(np.ascontiguousarray(item))
        elif hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image
            pixels.append(np.asarray(item.convert("RGB"), dtype=np.uint8))
        else:
            raise TypeError(
                f"images[{n}] is a {type(item).__name__}: give paths, PIL images or uint8 "
                "[H, W, 3] arrays (not mixed with paths)"
            )
    return {"pixels": pixels}


def extract(
    model: PathLike,
    images: Any,
    layers: Union[str, Sequence[Union[str, Mapping[str, Any]]]],
    preprocess: Optional[Mapping[str, Any]] = None,
    batch_size: int = 16,
    threads: Optional[int] = None,
    provider: str = "cpu",
    errors: str = "raise",
    **run: Any,
) -> Activations:
    """The full activations of ``layers`` for ``images``, in memory, with no file written.

    The engine of ``layerwise run``: the same decoding, preprocessing, selectors, session
    options and runtime library. Memory is the result plus the batches in flight.

    Args:
        model: the ONNX model.
        images: image files (a list of ``str`` or ``os.PathLike``), a uint8 numpy array
            ``[N, H, W, 3]`` (RGB), or a list of PIL images or uint8 ``[H, W, 3]`` arrays.
        layers: tensor names, globs (``"block*_conv*"``) or selectors (``"op:Conv#-1"``), as
            a config's ``tensor`` key takes them, or whole ``[[layers]]`` tables as dicts. A
            glob gives one entry per tensor it matches.
        preprocess: the ``[preprocess]`` keys (``size``, ``resize``, ``layout``, ``mean``,
            ``std``, ``scale``, ``channel_order`` ...).
        batch_size, threads, provider: the ``[run]`` keys of the same names (``threads=None``:
            the config's default, every CPU); more ``[run]`` keys may be given as keywords
            (``device=1``, ``onnxruntime="/path/libonnxruntime.so"``).
        errors: ``"raise"`` (an image that cannot be used raises :class:`RunError` with its
            index and reason) or ``"skip"`` (it is left out and listed in ``.errors``).

    Returns:
        :class:`Activations`, a dict of layer name -> float32 ``numpy.ndarray`` ``[N, ...]``.

    Raises:
        ConfigError: a missing layer, a bad preprocess key, a model that cannot be read ...
            with the command's message.
        RunError: an image that cannot be used (``errors="raise"``), the runtime failing.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f'errors must be "raise" or "skip", not {errors!r}')
    if isinstance(layers, (str, Mapping)):
        layers = [layers]
    options = dict(run, batch_size=batch_size, threads=threads, provider=provider)
    arrays, indices, failed = _native.extract(
        os.fspath(model),
        [json.dumps(layer) for layer in layers],
        json.dumps(dict(preprocess or {})),
        json.dumps(options),
        skip=errors == "skip",
        **_images(images),
    )
    return Activations(arrays, list(indices), [tuple(e) for e in failed])


class _Progress:
    """Progress of a run where stderr is no terminal (a notebook): tqdm's bar when tqdm is
    installed, else a line every few seconds."""

    def __init__(self) -> None:
        self._bar = None
        self._last = 0.0
        try:
            from tqdm.auto import tqdm

            self._tqdm = tqdm
        except ImportError:
            self._tqdm = None

    def __call__(self, done: int, total: int, errors: int) -> None:
        if self._tqdm is not None:
            if self._bar is None:
                self._bar = self._tqdm(total=total or None, unit="images")
            if total and self._bar.total != total:  # known once the listing is done
                self._bar.total = total
            self._bar.update(done - self._bar.n)
            if errors:
                self._bar.set_postfix(errors=errors)
        elif time.monotonic() - self._last >= 5 and done:
            self._last = time.monotonic()
            of = f"/{total}" if total else ""
            print(f"layerwise: {done}{of} images, {errors} errors", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run(
    config: Union[PathLike, Mapping[str, Any]],
    out: Optional[PathLike] = None,
    shard: Optional[str] = None,
    limit: Optional[int] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> "Run":
    """Runs a pipeline config as ``layerwise run`` does, and opens the run.

    It writes exactly what the command writes (the same files, manifest, resumable parts and
    ``run.json``); a rerun resumes. ``config`` is a TOML file, or a dict with the same keys
    (relative paths in a dict are taken from the current folder). ``shard="2/8"`` does one
    shard, as ``--shard``; without it, a Slurm array task or Kubernetes Indexed Job does its
    own, as the command does. ``progress`` shows a bar in a terminal, or in a notebook (tqdm's
    when installed). ``KeyboardInterrupt`` (Ctrl-C, the notebook's stop button) stops after the
    batch in progress: the committed parts are kept, and running it again resumes.

    Raises:
        ConfigError: a mistake in the config or model, an output folder holding another run.
        RunError: I/O or the runtime failing, or more images failed than
            ``[run] max_error_fraction`` allows (every part is written).
    """
    if isinstance(config, Mapping):
        text, source = True, _native.config_toml(json.dumps(dict(config)))
    else:
        text, source = False, os.fspath(config)
    terminal = sys.stderr.isatty()
    watcher = _Progress() if progress and not terminal else None
    try:
        record = _native.run(
            source,
            text=text,
            out=None if out is None else os.fspath(out),
            shard=shard,
            limit=limit,
            overwrite=overwrite,
            quiet=not (progress and terminal),
            progress=watcher,
        )
    finally:
        if watcher is not None:
            watcher.close()
    folder = json.loads(record)["config"]["output"]["dir"]
    return open(folder)


class PNG(bytes):
    """A PNG file's bytes, shown as the picture in Jupyter; ``save(path)`` writes it."""

    def _repr_png_(self) -> bytes:
        return bytes(self)

    def save(self, path: PathLike) -> None:
        """Writes the PNG to ``path``."""
        with builtins.open(os.fspath(path), "wb") as f:
            f.write(self)


class Run:
    """A run, finished or partial, opened for reading (:func:`open`, or what :func:`run`
    returns). Its tables are pyarrow Tables read from its committed part files."""

    def __init__(self, location: PathLike):
        self.location = os.fspath(location)
        self._run = _native.Run(self.location)
        facts = json.loads(self._run.facts())
        #: The run's name.
        self.name: str = facts["name"]
        #: Whether every part is committed (``run.json`` written).
        self.complete: bool = facts["complete"]
        #: Parts committed, and parts of the whole run.
        self.parts: Tuple[int, int] = tuple(facts["parts"])
        #: The layers, as ``run.json`` records them (name, tensor, kind, shape, kept ...).
        self.layers: List[Dict[str, Any]] = facts["layers"]
        #: The config it ran, paths resolved.
        self.config: Dict[str, Any] = facts["config"]
        #: What ran it: ``tool``, ``model``, ``onnxruntime``, ``started_at``, ``timings``.
        self.facts: Dict[str, Any] = facts

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"{self.parts[0]} of {self.parts[1]} parts"
        names = ", ".join(layer["name"] for layer in self.layers)
        return f"<layerwise.Run {self.name!r} at {self.location!r}: {state}; layers {names}>"

    def _read(self, table: str, layer: Optional[str]) -> Any:
        return _table(self._run.table(table, layer))

    def images(self) -> Any:
        """The ``images`` table: one row per input sample, with its status."""
        return self._read("images", None)

    def stats(self, layer: Optional[str] = None) -> Any:
        """The ``stats`` table (one row per image, layer and channel), or one layer's rows."""
        return self._read("stats", layer)

    def maps(self, layer: Optional[str] = None) -> Any:
        """The ``maps`` table (the kept channels' maps), or one layer's rows."""
        return self._read("maps", layer)

    def vectors(self, layer: Optional[str] = None) -> Any:
        """The ``vectors`` table (one row per image and vector layer), or one layer's rows."""
        return self._read("vectors", layer)

    def top(self, layer: Optional[str] = None) -> Any:
        """The ``top`` table (each channel's best images with their maps), or one layer's."""
        return self._read("top", layer)

    def positions(self, layer: Optional[str] = None) -> Any:
        """The ``positions`` table (per-position vectors), or one layer's rows."""
        return self._read("positions", layer)

    def map(self, layer: str, image: Union[int, str], channels: Optional[Iterable[int]] = None) -> Any:
        """One image's stored maps of ``layer``: a float32 ``numpy.ndarray``
        ``[channels, height, width]``, every kept channel in ``keep`` order or ``channels``
        (each must be stored). ``image`` is an ``image_id`` or a path as the images table
        has it."""
        wanted = None if channels is None else [int(c) for c in channels]
        array, _ = self._run.map(layer, str(image), wanted)
        return array

    def plot_channels(
        self,
        layer: str,
        image: Union[int, str],
        channels: Optional[Iterable[int]] = None,
        cols: int = 7,
        levels: Optional[int] = None,
        shared_scale: bool = False,
    ) -> PNG:
        """``layerwise plot channels``: one image's stored maps in a grid, as :class:`PNG`."""
        wanted = None if channels is None else [int(c) for c in channels]
        return PNG(self._run.plot_channels(layer, str(image), wanted, cols, levels, shared_scale))

    def plot_images(
        self,
        layer: str,
        channel: int,
        images: Optional[str] = None,
        cols: int = 7,
        levels: Optional[int] = None,
        shared_scale: bool = False,
    ) -> PNG:
        """``layerwise plot images``: one channel across images (``images``: ``"0..49"`` or
        ``"label=cat"``; default the first 49), as :class:`PNG`."""
        return PNG(self._run.plot_images(layer, channel, images, cols, levels, shared_scale))

    def plot_top(
        self,
        layer: str,
        channel: int,
        k: int = 16,
        cols: int = 7,
        levels: Optional[int] = None,
        shared_scale: bool = False,
    ) -> PNG:
        """``layerwise plot top``: the ``k`` images that excite a channel most, each under its
        map, as :class:`PNG`."""
        return PNG(self._run.plot_top(layer, channel, k, cols, levels, shared_scale))

    def compare(
        self,
        other: Optional["Run"] = None,
        layers: Optional[Iterable[str]] = None,
        features: str = "mean",
        rsa: Optional[int] = None,
        seed: int = 0,
        out: Optional[PathLike] = None,
    ) -> "Comparison":
        """``layerwise compare``: the linear CKA, standard and debiased, of every pair of this
        run's layers, or of its layers with ``other``'s over the images ok in both (matched by
        source and path), from what the runs stored (no model pass). ``features``: ``"mean"``
        or ``"max"`` of each channel, or ``"prefix"`` (a token layer's class token); a vector
        layer is its vector. ``rsa=N`` adds RSA on a sample of N images drawn by ``seed``.
        ``out``: a folder to write ``similarity.parquet``, ``similarity.png`` and
        ``compare.json`` into as well."""
        names = None if layers is None else [str(name) for name in layers]
        native = None if other is None else other._run
        where = None if out is None else os.fspath(out)
        stream, png, record = self._run.compare(native, names, features, rsa, seed, where)
        return Comparison(_table(stream), PNG(png), json.loads(record))

    def report(self, out: Optional[PathLike] = None, compare: Optional[PathLike] = None) -> str:
        """``layerwise report``: writes the atlas (to ``out``, default ``RUN/report``) and
        returns the path of its ``index.html``. Its index shows how the layers relate (their
        linear CKA), and with ``compare`` (a folder :meth:`compare` or ``layerwise compare``
        wrote into) that comparison's matrix too."""
        where = None if out is None else os.fspath(out)
        return os.fspath(self._run.report(where, None if compare is None else os.fspath(compare)))


class Comparison:
    """What :meth:`Run.compare` found: ``table`` (the ``similarity`` rows, a pyarrow Table),
    ``heat_map`` (:class:`PNG`, shown by a notebook), ``record`` (``compare.json``: runs,
    layers, images compared and left out, the RSA sample)."""

    def __init__(self, table: Any, heat_map: PNG, record: Dict[str, Any]):
        #: The ``similarity`` rows: layer_a, layer_b, run_a, run_b, images, cka,
        #: cka_debiased, rsa, features.
        self.table = table
        #: The heat map of the matrices.
        self.heat_map = heat_map
        #: The record: ``runs``, ``layers``, ``widths``, ``features``, ``images``,
        #: ``left_out``, ``parts``, ``rsa``.
        self.record = record

    def __repr__(self) -> str:
        layers = " x ".join(str(len(names)) for names in self.record["layers"])
        return f"<layerwise.Comparison of {layers} layers over {self.record['images']} images>"

    def _repr_png_(self) -> bytes:
        return bytes(self.heat_map)

    def matrix(self, value: str = "cka") -> Any:
        """One measure (``"cka"``, ``"cka_debiased"`` or ``"rsa"``) as a float64
        ``numpy.ndarray``, a row per layer of the first run (``record["layers"][0]``), a column
        per layer of the second (or the same)."""
        import numpy

        rows = self.record["layers"][0]
        columns = self.record["layers"][-1]
        values = self.table.column(value).to_numpy(zero_copy_only=False)
        return numpy.asarray(values, dtype=numpy.float64).reshape(len(rows), len(columns))


def open(location: PathLike) -> Run:
    """Opens a run's output folder (or ``s3://bucket/prefix``), finished or partial."""
    return Run(location)
