"""Superpixel initialisation (``model.init = "superpixel"``): one Gaussian per SLIC segment.

The founding design's content-aware initialiser (DESIGN.md section 3): the
image is cut into N superpixels by SLIC (scikit-image's
``segmentation.slic``: k-means on colour and position from a regular grid
of seeds, so segments are compact and follow edges), and each segment
becomes one Gaussian:

* **mean**: the segment's centroid (pixel centres at +0.5, DESIGN.md
  section 2);
* **covariance**: the covariance of its pixel positions plus 1/12 px^2 (the
  variance of a uniform unit pixel: a one-pixel segment is a 1 px-wide
  Gaussian, not a degenerate one), scaled by ``size_factor^2`` and
  clipped to sigma in [0.5 px, a quarter of the longer side] along each
  principal axis;
* **colour**: the segment's mean colour, scaled so the Gaussian's mass
  (colour x 2 pi sqrt(det Sigma)) equals the segment's (mean colour x
  area): with neighbours overlapping, a peak-1 Gaussian per segment would
  render flat regions too bright. Then, as the content initialiser does,
  ``color_iterations`` steps of the least-squares colour solve
  (``init.solve_colors``) against the actual render.

**Exactly N segments.** SLIC returns about ``n_segments`` segments (on
256x256 Kodak crops asked for 2000 it gave 1429-1763: the connectivity pass
merges small fragments). So SLIC runs once at N, once more asked for N^2 / K
(K = what the first call gave), and the remaining difference is made
exact deterministically: too few segments -> the largest segment is split
in two along its principal axis at the median projection, repeatedly
(largest first, ties by label); too many -> the smallest segment is merged
into the neighbour it shares the longest border with (smallest first, ties
by label), repeatedly. N may not exceed the number of pixels.

SLIC runs on the host (NumPy), so this initialiser is not jittable; it is
deterministic (SLIC seeds on a grid), and the key is accepted only so every
initialiser has the same signature. scikit-image is an optional dependency
(the ``superpixel`` extra); without it this initialiser raises a
``Gauss2dError`` saying how to install it.
"""

from __future__ import annotations

import heapq
import math

import jax
import jax.numpy as jnp
import numpy as np

from gauss2d import gaussians
from gauss2d.errors import Gauss2dError
from gauss2d.init import content as init_lib

# SLIC's colour / space trade-off (scikit-image's default for Lab images): higher
# gives squarer segments, lower follows colour more closely.
COMPACTNESS = 10.0
# sigma / sigma of the segment's pixel positions. A square segment of side s has
# pixel sigma s / sqrt(12) ~ 0.29 s; the content initialiser's Gaussians are
# 0.4 spacings wide, which needs ~1.4 here. benchmarks/RESULTS.md ("init_quality,
# superpixel") has the runs that chose it.
SIZE_FACTOR = 1.4
COLOR_ITERATIONS = init_lib.COLOR_ITERATIONS
PIXEL_VARIANCE = 1.0 / 12.0  # px^2: a uniform unit pixel's variance along each axis


def _slic(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC labels [H, W] int, 0..K-1 contiguous."""
    try:
        from skimage.segmentation import slic  # noqa: PLC0415 (an optional dependency)
    except ImportError as err:
        raise Gauss2dError(
            "model.init='superpixel' needs scikit-image: pip install 'gauss2d[superpixel]' "
            "(or pip install scikit-image)"
        ) from err
    labels = slic(
        image, n_segments=max(1, int(n_segments)), compactness=compactness, start_label=0, channel_axis=-1
    )
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def _split_largest(labels: np.ndarray, count: int, want: int) -> np.ndarray:
    """Splits the largest segments in two until there are ``want``; labels stay 0..want-1.

    Each split cuts a segment along its principal axis at the median
    projection (two halves of equal size, to one pixel). Largest first, ties
    by the lower label, so the result is deterministic.

    Raises:
      Gauss2dError: every segment is one pixel and more are wanted.
    """
    h, w = labels.shape
    flat = labels.reshape(-1)
    order = np.argsort(flat, kind="stable")
    bounds = np.cumsum(np.bincount(flat, minlength=count))[:-1]
    members = {i: pix for i, pix in enumerate(np.split(order, bounds))}
    heap = [(-len(pix), i) for i, pix in members.items()]
    heapq.heapify(heap)
    out = flat.copy()
    next_label = count
    while next_label < want:
        size, label = heapq.heappop(heap)
        if -size < 2:
            raise Gauss2dError(f"cannot make {want} segments of a {w}x{h} image: at most {h * w}")
        pix = members[label]
        xy = np.stack([pix % w, pix // w], axis=-1).astype(np.float64)
        centred = xy - xy.mean(axis=0)
        # Principal axis of the segment's pixel cloud (eigh: ascending eigenvalues).
        axis = np.linalg.eigh(centred.T @ centred)[1][:, -1]
        proj = centred @ axis
        order_in = np.argsort(proj, kind="stable")
        half = len(pix) // 2
        first, second = pix[order_in[:half]], pix[order_in[half:]]
        members[label], members[next_label] = first, second
        out[second] = next_label
        heapq.heappush(heap, (-len(first), label))
        heapq.heappush(heap, (-len(second), next_label))
        next_label += 1
    return out.reshape(h, w)


def _neighbour_borders(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs of 4-adjacent segments [P, 2] (low, high) and their border lengths [P]."""
    pairs = [
        np.stack([labels[:, :-1].reshape(-1), labels[:, 1:].reshape(-1)], axis=-1),
        np.stack([labels[:-1].reshape(-1), labels[1:].reshape(-1)], axis=-1),
    ]
    pairs = np.concatenate(pairs)
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    return np.unique(pairs, axis=0, return_counts=True)


def _root(parent: np.ndarray, i: int) -> int:
    """Union-find root of ``i`` (path halving: ``parent`` is updated in place)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _merge_smallest(labels: np.ndarray, count: int, want: int) -> np.ndarray:
    """Merges the smallest segments into neighbours until there are ``want``; labels 0..want-1.

    Each of the smallest segments (ties by the lower label) joins the
    neighbour it shares the longest border with (ties by the lower label),
    through a union-find so that chains of merges stay consistent.
    """
    while count > want:
        pairs, lengths = _neighbour_borders(labels)
        sizes = np.bincount(labels.reshape(-1), minlength=count)
        # Best neighbour per segment: sort candidate (segment, neighbour) rows by
        # segment, then longest border, then lowest neighbour label; take the first.
        seg = np.concatenate([pairs[:, 0], pairs[:, 1]])
        nbr = np.concatenate([pairs[:, 1], pairs[:, 0]])
        length = np.concatenate([lengths, lengths])
        rows = np.lexsort((nbr, -length, seg))
        seg, nbr = seg[rows], nbr[rows]
        first = np.ones(len(seg), bool)
        first[1:] = seg[1:] != seg[:-1]
        best = np.full(count, -1)
        best[seg[first]] = nbr[first]
        parent = np.arange(count)
        remaining = count
        for label in np.lexsort((np.arange(count), sizes)):
            if remaining == want:
                break
            if best[label] < 0:  # one segment covers the image
                continue
            a, b = _root(parent, int(label)), _root(parent, int(best[label]))
            if a != b:
                parent[a] = b
                remaining -= 1
        roots = np.array([_root(parent, i) for i in range(count)])
        labels = np.unique(roots[labels], return_inverse=True)[1].reshape(labels.shape)
        count = remaining
    return labels


def segments(image: np.ndarray, num_segments: int, compactness: float = COMPACTNESS) -> np.ndarray:
    """Exactly ``num_segments`` superpixels of ``image`` [H, W, 3]: labels [H, W] int, 0..N-1.

    SLIC at N, then at N^2 / K to correct its count, then splits or merges
    (module docstring) for the last difference.

    Raises:
      Gauss2dError: ``num_segments`` outside [1, H W].
    """
    h, w = image.shape[:2]
    if not 1 <= num_segments <= h * w:
        raise Gauss2dError(
            f"superpixel init: {num_segments} Gaussians for a {w}x{h} image; expected 1 to {h * w} "
            "(one segment per Gaussian, at least a pixel each)"
        )
    labels = _slic(image, num_segments, compactness)
    count = int(labels.max()) + 1
    if count != num_segments:
        retry = _slic(image, round(num_segments * num_segments / count), compactness)
        retry_count = int(retry.max()) + 1
        if abs(retry_count - num_segments) < abs(count - num_segments):
            labels, count = retry, retry_count
    if count < num_segments:
        labels = _split_largest(labels, count, num_segments)
    elif count > num_segments:
        labels = _merge_smallest(labels, count, num_segments)
    return labels


def segment_gaussians(
    image: np.ndarray,  # [H, W, 3]
    labels: np.ndarray,  # [H, W] int, 0..N-1, every label present
    size_factor: float = SIZE_FACTOR,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means [N, 2] px (x, y), covariances [N, 3] (Sxx, Sxy, Syy) px^2 and colours [N, 3], float64.

    Moments by ``np.bincount`` over the labels; see the module docstring for
    the regularisation and the colour's mass normalisation.
    """
    h, w = labels.shape
    flat = labels.reshape(-1)
    n = int(flat.max()) + 1
    area = np.bincount(flat, minlength=n).astype(np.float64)
    if np.any(area == 0):
        raise Gauss2dError("segment_gaussians: labels must be 0..N-1 with every label present")
    ys, xs = np.divmod(np.arange(h * w), w)
    x, y = xs + 0.5, ys + 0.5

    def mean_of(values):
        return np.bincount(flat, weights=values, minlength=n) / area

    mx, my = mean_of(x), mean_of(y)
    sxx = mean_of(x * x) - mx * mx + PIXEL_VARIANCE
    sxy = mean_of(x * y) - mx * my
    syy = mean_of(y * y) - my * my + PIXEL_VARIANCE
    cov = np.stack([sxx, sxy, syy], axis=-1) * size_factor**2
    cov = clip_sigma(cov, init_lib.MIN_SIGMA, init_lib.max_sigma(h, w))
    colour = np.stack([mean_of(image[..., c].reshape(-1).astype(np.float64)) for c in range(3)], axis=-1)
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    mass = 2.0 * math.pi * np.sqrt(det)  # integral of a peak-1 Gaussian
    return np.stack([mx, my], axis=-1), cov, colour * (area / mass)[:, None]


def clip_sigma(cov: np.ndarray, min_sigma: float, max_sigma: float) -> np.ndarray:
    """Clips each covariance's principal sigmas to [min_sigma, max_sigma]: [N, 3] -> [N, 3]."""
    mats = np.stack([cov[:, [0, 1]], cov[:, [1, 2]]], axis=1)  # [N, 2, 2]
    vals, vecs = np.linalg.eigh(mats)
    vals = np.clip(vals, min_sigma**2, max_sigma**2)
    out = np.einsum("nij,nj,nkj->nik", vecs, vals, vecs)
    return np.stack([out[:, 0, 0], out[:, 0, 1], out[:, 1, 1]], axis=-1)


def raw_from_covariance(
    means: np.ndarray,  # [N, 2] px
    cov: np.ndarray,  # [N, 3] (Sxx, Sxy, Syy), positive definite
    colors: np.ndarray,  # [N, 3]
    height: int,
    width: int,
    parameterization: str,
) -> gaussians.Params:
    """Raw float32 parameters whose ``gaussians.project`` gives these Gaussians (inverse of project).

    Cholesky: L = chol(Sigma) (l11 = sqrt(Sxx), l21 = Sxy / l11, l22 = sqrt(Syy - l21^2)) minus
    the fixed offset. Rotation-scale: eigen-decomposition, the angle taken in [pi/2, 3 pi/2)
    where the sigmoid's logit is well conditioned (Sigma does not change under theta + pi).
    """
    xy = gaussians.raw_from_means(jnp.asarray(means, jnp.float32), height, width)
    color = jnp.asarray(colors, jnp.float32)
    sxx, sxy, syy = cov[:, 0], cov[:, 1], cov[:, 2]
    if parameterization == "cholesky":
        l11 = np.sqrt(sxx)
        l21 = sxy / l11
        l22 = np.sqrt(np.maximum(syy - l21 * l21, 0.0))
        chol = np.stack([l11, l21, l22], axis=-1) - np.asarray(gaussians.CHOLESKY_OFFSET)
        return gaussians.CholeskyParams(xy, jnp.asarray(chol, jnp.float32), color)
    if parameterization == "rs":
        mats = np.stack([cov[:, [0, 1]], cov[:, [1, 2]]], axis=1)
        vals, vecs = np.linalg.eigh(mats)  # ascending; columns are the axes
        theta = np.arctan2(vecs[:, 1, 1], vecs[:, 0, 1])  # the major axis's angle
        theta = np.mod(theta - 0.5 * math.pi, math.pi) + 0.5 * math.pi
        u = theta / (2.0 * math.pi)
        rotation = np.log(u / (1.0 - u))[:, None]
        scale = np.sqrt(vals[:, ::-1]) - gaussians.SCALE_OFFSET  # (major, minor)
        return gaussians.RSParams(
            xy, jnp.asarray(scale, jnp.float32), jnp.asarray(rotation, jnp.float32), color
        )
    raise Gauss2dError(
        f"unknown parameterization {parameterization!r}; expected one of {gaussians.PARAMETERIZATIONS}"
    )


def init_superpixel(
    key: jax.Array,
    target,  # [H, W, 3] in [0, 1]
    num_points: int,
    parameterization: str = "cholesky",
    *,
    size_factor: float | None = None,
    color_iterations: int | None = None,
    compactness: float | None = None,
) -> gaussians.Params:
    """One Gaussian per SLIC superpixel (host-side NumPy; deterministic).

    Args:
      key: unused (SLIC is deterministic); kept so every initialiser has one signature.
      target: the image the Gaussians will fit.
      num_points: N, the exact number of segments and Gaussians (1 to H W).
      parameterization: "cholesky" or "rs".
      size_factor: sigma as a multiple of the segment's pixel-position sigma
        (None: ``SIZE_FACTOR``).
      color_iterations: least-squares colour steps (``init.solve_colors``);
        0 keeps the mass-normalised mean colours (None: ``COLOR_ITERATIONS``).
      compactness: SLIC's colour / space trade-off (None: ``COMPACTNESS``).

    Returns:
      Raw parameters of the requested parameterisation.

    Raises:
      Gauss2dError: bad N, unknown parameterisation, scikit-image missing.
    """
    del key
    size_factor = SIZE_FACTOR if size_factor is None else size_factor
    color_iterations = COLOR_ITERATIONS if color_iterations is None else color_iterations
    compactness = COMPACTNESS if compactness is None else compactness
    if parameterization not in gaussians.PARAMETERIZATIONS:
        raise Gauss2dError(
            f"unknown parameterization {parameterization!r}; expected one of {gaussians.PARAMETERIZATIONS}"
        )
    image = np.asarray(target, np.float32)
    h, w = image.shape[:2]
    labels = segments(image, int(num_points), compactness)
    means, cov, colors = segment_gaussians(image, labels, size_factor)
    params = raw_from_covariance(means, cov, colors, h, w, parameterization)
    if color_iterations > 0:
        proj = gaussians.project(params, fitted_height=h, fitted_width=w)
        solved = init_lib.solve_colors(
            proj.means, proj.conics, params.color, jnp.asarray(image), iterations=color_iterations
        )
        params = params._replace(color=solved)
    return params
