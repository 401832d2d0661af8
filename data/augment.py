"""Image augmentation in JAX that runs on the accelerator, inside the jit-compiled train step.

Why on device: SuiT computes its superpixels AFTER augmentation. Running augmentation and
superpixels on the accelerator inside the train step keeps the CPU input pipeline trivial
(batches of uint8 images) and the whole step one jit-compiled program.

Conventions: images are float32 [B, H, W, C] in [0, 1] (C = 1 or 3); every random function takes
a `jax.random` key first and draws per-example randomness by `jax.vmap` over split keys; shapes
are static; configuration arguments (sizes, probabilities, op names) are Python values, static
under `jax.jit` (close over them or mark them static).

The DeiT recipe SuiT trains with: `random_resized_crop` (+ flip), `rand_augment`
(timm rand-m9-mstd0.5-inc1), `random_erasing` 0.25, `smooth_labels` 0.1 and `mixup_cutmix` with
CutMix 1.0 and Mixup off; evaluation `center_crop_resize` (resize 256 -> centre crop 224). CIFAR:
`random_crop_flip` (pad 4). Where a function departs from timm / torchvision its docstring says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp

Array = jax.Array
Fill = float | Sequence[float]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # per-pixel std over the training set
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's convert("L")


def normalize(images: Array, mean: Sequence[float], std: Sequence[float]) -> Array:
    """(images - mean) / std over the channel axis."""
    return (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)


def denormalize(images: Array, mean: Sequence[float], std: Sequence[float]) -> Array:
    """Inverse of `normalize`."""
    return images * jnp.asarray(std, images.dtype) + jnp.asarray(mean, images.dtype)


def smooth_labels(labels_B: Array, num_classes: int, smoothing: float) -> Array:
    """float32 [B, K] one-hot targets with timm's smoothing: off = s/K, on = 1 - s + s/K."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    return jax.nn.one_hot(labels_B, num_classes, dtype=jnp.float32) * (on - off) + off


def _per_example(key: Array, images: Array, fn: Callable[[Array, Array], Array]) -> Array:
    """vmap of fn(key, image_HWC) over the batch, one key per example."""
    return jax.vmap(fn)(jax.random.split(key, images.shape[0]), images)


def _randint(key: Array, n: Array | int) -> Array:
    """Uniform int32 in [0, n) (floor of a uniform: compiles far lighter than randint)."""
    return jnp.minimum(jnp.floor(jax.random.uniform(key) * n), n - 1).astype(jnp.int32)


def _random_flip(key: Array, image_HWC: Array) -> Array:
    """Horizontal flip with probability 0.5."""
    return jnp.where(jax.random.bernoulli(key), image_HWC[:, ::-1], image_HWC)


def _gray(image_HWC: Array) -> Array:
    """Luma [H, W, 1] (the image itself when C = 1)."""
    if image_HWC.shape[-1] == 1:
        return image_HWC
    return jnp.sum(image_HWC * jnp.asarray(_LUMA, image_HWC.dtype), -1, keepdims=True)


def _blend(degenerate: Array, image: Array, factor: Array) -> Array:
    """PIL ImageEnhance / torchvision blend: degenerate + factor (image - degenerate), clipped."""
    return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 1.0)


def random_crop_flip(key: Array, images_BHWC: Array, pad: int = 4, flip: bool = True) -> Array:
    """torchvision RandomCrop(H, padding=pad, fill=0) then horizontal flip with p=0.5 (CIFAR)."""
    _, H, W, C = images_BHWC.shape
    padded = jnp.pad(images_BHWC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(k: Array, image: Array) -> Array:
        k_y, k_x, k_flip = jax.random.split(k, 3)
        y = _randint(k_y, 2 * pad + 1)
        x = _randint(k_x, 2 * pad + 1)
        out = jax.lax.dynamic_slice(image, (y, x, 0), (H, W, C))
        return _random_flip(k_flip, out) if flip else out

    return _per_example(key, padded, one)


def _sample_box_size(
    key: Array, height: int, width: int, area: Sequence[float], log_ratio: Sequence[float]
) -> tuple[Array, Array]:
    """Box (h, w), int32: area fraction ~ U(area), log(w / h) uniform on the part of `log_ratio`
    where a box of that area fits in the image, sides rounded and clipped to the image.

    Closed form in place of torchvision's / timm's 10-try rejection loops: the area is kept and
    only the aspect range is narrowed to what fits (rejection instead conditions on both)."""
    k_area, k_ratio = jax.random.split(key)
    target = jax.random.uniform(k_area, minval=area[0], maxval=area[1]) * (height * width)
    hi = jnp.minimum(log_ratio[1], jnp.log(width**2 / target))  # w = sqrt(target r) <= W
    lo = jnp.minimum(jnp.maximum(log_ratio[0], jnp.log(target / height**2)), hi)  # h <= H
    ratio = jnp.exp(jax.random.uniform(k_ratio, minval=lo, maxval=hi))
    w = jnp.clip(jnp.round(jnp.sqrt(target * ratio)), 1, width).astype(jnp.int32)
    h = jnp.clip(jnp.round(jnp.sqrt(target / ratio)), 1, height).astype(jnp.int32)
    return h, w


def _resample_box(
    image_HWC: Array, top: Array, left: Array, h: Array, w: Array, size: int, method: str
) -> Array:
    """The box [top, top+h) x [left, left+w) (continuous) resized to size x size, antialiased."""
    scale = jnp.stack([size / h, size / w]).astype(jnp.float32)
    translation = -jnp.stack([top, left]).astype(jnp.float32) * scale
    out = jax.image.scale_and_translate(
        image_HWC, (size, size, image_HWC.shape[-1]), (0, 1), scale, translation, method
    )
    return jnp.clip(out, 0.0, 1.0)


def random_resized_crop(
    key: Array,
    images_BHWC: Array,
    size: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    method: str = "linear",
) -> Array:
    """Inception-style crop (torchvision RandomResizedCrop) to size x size, then flip p=0.5.

    Area fraction ~ U(scale), aspect w/h log-uniform in `ratio`, sampled in closed form (see
    `_sample_box_size`: torchvision's 10-try rejection loop and its centre-crop fallback are
    replaced by narrowing the aspect range to boxes that fit). Resampling is antialiased
    `jax.image.scale_and_translate`; bilinear by default (timm's DeiT config uses bicubic:
    method='cubic')."""
    _, H, W, _ = images_BHWC.shape
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def one(k: Array, image: Array) -> Array:
        k_box, k_y, k_x, k_flip = jax.random.split(k, 4)
        h, w = _sample_box_size(k_box, H, W, scale, log_ratio)
        top = _randint(k_y, H - h + 1)
        left = _randint(k_x, W - w + 1)
        return _random_flip(k_flip, _resample_box(image, top, left, h, w, size, method))

    return _per_example(key, images_BHWC, one)


def center_crop_resize(
    images_BHWC: Array, size: int, crop_fraction: float = 224 / 256, method: str = "linear"
) -> Array:
    """Evaluation transform: the centred square of side crop_fraction * min(H, W) resized to
    size x size, i.e. torchvision Resize(size / crop_fraction) + CenterCrop(size) (up to its
    integer rounding of the resized size and crop offset)."""
    B, H, W, C = images_BHWC.shape
    s = size / (crop_fraction * min(H, W))
    scale = jnp.array([s, s], jnp.float32)
    translation = jnp.array([(size - H * s) / 2, (size - W * s) / 2], jnp.float32)
    out = jax.image.scale_and_translate(
        images_BHWC, (B, size, size, C), (1, 2), scale, translation, method
    )
    return jnp.clip(out, 0.0, 1.0)


def color_jitter(key: Array, images_BHWC: Array, strength: float) -> Array:
    """torchvision ColorJitter(strength, strength, strength, hue=0): brightness, contrast and
    saturation factors ~ U[max(0, 1-s), 1+s] per image, applied in that FIXED order
    (torchvision permutes the order at random); clipped to [0, 1] after each step.

    Note: timm ignores its color_jitter (0.3 in DeiT/SuiT) when RandAugment is on, so the
    faithful SuiT recipe does not call this."""
    lo, hi = max(0.0, 1.0 - strength), 1.0 + strength

    def one(k: Array, image: Array) -> Array:
        f = jax.random.uniform(k, (3,), minval=lo, maxval=hi)
        image = _blend(jnp.zeros_like(image), image, f[0])
        image = _blend(jnp.mean(_gray(image)), image, f[1])
        return _blend(_gray(image), image, f[2])

    return _per_example(key, images_BHWC, one)


def rotation_matrix(degrees: Array | float, height: int, width: int) -> Array:
    """[2, 3] output -> input map (continuous coordinates, pixel centres at i + 0.5) of PIL's
    Image.rotate(degrees): counter-clockwise about the image centre."""
    t = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
    c, s = jnp.cos(t), jnp.sin(t)
    cx, cy = width / 2, height / 2
    return jnp.stack([c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy]).reshape(2, 3)


def _matrix(*entries: Array | float) -> Array:
    """[2, 3] float32 matrix from PIL's affine data (a, b, c, d, e, f)."""
    return jnp.stack([jnp.asarray(e, jnp.float32) for e in entries]).reshape(2, 3)


def affine_warp(image_HWC: Array, matrix: Array, fill: Fill = 0.5) -> Array:
    """PIL Image.transform(AFFINE, matrix) with bilinear sampling: output pixel centre (x, y) reads
    the input at (a x + b y + c, d x + e y + f); samples outside the image read `fill` (a scalar
    or one value per channel). Edges blend with fill (PIL clamps to the edge pixel instead)."""
    H, W, C = image_HWC.shape
    ys, xs = jnp.meshgrid(jnp.arange(H) + 0.5, jnp.arange(W) + 0.5, indexing="ij")
    x_in = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - 0.5
    y_in = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - 0.5
    x0, y0 = jnp.floor(x_in), jnp.floor(y_in)
    wx, wy = (x_in - x0)[..., None], (y_in - y0)[..., None]
    flat = image_HWC.reshape(H * W, C)
    fill_C = jnp.broadcast_to(jnp.asarray(fill, image_HWC.dtype), (C,))

    def corner(yc: Array, xc: Array) -> Array:
        valid = (yc >= 0) & (yc <= H - 1) & (xc >= 0) & (xc <= W - 1)
        index = jnp.clip(yc, 0, H - 1) * W + jnp.clip(xc, 0, W - 1)
        return jnp.where(valid[..., None], flat[index.astype(jnp.int32)], fill_C)

    top = (1 - wx) * corner(y0, x0) + wx * corner(y0, x0 + 1)
    bottom = (1 - wx) * corner(y0 + 1, x0) + wx * corner(y0 + 1, x0 + 1)
    return (1 - wy) * top + wy * bottom


def _levels(image: Array) -> Array:
    """8-bit levels round(255 x), int32."""
    return jnp.round(image * 255).astype(jnp.int32)


def _autocontrast(image: Array) -> Array:
    """PIL ImageOps.autocontrast (cutoff 0) per channel, without its 8-bit truncation."""
    lo = jnp.min(image, axis=(0, 1))
    hi = jnp.max(image, axis=(0, 1))
    stretched = (image - lo) / jnp.where(hi > lo, hi - lo, 1.0)
    return jnp.where(hi > lo, stretched, image)


def _equalize(image: Array) -> Array:
    """PIL ImageOps.equalize per channel on 8-bit levels."""

    def channel(q: Array) -> Array:  # [H, W] int32 levels
        hist = jnp.zeros(256, jnp.int32).at[q.ravel()].add(1)
        last = hist[255 - jnp.argmax(hist[::-1] > 0)]  # count of the highest non-empty level
        step = (q.size - last) // 256
        lut = jnp.clip((step // 2 + jnp.cumsum(hist) - hist) // jnp.maximum(step, 1), 0, 255)
        return jnp.where(step > 0, lut[q], q)

    out = jax.vmap(channel, in_axes=-1, out_axes=-1)(_levels(image))
    return out.astype(image.dtype) / 255


def _posterize(image: Array, bits: Array) -> Array:
    """PIL ImageOps.posterize: keep the `bits` most significant bits of each 8-bit level."""
    shift = (8 - bits).astype(jnp.int32)
    return ((_levels(image) >> shift) << shift).astype(image.dtype) / 255


def _solarize(image: Array, threshold: Array) -> Array:
    """PIL ImageOps.solarize: invert levels >= threshold (0..256)."""
    return jnp.where(_levels(image) < threshold, image, 1.0 - image)


def _solarize_add(image: Array, add: Array, threshold: int = 128) -> Array:
    """timm solarize_add: levels < threshold get + add (saturating)."""
    return jnp.where(_levels(image) < threshold, jnp.minimum(image + add / 255, 1.0), image)


def _smooth(image: Array) -> Array:
    """PIL ImageFilter.SMOOTH (3x3 [[1,1,1],[1,5,1],[1,1,1]]/13), border pixels kept."""
    H, W, _ = image.shape
    acc = 4 * image[1:-1, 1:-1]  # centre weight 5 = 4 + the (1, 1) term of the loop
    for dy in range(3):
        for dx in range(3):
            acc = acc + image[dy : H - 2 + dy, dx : W - 2 + dx]
    return image.at[1:-1, 1:-1].set(acc / 13)


def _enhance(level: Array, sign: Array) -> Array:
    """timm _enhance_increasing_level_to_arg: factor 1 +- 0.9 level."""
    return 1.0 + sign * 0.9 * level


# name -> fn(image, level in [0, 1], sign +-1): timm's _RAND_INCREASING_TRANSFORMS ('inc1').
_PIXEL_OPS: dict[str, Callable[[Array, Array, Array], Array]] = {
    "AutoContrast": lambda x, lv, s: _autocontrast(x),
    "Equalize": lambda x, lv, s: _equalize(x),
    "Invert": lambda x, lv, s: 1.0 - x,
    "PosterizeIncreasing": lambda x, lv, s: _posterize(x, 4 - jnp.floor(4 * lv)),
    "SolarizeIncreasing": lambda x, lv, s: _solarize(x, 256 - jnp.floor(256 * lv)),
    "SolarizeAdd": lambda x, lv, s: _solarize_add(x, jnp.floor(110 * lv)),
    "ColorIncreasing": lambda x, lv, s: _blend(_gray(x), x, _enhance(lv, s)),
    "ContrastIncreasing": lambda x, lv, s: _blend(jnp.mean(_gray(x)), x, _enhance(lv, s)),
    "BrightnessIncreasing": lambda x, lv, s: _blend(0.0, x, _enhance(lv, s)),
    "SharpnessIncreasing": lambda x, lv, s: _blend(_smooth(x), x, _enhance(lv, s)),
}
# name -> fn(level, sign, height, width) -> [2, 3] affine map (PIL convention, see affine_warp).
_GEOMETRIC_OPS: dict[str, Callable[[Array, Array, int, int], Array]] = {
    "Rotate": lambda lv, s, h, w: rotation_matrix(s * 30.0 * lv, h, w),
    "ShearX": lambda lv, s, h, w: _matrix(1, s * 0.3 * lv, 0, 0, 1, 0),
    "ShearY": lambda lv, s, h, w: _matrix(1, 0, 0, s * 0.3 * lv, 1, 0),
    "TranslateXRel": lambda lv, s, h, w: _matrix(1, 0, s * 0.45 * lv * w, 0, 1, 0),
    "TranslateYRel": lambda lv, s, h, w: _matrix(1, 0, 0, 0, 1, s * 0.45 * lv * h),
}
RAND_AUGMENT_OPS = (*_PIXEL_OPS, *_GEOMETRIC_OPS)  # the 15 ops of timm's 'inc1' set


def rand_augment_op(
    image_HWC: Array,
    name: str,
    magnitude: Array | float,
    negate: Array | bool = False,
    fill: Fill = 0.5,
) -> Array:
    """One RandAugment op of `RAND_AUGMENT_OPS` at `magnitude` (0..10; level = magnitude / 10),
    negated where `negate` (ops with a signed argument), on one image [H, W, C]."""
    level = jnp.asarray(magnitude, jnp.float32) / 10.0
    sign = jnp.where(negate, -1.0, 1.0)
    if name in _GEOMETRIC_OPS:
        H, W, _ = image_HWC.shape
        return affine_warp(image_HWC, _GEOMETRIC_OPS[name](level, sign, H, W), fill)
    return _PIXEL_OPS[name](image_HWC, level, sign)


def _sample_magnitude(key: Array, magnitude: Array, std: Array, max_magnitude: Array) -> Array:
    """timm AugmentOp: N(m, std) (U(0, m) when std is inf), clipped to [0, max_magnitude]."""
    k_normal, k_uniform = jax.random.split(key)
    inf = jnp.isinf(std)
    gauss = magnitude + jnp.where(inf, 0.0, std) * jax.random.normal(k_normal)
    m = jnp.where(inf, jax.random.uniform(k_uniform, maxval=magnitude), gauss)
    return jnp.clip(m, 0.0, max_magnitude)


def rand_augment(
    key: Array,
    images_BHWC: Array,
    num_ops: int = 2,
    magnitude: float = 9.0,
    magnitude_std: float = 0.5,
    max_magnitude: float = 10.0,
    prob: float = 0.5,
    ops: Sequence[str] = RAND_AUGMENT_OPS,
    fill: Fill = 0.5,
) -> Array:
    """timm RandAugment 'rand-m9-mstd0.5-inc1' (defaults), per image. Static: num_ops, ops;
    magnitudes, prob and fill may be traced.

    All 15 ops of timm's increasing set are included (`RAND_AUGMENT_OPS`): AutoContrast,
    Equalize, Invert, Rotate (+-30 deg), PosterizeIncreasing (keep 4 - int(4 l) bits),
    SolarizeIncreasing (threshold 256 - int(256 l)), SolarizeAdd (+int(110 l) below 128),
    Color/Contrast/Brightness/SharpnessIncreasing (factor 1 +- 0.9 l), ShearX/Y (+-0.3 l),
    TranslateX/YRel (+-0.45 l of the side); l = magnitude / 10. Each of the `num_ops` layers picks
    an op uniformly (with replacement), draws its magnitude ~ N(magnitude, magnitude_std) clipped
    to [0, max_magnitude] and a random sign, and applies it with probability `prob`.
    Deviations from timm: float images (8-bit rounding only where an op is defined on levels:
    Equalize, Posterize, Solarize*); geometric ops are bilinear (timm's DeiT config: bicubic) and
    fill with `fill` (timm's create_transform fills with the dataset mean: pass IMAGENET_MEAN);
    AutoContrast is not truncated to 8 bits. Under vmap every op of a layer is computed and one
    selected (cost: the pixel ops plus one affine warp per layer)."""
    _, H, W, _ = images_BHWC.shape
    geometric = [name in _GEOMETRIC_OPS for name in ops]
    no_warp = lambda lv, s, h, w: _matrix(1, 0, 0, 0, 1, 0)
    matrix_fns = [partial(_GEOMETRIC_OPS.get(n, no_warp), h=H, w=W) for n in ops]
    pixel_fns = [_PIXEL_OPS.get(name, lambda x, lv, s: x) for name in ops]

    def layer(k: Array, image: Array) -> Array:
        k_op, k_mag, k_sign, k_apply = jax.random.split(k, 4)
        index = _randint(k_op, len(ops))
        level = _sample_magnitude(k_mag, magnitude, magnitude_std, max_magnitude) / 10.0
        sign = jnp.where(jax.random.bernoulli(k_sign), -1.0, 1.0)
        out = jax.lax.switch(index, pixel_fns, image, level, sign)
        if any(geometric):  # one warp serves every geometric op of the layer
            warped = affine_warp(image, jax.lax.switch(index, matrix_fns, level, sign), fill)
            out = jnp.where(jnp.asarray(geometric)[index], warped, out)
        return jnp.where(jax.random.bernoulli(k_apply, prob), out, image)

    def one(k: Array, image: Array) -> Array:
        keys = jax.random.split(k, num_ops)  # a loop, not unrolled: one layer to compile
        return jax.lax.fori_loop(0, num_ops, lambda i, x: layer(keys[i], x), image)

    return _per_example(key, images_BHWC, one)


def random_erasing(
    key: Array,
    images_BHWC: Array,
    prob: float = 0.25,
    area: Sequence[float] = (0.02, 1 / 3),
    log_ratio: Sequence[float] = (math.log(0.3), math.log(1 / 0.3)),
    mode: str = "pixel",
    noise: str = "uniform",
) -> Array:
    """timm RandomErasing (one box per image, count 1): with probability `prob` a box of area
    fraction ~ U(area) and log(h / w) ~ U(log_ratio) is filled by `mode`: 'pixel' per-pixel noise,
    'rand' one noise colour per box, 'const' zeros.

    timm erases NORMALIZED images with N(0, 1) noise; here the caller picks the scale: noise
    'uniform' (default) draws U[0, 1) for [0, 1] images, 'normal' draws N(0, 1) for images
    already normalized (timm's). The box is sampled in closed form (`_sample_box_size`) instead of
    timm's 10 tries, and may span the full side (timm needs h < H, w < W)."""
    _, H, W, C = images_BHWC.shape
    draw = {"uniform": jax.random.uniform, "normal": jax.random.normal}[noise]
    fill_shape = {"pixel": (H, W, C), "rand": (1, 1, C), "const": None}[mode]
    ratio_w_over_h = (-log_ratio[1], -log_ratio[0])

    def one(k: Array, image: Array) -> Array:
        k_apply, k_box, k_y, k_x, k_fill = jax.random.split(k, 5)
        h, w = _sample_box_size(k_box, H, W, area, ratio_w_over_h)
        top = _randint(k_y, H - h + 1)
        left = _randint(k_x, W - w + 1)
        rows, cols = jnp.arange(H)[:, None], jnp.arange(W)[None, :]
        inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
        inside = inside & jax.random.bernoulli(k_apply, prob)
        fill = 0.0 if fill_shape is None else draw(k_fill, fill_shape, image.dtype)
        return jnp.where(inside[..., None], fill, image)

    return _per_example(key, images_BHWC, one)


def mixup(images_BHWC: Array, targets_BK: Array, lam: Array | float) -> tuple[Array, Array]:
    """timm Mixup ('batch' mode) with the batch reversed as partner: lam x + (1 - lam) x[::-1]."""
    lam = jnp.asarray(lam, jnp.float32)
    images = lam * images_BHWC + (1 - lam) * images_BHWC[::-1]
    return images.astype(images_BHWC.dtype), lam * targets_BK + (1 - lam) * targets_BK[::-1]


def cutmix(
    key: Array, images_BHWC: Array, targets_BK: Array, lam: Array | float
) -> tuple[Array, Array, Array]:
    """timm CutMix ('batch' mode, correct_lam): one box of side int(side sqrt(1 - lam)) (timm's
    half-extents cut // 2 each way) at a uniform centre, clipped to the image, pasted from the
    reversed batch; lam is corrected to 1 - box area / image area. Returns (x, targets, lam)."""
    _, H, W, _ = images_BHWC.shape
    k_y, k_x = jax.random.split(key)
    cut = jnp.sqrt(1.0 - jnp.asarray(lam, jnp.float32))
    half_h, half_w = (H * cut).astype(jnp.int32) // 2, (W * cut).astype(jnp.int32) // 2
    cy, cx = _randint(k_y, H), _randint(k_x, W)
    y0, y1 = jnp.clip(cy - half_h, 0, H), jnp.clip(cy + half_h, 0, H)
    x0, x1 = jnp.clip(cx - half_w, 0, W), jnp.clip(cx + half_w, 0, W)
    rows, cols = jnp.arange(H)[:, None], jnp.arange(W)[None, :]
    box = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    images = jnp.where(box[None, :, :, None], images_BHWC[::-1], images_BHWC)
    lam = 1.0 - ((y1 - y0) * (x1 - x0)).astype(jnp.float32) / (H * W)
    return images, lam * targets_BK + (1 - lam) * targets_BK[::-1], lam


def mixup_cutmix(
    key: Array,
    images_BHWC: Array,
    targets_BK: Array,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 1.0,
    switch_prob: float = 0.5,
) -> tuple[Array, Array, Array]:
    """timm Mixup in 'batch' mode (mix_prob 1): one lam ~ Beta(alpha, alpha) per batch; with both
    alphas > 0 CutMix is chosen with probability switch_prob; partner = the reversed batch.
    Returns (images, targets, lam); both alphas 0 is the identity with lam = 1."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images_BHWC, targets_BK, jnp.float32(1.0)
    k_switch, k_lam, k_box = jax.random.split(key, 3)
    use_cutmix, alpha = cutmix_alpha > 0, max(mixup_alpha, cutmix_alpha)
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = jax.random.uniform(k_switch) < switch_prob
        alpha = jnp.where(use_cutmix, cutmix_alpha, mixup_alpha)
    lam = jax.random.beta(k_lam, alpha, alpha).astype(jnp.float32)
    do_cutmix = lambda: cutmix(k_box, images_BHWC, targets_BK, lam)
    do_mixup = lambda: (*mixup(images_BHWC, targets_BK, lam), lam)
    if isinstance(use_cutmix, bool):
        return do_cutmix() if use_cutmix else do_mixup()
    return jax.lax.cond(use_cutmix, do_cutmix, do_mixup)
