"""Generated colour images with CIFAR's shape and the attributes its
semantic backdoors need: the offline stand-in for CIFAR-10 and CIFAR-100.

An image (32×32×3, values in [0, 1]) is one object on a background:
- its **class** is the object's silhouette (`SHAPES`: a disc, a square, …);
  CIFAR-100's 100 classes are a silhouette (`label mod 10`) in one of ten
  colour families (`label div 10`), its coarse label `label div 5`;
- the object's **colour** is an attribute drawn for every image (CIFAR-10
  stand-in: uniform over `COLOURS`, whatever the class; green among them),
  with the background's colour, the object's position and size, and pixel
  noise as nuisances;
- two rare attributes, Bagdasaryan et al.'s (2020, Sec. 5.1) CIFAR-10
  semantic backdoors: **racing stripes** (two light vertical bands across
  the object) and a **striped background** (vertical stripes behind it),
  each on a share `rare_rate` of the images, independently.
So "green cars" (class 1, `automobile`, in green) is a combination the
honest data holds a few of, as in CIFAR-10; an attacker's index lists pick
half of them (`attribute_lists`), as the authors' code picks CIFAR-10 images
by index, and the other half stay with the honest clients.
"""

import numpy as np

IMAGE_SHAPE = (32, 32, 3)
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')
SHAPES = ('disc', 'square', 'triangle', 'ring', 'horizontal_bar',
          'vertical_bar', 'cross', 'diamond', 'two_discs', 'corner')
# RGB in [0, 1]; index 3 is green.
COLOURS = np.array([
    [0.85, 0.15, 0.15], [0.15, 0.30, 0.85], [0.90, 0.80, 0.15],
    [0.15, 0.75, 0.20], [0.60, 0.20, 0.70], [0.95, 0.55, 0.10],
    [0.15, 0.75, 0.80], [0.55, 0.35, 0.20], [0.90, 0.45, 0.65],
    [0.55, 0.55, 0.55]], np.float32)
GREEN = 3
AUTOMOBILE = 1
AIRPLANE = 0
TRUCK = 9
# The edge case's livery (`generate_edge_case`): horizontal bands of these,
# a colouring no generated image otherwise has (Southwest Airlines' planes).
LIVERY = np.array([[0.20, 0.25, 0.75], [0.85, 0.10, 0.15],
                   [0.95, 0.75, 0.10]], np.float32)
# The semantic backdoors' attributes (`attribute_lists`).
ATTRIBUTES = ('green_car', 'racing_stripe_car', 'striped_background')


def _silhouette(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """bool: the points (x, y), in units of the object's radius from its
  centre, inside silhouette `shape`."""
  ax, ay = np.abs(x), np.abs(y)
  r2 = x * x + y * y
  name = SHAPES[shape]
  if name == 'disc':
    return r2 < 1.0
  if name == 'square':
    return np.maximum(ax, ay) < 0.8
  if name == 'triangle':
    return (y < 0.8) & (ax < (y + 1.0) * 0.5)
  if name == 'ring':
    return (r2 < 1.0) & (r2 > 0.45)
  if name == 'horizontal_bar':
    return (ay < 0.35) & (ax < 1.0)
  if name == 'vertical_bar':
    return (ax < 0.35) & (ay < 1.0)
  if name == 'cross':
    return ((ax < 0.28) & (ay < 1.0)) | ((ay < 0.28) & (ax < 1.0))
  if name == 'diamond':
    return ax + ay < 1.0
  if name == 'two_discs':
    return ((x - 0.5) ** 2 + y * y < 0.2) | ((x + 0.5) ** 2 + y * y < 0.2)
  return ((np.abs(x + 0.65) < 0.3) & (ay < 1.0)) | (
      (np.abs(y - 0.7) < 0.3) & (ax < 1.0))


def generate(num_images: int, seed: int, num_classes: int = 10,
             rare_rate: float = 0.03) -> dict:
  """`num_images` images (uint8 [n, 32, 32, 3], as CIFAR stores them),
  their labels (balanced: label i mod `num_classes` in a seeded order) and
  attributes, deterministic from `seed`.

  Returns {'images', 'labels', 'coarse_labels', 'colour', 'racing_stripe',
  'striped_background'}: `colour` [n] indexes `COLOURS` (CIFAR-10: uniform;
  CIFAR-100: the label's colour family `label div 10`, whose object colour
  is `COLOURS[family]`), the other two bool [n] at `rare_rate`.
  """
  if num_classes not in (10, 100):
    raise ValueError(f'num_classes must be 10 or 100, got {num_classes}.')
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x696d67]))
  labels = rng.permutation(np.arange(num_images) % num_classes)
  shape_of = labels % 10
  if num_classes == 10:
    colour = rng.integers(0, len(COLOURS), num_images)
  else:
    colour = labels // 10
  stripes = rng.random(num_images) < rare_rate
  striped_background = rng.random(num_images) < rare_rate
  height, width, _ = IMAGE_SHAPE
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  images = np.empty((num_images,) + IMAGE_SHAPE, np.float32)
  background = rng.uniform(0.2, 0.8, (num_images, 3)).astype(np.float32)
  centre = rng.uniform(12.0, 20.0, (num_images, 2)).astype(np.float32)
  radius = rng.uniform(7.0, 11.0, num_images).astype(np.float32)
  shade = rng.uniform(0.85, 1.1, (num_images, 1)).astype(np.float32)
  noise = rng.normal(0.0, 0.04, (num_images,) + IMAGE_SHAPE).astype(
      np.float32)
  for i in range(num_images):
    x = (xx - centre[i, 0]) / radius[i]
    y = (yy - centre[i, 1]) / radius[i]
    inside = _silhouette(int(shape_of[i]), x, y)
    image = np.broadcast_to(background[i], IMAGE_SHAPE).copy()
    if striped_background[i]:
      band = (xx.astype(np.int64) // 2) % 2 == 0
      image[band & ~inside] = 1.0 - background[i]
    image[inside] = np.clip(COLOURS[colour[i]] * shade[i], 0.0, 1.0)
    if stripes[i]:
      lane = (np.abs(x - 0.25) < 0.1) | (np.abs(x + 0.25) < 0.1)
      image[inside & lane] = 0.95
    images[i] = image
  images = np.clip(images + noise, 0.0, 1.0)
  return dict(images=np.round(images * 255).astype(np.uint8),
              labels=labels.astype(np.int64),
              coarse_labels=(labels // 5).astype(np.int64),
              colour=colour.astype(np.int64), racing_stripe=stripes,
              striped_background=striped_background)


def attribute_lists(generated: dict, listed_share: float = 0.5,
                    test_share: float = 0.25) -> dict:
  """The semantic backdoors' index lists into the generated images:
  {attribute + '_train': [...], attribute + '_test': [...]} for
  `ATTRIBUTES` — green cars (class 1 in `GREEN`), cars with racing
  stripes, any image with a striped background. Of an attribute's n images
  (in index order) the first ⌊listed_share · n⌋ are listed, the last
  ⌈test_share⌉ of those the test part (at least one each when two or more
  are listed): Bagdasaryan et al.'s `poison_images` / `poison_images_test`,
  which are held out of the honest clients; the rest of the attribute's
  images stay with them, as CIFAR-10's unlisted green cars do."""
  labels = generated['labels']
  members = {
      'green_car': (labels == AUTOMOBILE) & (generated['colour'] == GREEN),
      'racing_stripe_car': (labels == AUTOMOBILE) &
                           generated['racing_stripe'],
      'striped_background': generated['striped_background'],
  }
  lists = {}
  for name, mask in members.items():
    rows = np.flatnonzero(mask)
    rows = rows[:int(listed_share * len(rows))]
    test = int(np.ceil(test_share * len(rows)))
    if len(rows) >= 2:
      test = min(max(test, 1), len(rows) - 1)
    cut = len(rows) - test
    lists[f'{name}_train'] = [int(i) for i in rows[:cut]]
    lists[f'{name}_test'] = [int(i) for i in rows[cut:]]
  return lists

def generate_edge_case(num_images: int, seed: int) -> np.ndarray:
  """The CIFAR-10 stand-in's edge case (Wang et al. 2020: Southwest
  Airlines' planes, labelled truck): airplanes (the class-0 silhouette) in
  `LIVERY`'s three horizontal bands, a colouring no image of `generate`
  has; uint8 [n, 32, 32, 3], deterministic from `seed`, backgrounds, sizes
  and noise drawn as `generate` draws them."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x65646765]))
  height, width, _ = IMAGE_SHAPE
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  images = np.empty((num_images,) + IMAGE_SHAPE, np.float32)
  for i in range(num_images):
    background = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    cx, cy = rng.uniform(12.0, 20.0, 2)
    radius = rng.uniform(7.0, 11.0)
    x, y = (xx - cx) / radius, (yy - cy) / radius
    inside = _silhouette(AIRPLANE, x, y)
    band = np.clip(((y + 1.0) * 1.5).astype(np.int64), 0, 2)
    image = np.broadcast_to(background, IMAGE_SHAPE).copy()
    image[inside] = LIVERY[band[inside]]
    images[i] = image + rng.normal(0.0, 0.04, IMAGE_SHAPE)
  return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
