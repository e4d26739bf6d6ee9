"""The registry of format versions: version byte -> ``protocol.FormatVersion`` plugin.

A new version (v3: layers of records; ``.g2v``: frames) is one more package
under ``codec/`` and one more entry here; ``api.encode`` / ``api.decode`` and
``budget`` find it through ``get`` / ``for_file``.
"""

from __future__ import annotations

from gauss2d.codec import container, v1, v2, v3
from gauss2d.codec.protocol import FormatVersion

REGISTRY: dict[int, FormatVersion] = {1: v1.PLUGIN, 2: v2.PLUGIN, 3: v3.PLUGIN}
VERSIONS = tuple(sorted(REGISTRY))


def get(version: int) -> FormatVersion:
    """The plugin of ``version`` (ValueError naming the versions there are)."""
    if version not in REGISTRY:
        raise ValueError(f"codec version={version!r} is unknown: expected one of {list(VERSIONS)}")
    return REGISTRY[version]


def for_file(data: bytes) -> FormatVersion:
    """The plugin that reads ``data`` (CodecError: not bytes, no gauss2d magic, unsupported version)."""
    return REGISTRY[container.read_version(data, VERSIONS)]


def of_state(state) -> int | None:
    """The version whose plugin's state type ``state`` is exactly (None for None or another type).

    Exact types, not ``isinstance``: v3's ``V3State`` has v2's fields, and a
    subclass of one version's state must never be taken for another's.
    """
    for version, plugin in REGISTRY.items():
        if type(state) is plugin.state_type:
            return version
    return None
