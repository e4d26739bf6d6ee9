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
from gauss2d.errors import CheckpointError, Gauss2dError

PathLike = str | os.PathLike

FORMAT = "gauss2d-checkpoint"
VERSION = 1
_MANIFEST_KEY = "__manifest__"
_PARAM_FIELDS = {"cholesky": gaussians.CholeskyParams, "rs": gaussians.RSParams}
# Integer leaves that count something (train step, optimiser updates, pairs): >= 0 on load.
_COUNTERS = ("step", "count", "max_pairs")
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


def check_writable(path: PathLike, what: str = "output", folder: bool = False) -> None:
    """Raises ``Gauss2dError`` unless a file could be created at ``path`` (checked before any work).

    ``atomic_write`` creates the missing folders on the way; this finds the
    nearest one that exists and refuses a regular file there (e.g.
    ``/etc/hostname/w``: a fit ran to the end and then failed with
    NotADirectoryError) or a folder the process may not write into.

    Args:
      path: the file to be written (or a folder to be created).
      what: what it is, for the message ("--workdir", "output").
      folder: ``path`` is a folder to write into (an existing file there is refused).
    """
    path = pathlib.Path(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if folder and path.exists() and not path.is_dir():
        raise Gauss2dError(f"cannot write {what} '{path}': it is a file, not a folder")
    if parent.exists() and not parent.is_dir():
        raise Gauss2dError(f"cannot write {what} '{path}': '{parent}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Gauss2dError(f"cannot write {what} '{path}': no permission to create files in '{parent}'")


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


def strict_json(payload: Any) -> Any:
    """``payload`` with every non-finite float replaced so that any JSON reader accepts it.

    Python's ``json`` writes NaN and inf as ``NaN`` / ``Infinity``, which are
    not JSON (most other readers reject the file). A non-finite number becomes
    ``null``, and in a dict a sibling key ``<key>_nonfinite`` says which it was
    ("inf", "-inf" or "nan"): e.g. the PSNR of a render that equals its target
    exactly is ``"psnr": null, "psnr_nonfinite": "inf"``. NumPy scalars and
    arrays become Python numbers and lists.
    """
    if isinstance(payload, Mapping):
        out = {}
        for key, value in payload.items():
            out[key] = strict_json(value)
            if out[key] is None and _nonfinite_name(value):
                out[f"{key}_nonfinite"] = _nonfinite_name(value)
        return out
    if isinstance(payload, (list, tuple)):
        return [strict_json(v) for v in payload]
    if isinstance(payload, (np.ndarray, jax.Array)) and np.ndim(payload):
        return strict_json(np.asarray(payload).tolist())
    if isinstance(payload, (np.generic, np.ndarray, jax.Array)):
        payload = np.asarray(payload).item()
    if isinstance(payload, float) and not np.isfinite(payload):
        return None
    return payload


def _nonfinite_name(value: Any) -> str | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if np.isnan(x):
        return "nan"
    return None if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def restore_nonfinite(payload: Any) -> Any:
    """The inverse of ``strict_json`` for what a reader of our own files wants back.

    ``{"psnr": null, "psnr_nonfinite": "inf"}`` -> ``{"psnr": inf}``, recursively.
    """
    if isinstance(payload, Mapping):
        out = {k: restore_nonfinite(v) for k, v in payload.items()}
        for key in [k for k in out if isinstance(k, str) and k.endswith("_nonfinite")]:
            name, base = out[key], key[: -len("_nonfinite")]
            if base in out and out[base] is None and name in ("inf", "-inf", "nan"):
                out[base] = float(name)
                del out[key]
        return out
    if isinstance(payload, list):
        return [restore_nonfinite(v) for v in payload]
    return payload


def dumps_strict(payload: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``strict_json(payload)``; never writes NaN or Infinity."""
    return json.dumps(strict_json(payload), allow_nan=False, **kwargs)


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
    blob = json.dumps(strict_json(manifest), default=_json_default, allow_nan=False).encode("utf-8")
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
        if its leaf count, a leaf path, shape or dtype differs from
        ``template``, or if its values cannot be resumed (non-finite floats,
        a negative counter).
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
    _check_values(path, [jax.tree_util.keystr(k) for k, _ in leaves_with_path], leaves)
    return jax.tree_util.tree_unflatten(treedef, leaves), metadata


def _check_values(path: PathLike, names: list[str], leaves: list) -> None:
    """Refuses values no training run writes: a shape-correct file can still not be resumable.

    Floating leaves (parameters, optimiser moments) must be finite: a fit
    stops before a NaN/Inf reaches its state, so one here is damage, and
    resuming would train on it. Counters (``step``, optimiser ``count``,
    ``max_pairs``) must be >= 0: a step of -1000000 made the fit run for ever.
    """
    bad = f"checkpoint '{path}' cannot be resumed"
    fix = "delete it to refit from the start"
    for name, leaf in zip(names, leaves, strict=True):
        arr = np.asarray(leaf) if not _is_key(leaf) else None
        if arr is None or arr.dtype == bool:
            continue
        if jnp.issubdtype(arr.dtype, jnp.floating):
            finite = np.isfinite(arr.astype(np.float32) if arr.dtype.itemsize < 4 else arr)
            if not finite.all():
                raise CheckpointError(f"{bad}: {name} holds {int((~finite).sum())} NaN/Inf value(s); {fix}")
        elif jnp.issubdtype(arr.dtype, jnp.integer) and name.rsplit(".", 1)[-1] in _COUNTERS:
            if arr.size and int(arr.min()) < 0:
                raise CheckpointError(f"{bad}: {name} = {int(arr.min())} is negative; {fix}")


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
