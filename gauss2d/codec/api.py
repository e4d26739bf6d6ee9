"""Version-neutral ``encode`` / ``decode`` over the format plugins (DESIGN.md section 5).

``encode(params, height, width, version=2)`` quantises with the version's
plugin and writes its file; ``decode(data)`` reads the version byte, asks
the plugin to split the file and parse its header, checks the declared
Gaussian count against the file length and the memory budget against the
header, and only then lets the plugin decode what scales with N.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from gauss2d import gaussians
from gauss2d.codec import advice, budget, container, versions
from gauss2d.codec.container import CodecError
from gauss2d.codec.protocol import FakeQuantized
from gauss2d.settings import CodecSettings


class Decoded(NamedTuple):
    """What ``decode`` returns."""

    params: gaussians.Params  # CholeskyParams, or CholeskyAlphaParams for an alpha-model file
    height: int
    width: int
    layers: int = 1  # layers decoded (v3: a prefix of whole layers; v1, v2: 1)
    total_layers: int = 1  # layers the file declares (more than ``layers``: truncated or asked for fewer)

    @property
    def truncated(self) -> bool:
        """Whether fewer layers were decoded than the file declares."""
        return self.layers < self.total_layers


def format_settings(version: int, codec: CodecSettings | None = None, *, seed: int = 0, **changes: Any):
    """The version's settings from the ``codec`` section (defaults: ``CodecSettings()``) with ``changes``.

    E.g. ``format_settings(1, mode="gaussianimage")`` or
    ``format_settings(2, codec=settings.codec)``.

    Raises:
      ValueError: an unknown version, an unknown field or a value the format cannot hold.
    """
    codec = CodecSettings() if codec is None else codec
    if changes:
        codec = _replaced(codec, changes)
    return versions.get(version).settings(codec, seed)


def _replaced(codec: CodecSettings, changes: dict[str, Any]) -> CodecSettings:
    fields = {f.name for f in dataclasses.fields(codec)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"unknown codec setting(s) {unknown}; expected some of {sorted(fields)}")
    return dataclasses.replace(codec, **changes)


def resolve_settings(version: int, settings) -> Any:
    """``settings`` as the version's type: None -> defaults, a ``CodecSettings`` -> converted."""
    plugin = versions.get(version)
    if settings is None:
        return plugin.settings(CodecSettings())
    if isinstance(settings, CodecSettings):
        return plugin.settings(settings)
    if not isinstance(settings, plugin.settings_type):
        raise TypeError(
            f"settings of type {type(settings).__name__} given for version {version}: "
            f"expected {plugin.settings_type.__name__} or settings.CodecSettings"
        )
    return settings


def init_state(params, *, version: int = 2, settings=None):
    """The version's initial quantiser state for ``params`` (v1: k-means codebooks, seeded by settings)."""
    plugin = versions.get(version)
    return plugin.init_state(params, resolve_settings(version, settings))


def quantized(params, height: int, width: int, *, version: int = 2, state=None, settings=None):
    """The plugin's quantised form (``.params`` in file order: bit for bit what ``decode`` returns)."""
    plugin = versions.get(version)
    settings = resolve_settings(version, settings)
    state = plugin.init_state(params, settings) if state is None else state
    return plugin.quantize(params, height, width, state, settings)


def quantize_for_encoding(params, height: int, width: int, *, version: int = 2, state=None, settings=None):
    """The quantised parameters ``encode`` stores, in file order (bit-exact with ``decode``)."""
    return quantized(params, height, width, version=version, state=state, settings=settings).params


def fake_quantize(
    params, state, height: int, width: int, *, version: int = 2, settings=None, quant_mode: str = "ste"
) -> FakeQuantized:
    """Training's jittable twin of ``quantize_for_encoding`` (``protocol.FakeQuantized``)."""
    plugin = versions.get(version)
    return plugin.fake_quantize(params, state, height, width, resolve_settings(version, settings), quant_mode)


def encode(
    params: gaussians.Params,
    height: int,
    width: int,
    *,
    version: int = 2,
    state=None,
    settings=None,
    target=None,
) -> bytes:
    """Quantises and writes a gauss2d file of format ``version``.

    Args:
      params: fitted Gaussians (``CholeskyParams``; version 2 also stores
        ``CholeskyAlphaParams``): xy [N, 2], chol [N, 3], color [N, 3].
      height: image height in pixels.
      width: image width in pixels.
      version: the format version (``versions.VERSIONS``).
      state: the learned quantiser state (``V1State`` / ``V2State`` / ``V3State``;
        version 3 also takes a ``V2State``, rounded to float16); None
        initialises it here (and warns, see below).
      settings: the version's settings (``V1Settings`` / ``V2Settings`` / ``V3Settings``) or a
        ``settings.CodecSettings``; None for ``CodecSettings()``'s.
      target: the image [H, W, 3] in [0, 1] the Gaussians were fitted to; only
        read when ``state`` is None, to measure in the warning what plain
        quantisation costs.

    Returns:
      The file's bytes; ``decode`` returns ``quantize_for_encoding(...)`` from them, bit for bit.

    Warns:
      advice.NotFineTunedWarning: when ``state`` is None.

    Raises:
      NotImplementedError: parameters the version cannot store (``RSParams``; alpha in v1).
      ValueError: bad sizes, non-finite values, a state the header cannot
        hold (v3: float16 steps), alpha in v3, more v3 layers than Gaussians,
        or (near-)duplicate Gaussians coded in under 1/8 bit each.
    """
    plugin = versions.get(version)
    if version == 1 and isinstance(params, gaussians.CholeskyAlphaParams):
        raise NotImplementedError("format version 1 cannot store the alpha model; use version=2")
    settings = resolve_settings(version, settings)
    missing = state is None
    state = plugin.init_state(params, settings) if missing else state
    q = plugin.quantize(params, height, width, state, settings)
    data = plugin.pack(plugin.encode_sections(q, settings))
    hint = "deduplicate them or use mode='gaussianimage'" if version == 1 else "deduplicate them"
    container.check_encoded_count(q.header.num_gaussians, len(data), hint)
    if missing:
        advice.warn_not_finetuned(
            "codec.encode(state=None)",
            missing_state=plugin.not_finetuned_hint,
            **advice.measured_cost(params, q.params, target),
        )
    return data


def decode(
    data: bytes,
    *,
    layers: int | None = None,
    memory_limit_gb: float | None = budget.DEFAULT_MEMORY_LIMIT_GB,
) -> Decoded:
    """Reads a gauss2d file of any registered version.

    Args:
      data: the file's bytes. A v3 file cut at any byte decodes to the
        complete layers it holds (``Decoded.layers`` of ``total_layers``).
      layers: decode only the first k layers of a layered (v3) file; None:
        every layer present. Files of v1 and v2 have one layer.
      memory_limit_gb: refuse a file whose header says decoding needs more
        (``budget.decode_bytes``; None: no limit).

    Returns:
      ``Decoded(params, height, width, layers, total_layers)``; a v3 file's
      Gaussians are its layers' in file order (layer 1 first).

    Raises:
      ValueError: ``layers`` is not None or an integer >= 1.
      CodecError: on anything wrong with ``data`` (and nothing else), a v3
        file too short to hold its header and one layer included;
        ``budget.MemoryBudgetError`` (a ``CodecError``) over the budget.
    """
    if layers is not None and not (isinstance(layers, int) and layers >= 1):
        raise ValueError(f"layers={layers!r} must be None or an integer >= 1")
    try:
        plugin = versions.for_file(data)
        data = bytes(data)
        sections = plugin.split(data)
        header = plugin.parse_header(sections)
        select = getattr(plugin, "select_layers", None)  # layered versions only
        if select is not None and layers is not None:
            header = select(header, layers)
        container.check_declared_count(header.num_gaussians, len(data))
        budget.check_decode(header, len(data), memory_limit_gb)  # before anything that scales with N
        params = plugin.decode_sections(sections, header)
        read, total = getattr(header, "layers_read", 1), getattr(header, "num_layers", 1)
        return Decoded(params, header.height, header.width, read, total)
    except CodecError:
        raise
    except Exception as e:  # a gap in the checks must still surface as a CodecError
        raise CodecError(f"corrupt gauss2d file: {type(e).__name__}: {e}") from e


def bits_by_attribute(data: bytes) -> dict[str, int]:
    """Bits of a (valid) file by section, its framing included; they sum to ``total``.

    ``header`` counts the container's bytes and the header section (sizes,
    quantiser settings, LSQ parameters, codebooks); each attribute counts its section.
    """
    out = versions.for_file(data).section_bits(bytes(data))
    out["total"] = 8 * len(data)
    return out


def version_of(data: bytes) -> int:
    """The format version byte of a gauss2d file (CodecError as ``decode`` for a bad preamble)."""
    return versions.for_file(data).version
