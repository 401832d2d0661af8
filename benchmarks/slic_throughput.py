"""SLIC superpixels: data.superpixels.slic (JAX, jitted) against scikit-image, side by side.

    python -m benchmarks.slic_throughput [--batch 128 --size 32 --segments 64 --repeats 5]
        [--large_batch 32 --large_size 112 --large_segments 196] [--compactness 10]

Natural-ish images: crops of scikit-image's sample photos (astronaut, chelsea, coffee,
rocket, immunohistochemistry), resized with anti-aliasing and tiled to the batch. For each setting
(the small one, then SuiT's ImageNet setting 112 x 112 with K=196) it prints images/s of
(a) our slic on the whole batch after a warm-up compile (best of --repeats, waiting for the
result), (b) skimage.segmentation.slic looped over the same images on one Python thread
(same K, compactness, 10 iterations; its default connectivity enforcement), the ratio,
the segments each keeps, and the mean within-superpixel Lab variance of both next to the
square grid's (lower: superpixels follow the colours more closely).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import skimage.color  # noqa: E402
import skimage.data  # noqa: E402
import skimage.segmentation  # noqa: E402
import skimage.transform  # noqa: E402

from data.superpixels import grid_labels, grid_shape, slic  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")


def natural_images(batch: int, size: int, seed: int = 0) -> np.ndarray:
    """[batch, size, size, 3] float32 in [0, 1]: up to 16 random square crops (a third to
    all of the short side) of the sample photos, resized, tiled to the batch."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    crops = []
    for i in range(min(batch, 16)):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[y : y + side, x : x + side]
        crops.append(skimage.transform.resize(crop, (size, size), anti_aliasing=True))
    return np.stack([crops[i % len(crops)] for i in range(batch)]).astype(np.float32)


def within_variance(lab_HW3: np.ndarray, labels_HW: np.ndarray) -> float:
    """Mean over pixels of the squared Lab distance to their superpixel's mean colour."""
    labels, lab = labels_HW.reshape(-1), lab_HW3.reshape(-1, 3).astype(np.float64)
    counts = np.bincount(labels)
    sums = np.stack([np.bincount(labels, lab[:, c]) for c in range(3)], 1)
    squares = np.bincount(labels, (lab**2).sum(1))
    used = counts > 0
    return float((squares[used] - (sums[used] ** 2).sum(1) / counts[used]).sum() / labels.size)


def best_seconds(fn, repeats: int) -> float:
    """Fastest of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(batch: int, size: int, segments: int, compactness: float, repeats: int) -> dict:
    """One setting: throughput of both, segments kept, within-superpixel variances."""
    images = natural_images(batch, size)
    images_dev = jax.device_put(images)
    start = time.perf_counter()
    ours = np.asarray(slic(images_dev, segments, compactness))  # compile + first run
    compile_s = time.perf_counter() - start
    jax_s = best_seconds(
        lambda: slic(images_dev, segments, compactness).block_until_ready(), repeats
    )

    def skimage_all() -> list[np.ndarray]:
        return [
            skimage.segmentation.slic(
                img, n_segments=segments, compactness=compactness, start_label=0
            )
            for img in images
        ]

    theirs = skimage_all()
    sk_s = best_seconds(skimage_all, max(1, min(repeats, 3)))
    grid = grid_labels(size, size, *grid_shape(size, size, segments))
    labs = [skimage.color.rgb2lab(img) for img in images]
    return dict(
        setting=f"{batch} x {size}x{size}, K={segments}",
        compile_s=compile_s,
        jax=batch / jax_s,
        skimage=batch / sk_s,
        k_ours=np.mean([len(np.unique(lab)) for lab in ours]),
        k_skimage=np.mean([len(np.unique(lab)) for lab in theirs]),
        var_ours=np.mean([within_variance(lab, x) for lab, x in zip(labs, ours)]),
        var_skimage=np.mean([within_variance(lab, x) for lab, x in zip(labs, theirs)]),
        var_grid=np.mean([within_variance(lab, grid) for lab in labs]),
    )


def main() -> None:
    """Measures both settings and prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--segments", type=int, default=64)
    p.add_argument("--large_batch", type=int, default=32)
    p.add_argument("--large_size", type=int, default=112)
    p.add_argument("--large_segments", type=int, default=196)
    p.add_argument("--compactness", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    settings = [(args.batch, args.size, args.segments)]
    if args.large_batch > 0:
        settings.append((args.large_batch, args.large_size, args.large_segments))
    device, cpus = jax.devices()[0], len(os.sched_getaffinity(0))
    print(f"JAX on {device.platform} ({device.device_kind}), {cpus} CPUs; skimage: 1 thread")
    rows = [measure(b, s, k, args.compactness, args.repeats) for b, s, k in settings]
    print(
        f"| {'setting':<24} | JAX img/s | skimage img/s | ratio | compile s "
        "| segments JAX / skimage | Lab within-var JAX / skimage / grid |"
    )
    print(f"|{'-' * 26}|----------:|--------------:|------:|----------:|{'-' * 24}|{'-' * 37}|")
    for r in rows:
        print(
            f"| {r['setting']:<24} | {r['jax']:9,.0f} | {r['skimage']:13,.0f} "
            f"| {r['jax'] / r['skimage']:5.1f} | {r['compile_s']:9.2f} "
            f"| {r['k_ours']:10.1f} / {r['k_skimage']:<9.1f} "
            f"| {r['var_ours']:10.1f} / {r['var_skimage']:7.1f} / {r['var_grid']:7.1f}   |"
        )


if __name__ == "__main__":
    main()
