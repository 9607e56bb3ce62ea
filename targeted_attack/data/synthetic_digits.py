"""A generated, writer-partitioned handwritten-digits dataset (offline EMNIST).

Each client is a writer with its own style: slant, rotation, scale, aspect,
stroke width, its own systematic distortion of every digit's strokes, variant
glyphs (a flag on the 1, rarely a crossbar on the 7) and per-sample jitter.
Digits are strokes (polylines in a unit box) rasterized with anti-aliasing.
Elements match TFF's EMNIST: `OrderedDict(label=int32, pixels=float32[28, 28])`
with values in [0, 1], white background (1.0) and dark ink, as TFF's EMNIST.
Deterministic from the seed; NumPy only, vectorized (seconds for 10⁴–10⁵ images).
"""

import dataclasses

import numpy as np

IMAGE_SIZE = 28
NUM_CLASSES = 10


def _arc(cx, cy, rx, ry, start_deg, end_deg, n=12):
  theta = np.deg2rad(np.linspace(start_deg, end_deg, n))
  return [(cx + rx * np.cos(t), cy + ry * np.sin(t)) for t in theta]


# Strokes per glyph, (x, y) in a unit box, y pointing down.
_GLYPHS = {
    '0': [_arc(0.5, 0.5, 0.3, 0.42, 0, 360, 14)],
    '1': [[(0.5, 0.08), (0.5, 0.92)]],
    '1_flag': [[(0.33, 0.25), (0.5, 0.08), (0.5, 0.92)]],
    '2': [_arc(0.5, 0.32, 0.28, 0.24, 180, 400, 12) +
          [(0.22, 0.92), (0.8, 0.92)]],
    '3': [_arc(0.5, 0.3, 0.25, 0.22, 200, 450, 10),
          _arc(0.5, 0.72, 0.28, 0.22, 270, 520, 12)],
    '4': [[(0.65, 0.92), (0.65, 0.08), (0.18, 0.65), (0.85, 0.65)]],
    '5': [[(0.75, 0.08), (0.3, 0.08), (0.27, 0.47)] +
          _arc(0.5, 0.67, 0.27, 0.25, 225, 500, 12)],
    '6': [[(0.7, 0.08), (0.42, 0.32), (0.27, 0.62)] +
          _arc(0.51, 0.7, 0.24, 0.22, 180, 540, 12)],
    '7': [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.92)]],
    '7_crossbar': [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.92)],
                   [(0.38, 0.52), (0.78, 0.52)]],
    '8': [_arc(0.5, 0.29, 0.22, 0.2, 90, 450, 11),
          _arc(0.5, 0.71, 0.27, 0.22, -90, 270, 12)],
    '9': [_arc(0.5, 0.32, 0.25, 0.23, 0, 360, 14), [(0.75, 0.32),
                                                      (0.7, 0.92)]],
}


def _glyph_arrays(name):
  """Points [P, 2] and a mask [P-1] of segments that join points of one stroke."""
  points, mask = [], []
  for stroke in _GLYPHS[name]:
    if points:
      mask.append(False)  # pen lifted between strokes
    points.extend(stroke)
    mask.extend([True] * (len(stroke) - 1))
  return np.asarray(points, np.float32), np.asarray(mask, bool)


_ARRAYS = {name: _glyph_arrays(name) for name in _GLYPHS}
_PIXEL_CENTERS = np.stack(
    np.meshgrid(np.arange(IMAGE_SIZE) + 0.5, np.arange(IMAGE_SIZE) + 0.5,
                indexing='xy'), axis=-1).reshape(-1, 2).astype(np.float32)


def rasterize(points: np.ndarray, segment_mask: np.ndarray,
              stroke_width: np.ndarray, chunk: int = 256) -> np.ndarray:
  """Ink in [0, 1], shape [B, 28, 28], of B polylines [B, P, 2] in pixels.

  ink = clip(w/2 + 1/2 − d, 0, 1), d the distance from the pixel centre to
  the nearest segment: an anti-aliased stroke of width w.
  """
  valid = np.flatnonzero(segment_mask)
  gx, gy = _PIXEL_CENTERS[:, 0], _PIXEL_CENTERS[:, 1]  # [784]
  out = np.empty((len(points), IMAGE_SIZE * IMAGE_SIZE), np.float32)
  for lo in range(0, len(points), chunk):
    pts = points[lo:lo + chunk]
    ax, ay = pts[:, valid, 0, None], pts[:, valid, 1, None]  # [B, S, 1]
    abx = pts[:, valid + 1, 0, None] - ax
    aby = pts[:, valid + 1, 1, None] - ay
    inv_len_sq = 1.0 / np.maximum(abx * abx + aby * aby, 1e-6)
    gax, gay = gx - ax, gy - ay  # [B, S, 784]
    t = np.clip((gax * abx + gay * aby) * inv_len_sq, 0.0, 1.0)
    dx, dy = gax - t * abx, gay - t * aby
    d = np.sqrt(np.min(dx * dx + dy * dy, axis=1))  # [B, 784]
    out[lo:lo + chunk] = np.clip(
        stroke_width[lo:lo + chunk, None] / 2 + 0.5 - d, 0.0, 1.0)
  return out.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


@dataclasses.dataclass(frozen=True)
class WriterStyle:
  slant: float
  rotation: float
  scale: float
  aspect: float
  stroke_width: float
  jitter: float
  uses_flag_one: bool
  uses_crossbar_seven: bool
  distortion_seed: int


def sample_writer_style(rng: np.random.RandomState,
                        crossbar_seven_rate: float = 0.03) -> WriterStyle:
  return WriterStyle(
      slant=rng.uniform(-0.35, 0.35),
      rotation=rng.normal(0.0, 0.08),
      scale=rng.uniform(0.72, 0.95),
      aspect=rng.uniform(0.75, 1.15),
      stroke_width=rng.uniform(1.0, 2.6),
      jitter=rng.uniform(0.008, 0.03),
      uses_flag_one=bool(rng.rand() < 0.5),
      uses_crossbar_seven=bool(rng.rand() < crossbar_seven_rate),
      distortion_seed=int(rng.randint(2**31 - 1)))


def glyph_name(style: WriterStyle, digit: int) -> str:
  if digit == 1 and style.uses_flag_one:
    return '1_flag'
  if digit == 7 and style.uses_crossbar_seven:
    return '7_crossbar'
  return str(digit)


_GLYPH_INDEX = {name: i for i, name in enumerate(sorted(_GLYPHS))}


def render(styles: list, glyph: str, rng: np.random.RandomState) -> np.ndarray:
  """One image [len(styles), 28, 28] of `glyph` per entry of `styles`.

  pixels = 1 − ink: a white background and dark strokes.
  """
  base, mask = _ARRAYS[glyph]
  count = len(styles)
  field = lambda name: np.array([getattr(s, name) for s in styles],
                                np.float32)[:, None]
  # Each writer's own systematic distortion of this glyph.
  distortion = np.stack([
      np.random.RandomState(
          (s.distortion_seed + 7919 * _GLYPH_INDEX[glyph]) % (2**31 - 1)
      ).normal(0.0, 0.035, base.shape) for s in styles
  ])
  pts = base[None] + distortion + rng.normal(
      0.0, 1.0, (count,) + base.shape) * field('jitter')[..., None]
  centred = pts - 0.5
  x = centred[..., 0] * field('aspect') - field('slant') * centred[..., 1]
  y = centred[..., 1]
  angle = field('rotation') + rng.normal(0.0, 0.04, (count, 1))
  xr = np.cos(angle) * x - np.sin(angle) * y
  yr = np.sin(angle) * x + np.cos(angle) * y
  scale = field('scale')[..., None] * rng.uniform(0.93, 1.07, (count, 1, 1))
  offset = rng.normal(0.0, 1.0, (count, 1, 2))
  pixel_points = (np.stack([xr, yr], -1) * (IMAGE_SIZE - 6) * scale +
                  IMAGE_SIZE / 2 + offset)
  width = field('stroke_width')[:, 0] * rng.uniform(0.9, 1.1, count)
  ink = rasterize(pixel_points.astype(np.float32), mask,
                  width.astype(np.float32))
  ink *= rng.uniform(0.85, 1.0, (count, 1, 1)).astype(np.float32)
  return 1.0 - ink


@dataclasses.dataclass
class WriterData:
  """One writer's train and test examples as arrays."""
  style: WriterStyle
  train_pixels: np.ndarray
  train_labels: np.ndarray
  test_pixels: np.ndarray
  test_labels: np.ndarray


def generate_writers(num_writers: int, examples_per_writer: int, seed: int,
                     test_fraction: float = 0.2,
                     crossbar_seven_rate: float = 0.03) -> list:
  """`num_writers` writers, each ~`examples_per_writer` train examples.

  Per writer, digit counts are multinomial over the 10 classes; its test
  split has ~`test_fraction` as many examples again.
  """
  rng = np.random.RandomState(seed)
  styles = [sample_writer_style(rng, crossbar_seven_rate)
            for _ in range(num_writers)]
  counts = []
  for _ in range(num_writers):
    n_train = max(10, int(rng.poisson(examples_per_writer)))
    n_test = max(1, int(round(n_train * test_fraction)))
    counts.append((rng.multinomial(n_train, [0.1] * 10),
                   rng.multinomial(n_test, [0.1] * 10)))
  # Render glyph by glyph across all writers: vectorized, bounded memory.
  requests = {}  # glyph -> list of (writer, split, digit)
  for w, style in enumerate(styles):
    for split, split_counts in enumerate(counts[w]):
      for digit, count in enumerate(split_counts):
        requests.setdefault(glyph_name(style, digit), []).extend(
            [(w, split, digit)] * int(count))
  pieces = {}
  for glyph in sorted(requests):
    keys = requests[glyph]
    pixels = render([styles[w] for w, _, _ in keys], glyph, rng)
    for key, image in zip(keys, pixels):
      pieces.setdefault(key, []).append(image)
  images = {key: np.stack(v) for key, v in pieces.items()}
  writers = []
  for w, style in enumerate(styles):
    parts = []
    for split in (0, 1):
      pix = [images[(w, split, d)] for d in range(10) if (w, split, d) in images]
      lab = [np.full(len(images[(w, split, d)]), d, np.int32)
             for d in range(10) if (w, split, d) in images]
      order = np.random.RandomState(seed + w + split).permutation(
          sum(len(p) for p in pix))
      parts.append((np.concatenate(pix)[order], np.concatenate(lab)[order]))
    writers.append(WriterData(style, parts[0][0], parts[0][1], parts[1][0],
                              parts[1][1]))
  return writers
