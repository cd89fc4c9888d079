"""The "shapes" world: procedurally drawn scenes of flat coloured shapes with captions.

Everything here is deterministic given a numpy Generator. No downloads, no files.

A scene is one shape (80%) or two shapes (20%) of flat colour on a flat background, drawn
anti-aliased (rendered at 2x and box-downsampled). Captions look like

    "a large red circle at the top left on a white background"
    "a gray background with a small blue star on the right"
    "a red circle at the top left and a green square at the bottom on a black background"
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Shape colours (name -> RGB). Chosen to be far apart in RGB so a nearest-colour check works.
SHAPE_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (245, 215, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
# Background colours (caption name -> RGB).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "light blue": (170, 210, 240),
}
SHAPES = ["circle", "square", "triangle", "star"]
# Size name -> radius (circle) / half side (square) in pixels at 256x256.
SIZES: dict[str, float] = {"small": 18.0, "medium": 32.0, "large": 50.0}
# 3x3 grid of positions: name -> (row, col); phrase used in captions.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0), "top": (0, 1), "top right": (0, 2),
    "left": (1, 0), "center": (1, 1), "right": (1, 2),
    "bottom left": (2, 0), "bottom": (2, 1), "bottom right": (2, 2),
}
POSITION_PHRASES: dict[str, str] = {
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right",
}
GRID = (0.22, 0.5, 0.78)  # cell centres as a fraction of the image side


@dataclass
class ShapeSpec:
    shape: str
    color: str
    size: str
    position: str
    # continuous parameters (fractions of the image side)
    cx: float
    cy: float
    radius: float
    angle: float  # rotation in degrees (0: all shapes are drawn upright)


@dataclass
class Scene:
    background: str
    shapes: list[ShapeSpec]
    caption: str


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def shape_phrase(s: ShapeSpec, with_size: bool) -> str:
    words = ([s.size] if with_size else []) + [s.color, s.shape]
    return f"{article(words[0])} {' '.join(words)} {POSITION_PHRASES[s.position]}"


def make_caption(bg: str, shapes: list[ShapeSpec], with_size: list[bool], bg_first: bool,
                 with_bg: bool) -> str:
    objs = " and ".join(shape_phrase(s, w) for s, w in zip(shapes, with_size))
    if not with_bg:
        return objs
    if bg_first:
        return f"{article(bg)} {bg} background with {objs}"
    return f"{objs} on {article(bg)} {bg} background"


def _spec(rng: np.random.Generator, shape: str, color: str, size: str, position: str,
          image_size: int) -> ShapeSpec:
    r, c = POSITIONS[position]
    jitter = 8.0 / 256.0
    cx = GRID[c] + rng.uniform(-jitter, jitter)
    cy = GRID[r] + rng.uniform(-jitter, jitter)
    radius = SIZES[size] / 256.0 * rng.uniform(0.9, 1.1)
    angle = 0.0  # kept upright: the evaluation's fill-ratio shape check assumes axis-aligned shapes
    return ShapeSpec(shape, color, size, position, cx, cy, radius, angle)


def sample_scene(rng: np.random.Generator, image_size: int = 256, p_two: float = 0.2) -> Scene:
    """Draw random scene parameters and a caption (does not render)."""
    bg = str(rng.choice(list(BACKGROUNDS)))
    n = 2 if rng.random() < p_two else 1
    colors_ok = [c for c in SHAPE_COLORS if c != bg]
    positions = list(POSITIONS)
    specs: list[ShapeSpec] = []
    used_pos: list[str] = []
    for _ in range(n):
        shape = str(rng.choice(SHAPES))
        color = str(rng.choice(colors_ok))
        # two-shape scenes use small/medium only so the shapes rarely overlap
        size = str(rng.choice(list(SIZES) if n == 1 else ["small", "medium"]))
        pos = str(rng.choice([p for p in positions if p not in used_pos]))
        used_pos.append(pos)
        specs.append(_spec(rng, shape, color, size, pos, image_size))
    with_size = [bool(rng.random() < 0.8) for _ in specs]
    bg_first = bool(rng.random() < 0.15)
    with_bg = bool(rng.random() < 0.9)
    return Scene(bg, specs, make_caption(bg, specs, with_size, bg_first, with_bg))


def scene_from_attributes(rng: np.random.Generator, shape: str, color: str, size: str, position: str,
                          bg: str, image_size: int = 256) -> Scene:
    s = _spec(rng, shape, color, size, position, image_size)
    return Scene(bg, [s], make_caption(bg, [s], [True], False, True))


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    a0 = math.radians(angle)
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(x * r, y * r) for x, y in pts]
    elif shape == "triangle":
        # equilateral triangle pointing up, circumradius 1.25 r, centred on its centroid
        R = 1.25 * r
        pts = [(R * math.cos(math.radians(-90 + 120 * k)), R * math.sin(math.radians(-90 + 120 * k)))
               for k in range(3)]
    elif shape == "star":
        R, rin = 1.3 * r, 0.55 * r
        pts = []
        for k in range(10):
            rad = R if k % 2 == 0 else rin
            t = math.radians(-90 + 36 * k)
            pts.append((rad * math.cos(t), rad * math.sin(t)))
    else:
        raise ValueError(shape)
    ca, sa = math.cos(a0), math.sin(a0)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]


def sample_vae_scene(rng: np.random.Generator, image_size: int = 256) -> tuple[Scene, tuple[int, int, int]]:
    """A scene for autoencoder training only (no caption): the background is any palette colour
    (shape colours too, and 20% of the time a uniformly random colour), 1-4 shapes of any size
    anywhere. Large flat areas of every colour teach the VAE exact colours; the captioned scenes
    alone have too few shape pixels for that. Returns (scene, background RGB)."""
    palette = list(BACKGROUNDS.values()) + list(SHAPE_COLORS.values())
    if rng.random() < 0.2:
        bg = tuple(int(v) for v in rng.integers(0, 256, size=3))
    else:
        bg = palette[int(rng.integers(len(palette)))]
    specs = []
    for _ in range(int(rng.integers(1, 5))):
        color = str(rng.choice([c for c in SHAPE_COLORS if SHAPE_COLORS[c] != bg]))
        r = float(rng.uniform(10, 70)) / 256.0
        specs.append(ShapeSpec(str(rng.choice(SHAPES)), color, "medium", "center",
                               float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.05, 0.95)), r, 0.0))
    return Scene("custom", specs, ""), bg


def render(scene: Scene, image_size: int = 256, supersample: int = 2,
           bg_rgb: tuple[int, int, int] | None = None) -> np.ndarray:
    """Render to an (H, W, 3) uint8 array."""
    S = image_size * supersample
    img = Image.new("RGB", (S, S), bg_rgb if bg_rgb is not None else BACKGROUNDS[scene.background])
    d = ImageDraw.Draw(img)
    for s in scene.shapes:
        col = SHAPE_COLORS[s.color]
        cx, cy, r = s.cx * S, s.cy * S, s.radius * S
        if s.shape == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
        else:
            d.polygon(_polygon(s.shape, cx, cy, r, s.angle), fill=col)
    if supersample > 1:
        img = img.resize((image_size, image_size), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


def foreground_mask(image: np.ndarray, bg_rgb: tuple[int, int, int]) -> np.ndarray:
    """(H, W) bool: pixels of an (H, W, 3) uint8 render that differ from the background colour."""
    return np.abs(image.astype(np.int16) - np.array(bg_rgb, np.int16)).sum(-1) > 0


def caption_words() -> list[str]:
    """Every word any caption can contain (used to build the tokenizers)."""
    words = {"a", "an", "at", "the", "on", "in", "with", "and", "background"}
    words |= set(SHAPE_COLORS) | set(SHAPES) | set(SIZES)
    for b in BACKGROUNDS:
        words |= set(b.split())
    for p in POSITION_PHRASES.values():
        words |= set(p.split())
    return sorted(words)


# ----------------------------------------------------------------------------------------------
# Automatic check used for evaluation: where is the dominant non-background colour, which colour
# is it, and roughly which shape?


def analyse(image: np.ndarray) -> dict:
    """Find the dominant non-background colour blob of an (H, W, 3) uint8 image.

    Background = median colour of the 4-pixel border. Foreground = pixels further than 60 (RGB
    Euclidean) from it. Each foreground pixel is labelled with its nearest SHAPE_COLORS entry; the
    most frequent label is the dominant colour, its pixels give the centroid and a fill ratio
    (pixel count / 1st..99th-percentile bounding-box area) that separates the shapes on clean
    renders: square ~1.0, circle ~0.88, triangle ~0.63, star ~0.50.
    """
    img = image.astype(np.float32)
    H, W, _ = img.shape
    border = np.concatenate([img[:4].reshape(-1, 3), img[-4:].reshape(-1, 3),
                             img[:, :4].reshape(-1, 3), img[:, -4:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    dist_bg = np.linalg.norm(img - bg, axis=-1)
    fg = dist_bg > 60.0
    bg_name = min(BACKGROUNDS, key=lambda k: np.linalg.norm(np.array(BACKGROUNDS[k]) - bg))
    out = {"bg_rgb": bg.round().astype(int).tolist(), "bg_name": bg_name, "fg_fraction": float(fg.mean())}
    if fg.sum() < 0.003 * H * W:
        out.update(color=None, cx=None, cy=None, shape=None, fill=None)
        return out
    names = list(SHAPE_COLORS)
    pal = np.array([SHAPE_COLORS[n] for n in names], dtype=np.float32)
    px = img[fg]
    lab = np.argmin(np.linalg.norm(px[:, None, :] - pal[None], axis=-1), axis=1)
    counts = np.bincount(lab, minlength=len(names))
    k = int(np.argmax(counts))
    ys, xs = np.nonzero(fg)
    sel = lab == k
    ys, xs = ys[sel], xs[sel]
    cx, cy = float(xs.mean()) / W, float(ys.mean()) / H
    # robust bounding box (1st..99th percentile) for the fill ratio
    x0, x1 = np.percentile(xs, [1, 99])
    y0, y1 = np.percentile(ys, [1, 99])
    box = max((x1 - x0 + 1) * (y1 - y0 + 1), 1.0)
    fill = float(sel.sum()) / box
    shape = "square" if fill > 0.95 else "circle" if fill > 0.77 else "triangle" if fill > 0.59 else "star"
    out.update(color=names[k], cx=cx, cy=cy, shape=shape, fill=fill)
    return out


def position_ok(position: str, cx: float, cy: float) -> bool:
    """Is the centroid in the requested region? Corners: the matching quadrant; center: the middle
    third of both axes; edges (top/left/...): the matching third on that axis, middle third on the other."""
    def third(v: float) -> int:
        return 0 if v < 1 / 3 else 1 if v < 2 / 3 else 2
    r, c = POSITIONS[position]
    if position in ("top left", "top right", "bottom left", "bottom right"):
        return (cy < 0.5) == (r == 0) and (cx < 0.5) == (c == 0)
    return third(cy) == r and third(cx) == c
