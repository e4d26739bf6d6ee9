"""Checkpoints of a training run and the user-facing ``params.npz``.

A checkpoint is one ``.npz`` file holding every leaf of a state pytree as
``leaf_00000``, ``leaf_00001``, ... (flattening order) plus a JSON manifest
(``__manifest__``, utf-8 bytes as a uint8 array) with the caller's metadata
and each leaf's key path, shape and dtype. ``load`` reads it back into the
structure of a template pytree and refuses a file that does not match it, so
resuming after a config change (say ``model.num_points``) fails with a
message instead of silently training the wrong thing.

Every write goes through ``atomic_write``: the file appears at its final path
complete or not at all, even if the process is killed mid-save.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.errors import CheckpointError

PathLike = str | os.PathLike

FORMAT = "gauss2d-checkpoint"
VERSION = 1
_MANIFEST_KEY = "__manifest__"
_PARAM_FIELDS = {"cholesky": gaussians.CholeskyParams, "rs": gaussians.RSParams}
# Trailing width of each param field ([N, k]); checked on load.
_FIELD_WIDTH = {"xy": 2, "chol": 3, "color": 3, "scale": 2, "rotation": 1, "opacity": 1, "depth": 1}
# The alpha-composited model (model.blend="alpha") adds opacity and depth.
_ALPHA_FIELDS = {"cholesky": gaussians.CholeskyAlphaParams, "rs": gaussians.RSAlphaParams}


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[BinaryIO]:
    """Opens a binary file that replaces ``path`` only once fully written.

    Writes to a temporary file in the same directory (so ``os.replace`` is a
    same-filesystem atomic rename), flushes and fsyncs it, then renames it over
    ``path``. On any exception, KeyboardInterrupt included, the temporary file
    is removed and ``path`` keeps its previous content. Parent directories are
    created.

    Args:
      path: the final file path.

    Yields:
      A writable binary file object.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Not tempfile.mkstemp: its files are mode 0600, and os.replace would keep
    # that; 0o666 here lets the umask give the mode a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable; best effort (not every OS can open a dir).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _to_numpy(leaf: Any) -> np.ndarray:
    # Typed PRNG keys cannot become numpy arrays; store their raw key data.
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _spec(leaf: Any) -> tuple[tuple[int, ...], str]:
    """(shape, dtype name) of a template leaf: array, ShapeDtypeStruct or scalar."""
    if _is_key(leaf):
        return tuple(leaf.shape), str(leaf.dtype)
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), str(np.dtype(leaf.dtype))
    arr = np.asarray(leaf)
    return tuple(arr.shape), str(arr.dtype)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, np.ndarray, jax.Array)):
        return np.asarray(obj).tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def save(path: PathLike, state: Any, metadata: Mapping[str, Any]) -> None:
    """Saves a state pytree and JSON-able metadata atomically to one ``.npz``.

    Args:
      path: destination file (conventionally ``*.npz``); parents are created.
      state: a pytree of arrays (jax or numpy), Python scalars or typed keys.
      metadata: JSON-serialisable dict (config, step, image name, ...); numpy
        scalars and arrays are converted to lists.

    Raises:
      TypeError: if ``metadata`` is not JSON-serialisable (nothing is written).
    """
    leaves_with_path, _ = jax.tree_util.tree_flatten_with_path(state)
    arrays, specs = {}, []
    for i, (key_path, leaf) in enumerate(leaves_with_path):
        arrays[f"leaf_{i:05d}"] = _to_numpy(leaf)
        shape, dtype = _spec(leaf)
        specs.append({"path": jax.tree_util.keystr(key_path), "shape": list(shape), "dtype": dtype})
    manifest = {"format": FORMAT, "version": VERSION, "metadata": dict(metadata), "leaves": specs}
    # Serialise before opening the file, so a bad metadata value writes nothing.
    blob = json.dumps(manifest, default=_json_default).encode("utf-8")
    arrays[_MANIFEST_KEY] = np.frombuffer(blob, np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def exists(path: PathLike) -> bool:
    """Whether a checkpoint file exists at ``path``."""
    return pathlib.Path(path).is_file()


def _read_npz(path: PathLike, what: str) -> dict[str, np.ndarray]:
    """Reads every array of an npz eagerly; any damage becomes CheckpointError."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} at '{path}'" + (" (it is a directory)" if path.is_dir() else ""))
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # np.load would otherwise try .npy or pickle
        raise CheckpointError(
            f"{what} '{path}' is not an .npz file (no zip signature; empty or another format)"
        )
    try:
        # np.load is lazy for npz: members are decompressed (and CRC-checked)
        # on access, so read them all inside the try.
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{what} '{path}' is corrupt or truncated ({type(e).__name__}: {e})") from None


def _parse_manifest(path: PathLike, arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], list]:
    """(metadata, leaf specs) from a checkpoint's arrays (the manifest is popped)."""
    try:
        manifest = json.loads(arrays.pop(_MANIFEST_KEY).tobytes().decode("utf-8"))
        metadata = manifest["metadata"]
        specs = [(s["path"], tuple(s["shape"]), s["dtype"]) for s in manifest["leaves"]]
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise ValueError(f"format {manifest.get('format')!r} version {manifest.get('version')!r}")
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"'{path}' is not a gauss2d checkpoint (bad manifest: {type(e).__name__}: {e})"
        ) from None
    return metadata, specs


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata dict of a checkpoint, without a template (e.g. to check its config first).

    Raises:
      CheckpointError: missing, corrupt or not a gauss2d checkpoint.
    """
    return _parse_manifest(path, _read_npz(path, "checkpoint"))[0]


def load(path: PathLike, template: Any) -> tuple[Any, dict[str, Any]]:
    """Loads a checkpoint into the structure of ``template``.

    Args:
      path: a file written by ``save``.
      template: a pytree with the expected structure, shapes and dtypes (a
        freshly initialised state, or ``jax.eval_shape`` of one).

    Returns:
      ``(state, metadata)``: ``state`` has ``template``'s structure with numpy
      leaves (typed PRNG keys come back as jax key arrays); ``metadata`` is the
      dict given to ``save``.

    Raises:
      CheckpointError: naming the file, if it is missing, corrupt or truncated,
        or if its leaf count, a leaf path, shape or dtype differs from
        ``template``.
    """
    arrays = _read_npz(path, "checkpoint")
    metadata, specs = _parse_manifest(path, arrays)

    mismatch = f"checkpoint '{path}' does not match"
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    if len(specs) != len(leaves_with_path):
        raise CheckpointError(
            f"{mismatch}: it has {len(specs)} leaves, expected {len(leaves_with_path)} "
            "(the model or optimiser structure changed)"
        )
    leaves = []
    for i, ((key_path, tmpl), (saved_name, saved_shape, saved_dtype)) in enumerate(
        zip(leaves_with_path, specs)
    ):
        name = jax.tree_util.keystr(key_path)
        shape, dtype = _spec(tmpl)
        if saved_name != name:
            raise CheckpointError(f"{mismatch}: leaf {i} is {saved_name}, expected {name}")
        if saved_shape != shape:
            raise CheckpointError(f"{mismatch}: leaf {name} has shape {saved_shape}, expected {shape}")
        if saved_dtype != dtype:
            raise CheckpointError(f"{mismatch}: leaf {name} has dtype {saved_dtype}, expected {dtype}")
        arr = arrays.get(f"leaf_{i:05d}")
        if arr is None:
            raise CheckpointError(f"{mismatch}: leaf {name} is missing from the file")
        if _is_key(tmpl):
            impl = jax.random.key_impl(tmpl) if isinstance(tmpl, jax.Array) else None
            leaves.append(jax.random.wrap_key_data(arr, impl=impl))
            continue
        if str(arr.dtype) != dtype:
            # npz stores extension dtypes such as bfloat16 as raw void bytes.
            arr = arr.view(jnp.dtype(dtype))
        if arr.shape != shape:
            raise CheckpointError(
                f"'{path}' is corrupt: leaf {name} holds shape {arr.shape}, manifest {shape}"
            )
        leaves.append(arr)
    return jax.tree_util.tree_unflatten(treedef, leaves), metadata


def save_params_npz(path: PathLike, params: gaussians.Params) -> None:
    """Writes raw Gaussian parameters as a user-facing ``params.npz``, atomically.

    Keys are the field names (``xy``, ``chol``, ``color`` or ``xy``, ``scale``,
    ``rotation``, ``color``) plus ``parameterization`` (a 0-d string array).

    Args:
      path: destination file; parents are created.
      params: ``CholeskyParams`` or ``RSParams``.
    """
    arrays = {k: np.asarray(v) for k, v in params._asdict().items()}
    arrays["parameterization"] = np.array(gaussians.parameterization_of(params))
    if gaussians.blend_of(params) != "sum":  # sum-model files stay as they were
        arrays["blend"] = np.array(gaussians.blend_of(params))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_params_npz(path: PathLike) -> gaussians.Params:
    """Reads a ``params.npz`` written by ``save_params_npz``.

    Args:
      path: the file.

    Returns:
      ``CholeskyParams`` or ``RSParams`` with jnp arrays.

    Raises:
      CheckpointError: naming the file, if it is missing or corrupt, its
        parameterisation is unknown, or a field is missing or badly shaped.
    """
    arrays = _read_npz(path, "params file")
    kind = arrays.get("parameterization")
    kind = str(kind) if kind is not None and kind.shape == () and kind.dtype.kind == "U" else None
    if kind not in _PARAM_FIELDS:
        raise CheckpointError(
            f"params file '{path}' has parameterization {kind!r}; expected one of {tuple(_PARAM_FIELDS)}"
        )
    blend = arrays.get("blend")  # absent: the sum model
    if blend is not None and not (blend.shape == () and blend.dtype.kind == "U" and str(blend) == "alpha"):
        raise CheckpointError(f"params file '{path}' has blend {blend!r}; expected 'alpha' or none (sum)")
    cls = (_PARAM_FIELDS if blend is None else _ALPHA_FIELDS)[kind]
    missing = [f for f in cls._fields if f not in arrays]
    if missing:
        raise CheckpointError(f"params file '{path}' ({kind}) lacks field(s) {missing}")
    n = arrays["xy"].shape[0] if arrays["xy"].ndim == 2 else None
    for field in cls._fields:
        shape = arrays[field].shape
        if n is None or shape != (n, _FIELD_WIDTH[field]):
            raise CheckpointError(
                f"params file '{path}': field {field} has shape {shape}, expected (N, {_FIELD_WIDTH[field]})"
                + (f" with N={n}" if n is not None else "")
            )
    return cls(**{f: jnp.asarray(arrays[f]) for f in cls._fields})
