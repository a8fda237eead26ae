"""Type stubs of layerwise's Python API (the docstrings are in __init__.py)."""

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__version__: str

PathLike = Union[str, os.PathLike[str]]
ImageInput = Union[
    PathLike,
    Sequence[PathLike],
    npt.NDArray[np.uint8],
    Sequence[npt.NDArray[np.uint8]],
    Sequence[Any],  # PIL.Image.Image
]

class ConfigError(ValueError): ...
class RunError(RuntimeError): ...

class Activations(Dict[str, npt.NDArray[np.float32]]):
    indices: List[int]
    errors: List[Tuple[int, str]]
    def __init__(
        self,
        arrays: Mapping[str, npt.NDArray[np.float32]],
        indices: List[int],
        errors: List[Tuple[int, str]],
    ) -> None: ...

class PNG(bytes):
    def _repr_png_(self) -> bytes: ...
    def save(self, path: PathLike) -> None: ...

class Run:
    location: str
    name: str
    complete: bool
    parts: Tuple[int, int]
    layers: List[Dict[str, Any]]
    config: Dict[str, Any]
    facts: Dict[str, Any]
    def __init__(self, location: PathLike) -> None: ...
    def images(self) -> pa.Table: ...
    def stats(self, layer: Optional[str] = None) -> pa.Table: ...
    def maps(self, layer: Optional[str] = None) -> pa.Table: ...
    def vectors(self, layer: Optional[str] = None) -> pa.Table: ...
    def top(self, layer: Optional[str] = None) -> pa.Table: ...
    def positions(self, layer: Optional[str] = None) -> pa.Table: ...
    def map(
        self, layer: str, image: Union[int, str], channels: Optional[Iterable[int]] = None
    ) -> npt.NDArray[np.float32]: ...
    def plot_channels(
        self,
        layer: str,
        image: Union[int, str],
        channels: Optional[Iterable[int]] = None,
        cols: int = 7,
        levels: Optional[int] = None,
        shared_scale: bool = False,
    ) -> PNG: ...
    def plot_images(
        self,
        layer: str,
        channel: int,
        images: Optional[str] = None,
        cols: int = 7,
        levels: Optional[int] = None,
        shared_scale: bool = False,
    ) -> PNG: ...
    def plot_top(
        self,
        layer: str,
        channel: int,
        k: int = 16,
        cols: int = 7,
        levels: Optional[int] = None,
        shared_scale: bool = False,
    ) -> PNG: ...
    def compare(
        self,
        other: Optional[Run] = None,
        layers: Optional[Iterable[str]] = None,
        features: str = "mean",
        rsa: Optional[int] = None,
        seed: int = 0,
        out: Optional[PathLike] = None,
    ) -> Comparison: ...
    def report(self, out: Optional[PathLike] = None, compare: Optional[PathLike] = None) -> str: ...

class Comparison:
    table: pa.Table
    heat_map: PNG
    record: Dict[str, Any]
    def matrix(self, value: str = "cka") -> np.ndarray: ...

def layers(model: PathLike, shapes: bool = False) -> pa.Table: ...
def extract(
    model: PathLike,
    images: ImageInput,
    layers: Union[str, Mapping[str, Any], Sequence[Union[str, Mapping[str, Any]]]],
    preprocess: Optional[Mapping[str, Any]] = None,
    batch_size: int = 16,
    threads: Optional[int] = None,
    provider: str = "cpu",
    errors: str = "raise",
    **run: Any,
) -> Activations: ...
def run(
    config: Union[PathLike, Mapping[str, Any]],
    out: Optional[PathLike] = None,
    shard: Optional[str] = None,
    limit: Optional[int] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Run: ...
def open(location: PathLike) -> Run: ...
