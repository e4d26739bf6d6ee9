"""Version 3's stream models and its one entropy coder per layer.

Every stream of a layer (position gaps, covariance and colour channels,
context by context) is coded by ONE constriction ANS coder, flushed once,
under a model stored compactly in the layer's *models* bytes, read in
decoding order::

    varint (zigzag(lo) << 1 | kind) | varint size | body

``size`` values ``lo .. lo + size - 1`` form the alphabet (at most 2^16);
``size == 1`` has no body and no words (the value is known). Bodies:

* kind 0, histogram: ``entropy.histogram_model``'s bytes (quantised counts,
  exp-Golomb, byte-padded); the symbols are coded as their rank among the
  present ones, as v1/v2's categorical streams.
* kind 1, Laplace: ``mu f16 | scale f16``: the unit-bin discretised Laplace
  of ``streams.laplace_pmf`` over the alphabet (v2 stores float32s).

The encoder picks per stream whichever costs fewer bits (model bytes + the
ideal code length), as v2 does. Encoder and decoder build each model from
the same stored integers / float16s with the same float64 NumPy code.
"""

from __future__ import annotations

from typing import NamedTuple

import constriction
import numpy as np

from gauss2d.codec import entropy, streams
from gauss2d.codec.container import CodecError, check, get_varint, put_varint
from gauss2d.codec.streams import MAX_ALPHABET, laplace_pmf, unzigzag, zigzag

KIND_HISTOGRAM, KIND_LAPLACE = 0, 1
MIN_SCALE, MAX_SCALE = streams.MIN_SCALE, 65504.0  # the Laplace scale is a float16
MAX_LO = 2**17  # |lo| bound (indices are clipped to +-2^15; gap symbols are small)
_SLACK_BITS = 96  # ANS flushes up to 64 bits of state; 24-bit probabilities round


class Model(NamedTuple):
    """A stream's stored model as the coder uses it."""

    lo: int
    size: int
    values: np.ndarray  # [K] the symbols (value - lo) the coder's ranks stand for
    probs: np.ndarray  # [K] float64 probabilities of the ranks


def _f16(x: float) -> float:
    return float(np.float16(np.clip(x, -MAX_SCALE, MAX_SCALE)))


def _laplace(values: np.ndarray, lo: int, size: int) -> tuple[float, bytes, Model]:
    """(bits, body, model) of the float16 Laplace of fewest bits (scale on a log grid around the MAD)."""
    mu = _f16(np.median(values))
    mad = max(float(np.mean(np.abs(values - mu))), MIN_SCALE)
    best = None
    for f in 2.0 ** (np.arange(-24, 13) / 4.0):
        scale = _f16(max(mad * f, MIN_SCALE))
        p = laplace_pmf(lo, size, mu, scale)
        bits = float(-np.log2(p[values - lo]).sum())
        if best is None or bits < best[0]:
            best = (bits, scale, p)
    bits, scale, p = best
    body = np.asarray([mu, scale], "<f2").tobytes()
    return bits + 8 * len(body), body, Model(lo, size, np.arange(size), p)


def _histogram(values: np.ndarray, lo: int, size: int) -> tuple[float, bytes, Model]:
    counts = np.bincount(values - lo, minlength=size)
    q, body = entropy.histogram_model(counts)
    return _histogram_bits(counts, q) + 8 * len(body), body, _histogram_model(lo, size, q)


def _histogram_bits(counts: np.ndarray, q: np.ndarray) -> float:
    present = q > 0
    return float(-np.sum(counts[present] * np.log2(q[present] / q.sum())))


def _histogram_model(lo: int, size: int, q: np.ndarray) -> Model:
    present = np.flatnonzero(q)
    return Model(lo, size, present, q[present].astype(np.float64) / q[present].sum())


def stream_cost(values: np.ndarray) -> float:
    """Bits the writer would spend on ``values`` (descriptor + ideal code length): for encoder choices."""
    return LayerWriter().add(values, "cost")


class LayerWriter:
    """Collects a layer's streams; ``finish`` returns (models bytes, ANS words) of one coder."""

    def __init__(self):
        self.models = bytearray()
        self.coded: list[tuple[np.ndarray, Model]] = []
        self.bits: dict[str, float] = {}

    def add_bytes(self, data: bytes, what: str) -> None:
        """Side information in the models bytes (context specs)."""
        self.models += data
        self.bits[what] = self.bits.get(what, 0.0) + 8 * len(data)

    def add(self, values: np.ndarray, what: str) -> float:
        """Adds a stream of signed ints [M] (M >= 1); returns its bits (descriptor + ideal data bits)."""
        values = np.asarray(values, np.int64).reshape(-1)
        if values.size == 0:
            raise ValueError("a stream holds at least one value")
        lo, hi = int(values.min()), int(values.max())
        size = hi - lo + 1
        if size > MAX_ALPHABET or abs(lo) > MAX_LO:
            raise ValueError(f"{what}: values span [{lo}, {hi}], more than the format's alphabet")
        prefix = lambda kind: put_varint(zigzag(lo) << 1 | kind) + put_varint(size)  # noqa: E731
        if size == 1:
            head, model, bits = prefix(KIND_HISTOGRAM), None, 0.0
        else:
            options = [
                (*_histogram(values, lo, size), KIND_HISTOGRAM),
                (*_laplace(values, lo, size), KIND_LAPLACE),
            ]
            bits, body, model, kind = min(options, key=lambda o: o[0])
            head = prefix(kind) + body
            bits -= 8 * len(body)
        self.models += head
        if model is not None:
            ranks = np.searchsorted(model.values, values - lo).astype(np.int32)
            self.coded.append((ranks, model))
        total = bits + 8 * len(head)
        self.bits[what] = self.bits.get(what, 0.0) + total
        return total

    def finish(self) -> tuple[bytes, bytes]:
        """(models bytes, words bytes): every stream in one ANS coder, flushed once."""
        if not self.coded:
            return bytes(self.models), b""
        coder = constriction.stream.stack.AnsCoder()
        for ranks, model in reversed(self.coded):  # a stack: the first stream comes out first
            coder.encode_reverse(ranks, constriction.stream.model.Categorical(model.probs, perfect=False))
        return bytes(self.models), coder.get_compressed().astype("<u4").tobytes()


class LayerReader:
    """Reads a layer's models in order and decodes their streams from the one coder."""

    def __init__(self, models: bytes, words: bytes, what: str, *, tally: bool = False):
        check(len(words) % 4 == 0, f"{what}: ANS payload of {len(words)} bytes is not whole words")
        self.models, self.pos, self.what = models, 0, what
        self.word_bits = 8 * len(words)
        self.min_bits = 0.0
        self.tally = tally  # count the ideal bits per stream name (section_bits; costs memory)
        self.bits: dict[str, float] = {}
        try:
            self.coder = constriction.stream.stack.AnsCoder(np.frombuffer(words, "<u4").astype(np.uint32))
        except Exception as e:  # constriction refuses e.g. a zero last word
            raise CodecError(f"{what}: corrupt entropy-coded payload: {e}") from e

    def varint(self, limit: int, what: str) -> int:
        value, self.pos = get_varint(self.models, self.pos, limit, f"{self.what} {what}")
        return value

    def byte(self, what: str) -> int:
        check(self.pos < len(self.models), f"{self.what}: truncated models ({what})")
        self.pos += 1
        return self.models[self.pos - 1]

    def _model(self, what: str) -> Model | int:
        head = self.varint(2 * (2 * MAX_LO) + 1, f"{what} model")
        kind, lo = head & 1, unzigzag(head >> 1)
        size = self.varint(MAX_ALPHABET, f"{what} alphabet size")
        check(size >= 1, f"{self.what}: {what} alphabet size 0")
        if size == 1:
            check(kind == KIND_HISTOGRAM, f"{self.what}: {what} single-symbol stream with a Laplace body")
            return lo
        if kind == KIND_HISTOGRAM:
            q, used = entropy.read_histogram(self.models[self.pos :], size)
            self.pos += used
            check(int((q > 0).sum()) >= 2, f"{self.what}: {what} histogram with one symbol over {size}")
            return _histogram_model(lo, size, q)
        check(len(self.models) - self.pos >= 4, f"{self.what}: truncated {what} Laplace parameters")
        mu, scale = np.frombuffer(self.models[self.pos : self.pos + 4], "<f2").astype(np.float64)
        self.pos += 4
        check(bool(np.isfinite(mu)), f"{self.what}: {what} Laplace location {mu} not finite")
        check(
            bool(np.isfinite(scale)) and MIN_SCALE * 0.99 <= scale <= MAX_SCALE,
            f"{self.what}: {what} Laplace scale {scale} out of [{MIN_SCALE}, {MAX_SCALE}]",
        )
        return Model(lo, size, np.arange(size), laplace_pmf(lo, size, float(mu), float(scale)))

    def read(self, count: int, what: str) -> np.ndarray:
        """The next stream: [count] int64 values (count >= 1)."""
        model = self._model(what)
        if isinstance(model, int):
            return np.full(count, model, np.int64)
        # Every symbol costs at least -log2(p_max) bits: a count the words cannot hold is corrupt,
        # and is refused before decoding (and allocating) it.
        self.min_bits += count * -np.log2(model.probs.max())
        check(
            self.min_bits <= self.word_bits + _SLACK_BITS,
            f"{self.what}: {what} needs more bits than the layer's {self.word_bits}",
        )
        try:
            ranks = np.asarray(
                self.coder.decode(constriction.stream.model.Categorical(model.probs, perfect=False), count)
            )
        except Exception as e:  # constriction raises on corrupt words
            raise CodecError(f"{self.what}: corrupt entropy-coded payload ({what}): {e}") from e
        check(
            ranks.shape == (count,) and ranks.min() >= 0 and ranks.max() < model.values.size,
            f"{self.what}: decoder produced out-of-range {what} symbols",
        )
        if self.tally:
            self.bits[what] = self.bits.get(what, 0.0) - float(np.log2(model.probs[ranks]).sum())
        out = model.values[ranks]  # int64
        out += model.lo
        return out

    def finish(self) -> None:
        """Checks the models were read exactly and the coder holds no more words."""
        check(self.pos == len(self.models), f"{self.what}: {len(self.models) - self.pos} unread model bytes")
        try:
            empty = self.coder.is_empty()
        except Exception as e:
            raise CodecError(f"{self.what}: corrupt entropy-coded payload: {e}") from e
        check(empty, f"{self.what}: entropy-coded payload has data left after the last symbol")
