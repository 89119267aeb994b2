"""A small synthetic "shapes" dataset for CPU demos
(tools/make_demo_data.py).

Deterministic (seeded) and download-free. One scene rendering feeds three
annotation formats under the output folder::

    train/*.png, val/*.png                     RGB images
    annotations/instances_{train,val}.json     COCO instances (Mask R-CNN)
    ann_dir/{train,val}/*.png                  semantic labels 0=bg, 1..3
    annotations/keypoints_{train,val}.json     COCO keypoints (top-down pose)
    meta.json                                  parameters, classes, keypoints
"""
from __future__ import annotations
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np

FORMAT_VERSION = 2
CLASSES = ('circle', 'triangle', 'rectangle')
KEYPOINT_NAMES = ('top', 'right', 'bottom', 'left')
SKELETON = [[1, 2], [2, 3], [3, 4], [4, 1]]
FLIP_PAIRS = [[1, 3]]
SIGMAS = [0.05] * 4
SPLITS = ('train', 'val')

MIN_SHAPE_PX = 12  # smallest shape extent (circumscribed diameter)
MAX_SHAPE_FRAC = 0.45  # largest extent as a fraction of the image side
MIN_VISIBLE_FRAC = 0.3  # occluded instances must keep this much of their area
MIN_VISIBLE_PX = 40
MIN_COLOUR_DIST = 60.0  # RGB distance between a shape and what it covers
SUBPIXEL_SHIFT = 4  # cv2 drawing with 1/16 px precision


@dataclass
class Shape:
    """One drawn object: its class, full (unoccluded) mask and vertices."""

    category_id: int
    full_mask: np.ndarray  # bool HxW
    vertices: np.ndarray | None  # (N, 2) xy for polygons, None for circles


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth gradient, low-frequency blobs and optional texture stripes
    (float HxWx3)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    theta = rng.uniform(0, 2 * np.pi)
    t = (xx * math.cos(theta) + yy * math.sin(theta))
    t = (t - t.min()) / (t.max() - t.min())
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * t[..., None]
    grid = rng.normal(0, rng.uniform(10, 35),
                      (rng.integers(2, 6), rng.integers(2, 6), 3))
    img += cv2.resize(
        grid.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(0, 4)):
        phi = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24) / (size - 1)
        wave = np.sin(2 * np.pi * (xx * math.cos(phi) + yy * math.sin(phi)) /
                      period)
        wave = np.clip(wave * rng.uniform(1, 4), -1, 1)  # soft square wave
        x0, y0 = rng.integers(0, size // 2, 2)
        x1, y1 = rng.integers(size // 2, size + 1, 2)
        region = np.zeros((size, size), np.float32)
        region[y0:y1, x0:x1] = 1
        img += (wave * region)[..., None] * rng.uniform(-40, 40, 3).astype(
            np.float32)
    return img


def _shape_geometry(rng: np.random.Generator, category_id: int, size: int,
                    extent: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Rasterise one shape of the given extent at a random place in the
    image."""
    radius = extent / 2
    cx, cy = rng.uniform(radius + 1, size - 1 - radius, 2)
    mask = np.zeros((size, size), np.uint8)
    scale = 1 << SUBPIXEL_SHIFT
    if CLASSES[category_id - 1] == 'circle':
        cv2.circle(
            mask, (round(cx * scale), round(cy * scale)),
            round(radius * scale),
            1,
            thickness=-1,
            lineType=cv2.LINE_8,
            shift=SUBPIXEL_SHIFT)
        return mask.astype(bool), None
    if CLASSES[category_id - 1] == 'triangle':
        # angular gaps between vertices keep every angle >= ~30 deg
        while True:
            g1, g2 = rng.uniform(1.2, 2.9, 2)
            if 1.05 <= 2 * np.pi - g1 - g2 <= 3.0:
                break
        angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, g1, g1 + g2])
        local = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    else:  # rectangle with its diagonal equal to the extent, randomly rotated
        aspect = rng.uniform(0.35, 1.0)
        w = extent / math.sqrt(1 + aspect**2)
        h = aspect * w
        rot = rng.uniform(0, np.pi)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        r = np.array([[math.cos(rot), -math.sin(rot)],
                      [math.sin(rot), math.cos(rot)]])
        local = corners @ r.T
    vertices = local + [cx, cy]
    cv2.fillPoly(
        mask, [np.round(vertices * scale).astype(np.int32)],
        1,
        lineType=cv2.LINE_8,
        shift=SUBPIXEL_SHIFT)
    return mask.astype(bool), vertices


def _pick_colour(rng: np.random.Generator, covered: np.ndarray) -> np.ndarray:
    """A random colour far (in RGB) from the mean of the pixels it will
    cover."""
    ref = covered.mean(0)
    best, best_dist = None, -1.0
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        dist = float(np.linalg.norm(colour - ref))
        if dist >= MIN_COLOUR_DIST:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def _render_scene(rng: np.random.Generator,
                  size: int) -> tuple[np.ndarray, list[Shape], np.ndarray]:
    """Render an image; return it, its shapes and the per-pixel owner map
    (-1 = bg).

    Shapes are drawn in order, later ones over earlier ones. A placement that
    would leave any instance (including itself) with a visible area below
    ``MIN_VISIBLE_FRAC`` of its full area or below ``MIN_VISIBLE_PX``, or
    would cut a hole into one, is rejected and resampled, so every drawn
    pixel belongs to an annotated instance and every visible mask is exact
    as polygons.
    """
    img = _background(rng, size)
    owner = np.full((size, size), -1, np.int32)
    shapes: list[Shape] = []
    max_extent = max(MAX_SHAPE_FRAC * size, MIN_SHAPE_PX + 1)
    target = int(rng.integers(2, 7))
    for _ in range(target * 15):
        if len(shapes) == target:
            break
        category_id = int(rng.integers(1, len(CLASSES) + 1))
        extent = math.exp(
            rng.uniform(math.log(MIN_SHAPE_PX), math.log(max_extent)))
        mask, vertices = _shape_geometry(rng, category_id, size, extent)
        candidate = owner.copy()
        candidate[mask] = len(shapes)
        visible = np.bincount(
            candidate.ravel() + 1, minlength=len(shapes) + 2)[1:]
        full = np.array([s.full_mask.sum() for s in shapes] + [mask.sum()])
        if np.any((visible < MIN_VISIBLE_FRAC * full)
                  | (visible < MIN_VISIBLE_PX)):
            continue
        covered = np.unique(owner[mask])
        if any(_has_hole(candidate == k) for k in covered[covered >= 0]):
            continue
        colour = _pick_colour(rng, img[mask])
        # gentle linear shading across the object
        yy, xx = np.nonzero(mask)
        phi = rng.uniform(0, 2 * np.pi)
        proj = (xx - xx.mean()) * math.cos(phi) + (yy -
                                                   yy.mean()) * math.sin(phi)
        proj /= max(np.abs(proj).max(), 1.0)
        img[yy, xx] = colour + proj[:, None] * rng.uniform(0, 30)
        owner = candidate
        shapes.append(Shape(category_id, mask, vertices))
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), shapes, owner


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """Flattened external contours (>= 3 points) tracing the mask's pixel
    edges.

    Contours are found on the mask upsampled 2x and mapped back with
    ``(u + 0.5) / 2``, so they run along pixel borders instead of pixel centres
    and pycocotools rasterises them back to exactly the same pixels.
    """
    up = np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [((c.reshape(-1) + 0.5) / 2).tolist() for c in contours
            if len(c) >= 3]


def _has_hole(mask: np.ndarray) -> bool:
    """Whether a binary mask has a hole (COCO polygons cannot represent
    one)."""
    _, hierarchy = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0, :, 3] >= 0).any())


def _mask_bbox(mask: np.ndarray) -> list[float]:
    """[x, y, w, h] of the pixels in a binary mask."""
    ys, xs = np.nonzero(mask)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1)
    ]


def _keypoints(vertices: np.ndarray, visible: np.ndarray,
               size: int) -> list[float]:
    """Extreme vertices (top, right, bottom, left) as COCO [x, y, v]
    triplets."""
    near_visible = cv2.dilate(
        visible.astype(np.uint8),
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    picks = (vertices[:, 1].argmin(), vertices[:, 0].argmax(),
             vertices[:, 1].argmax(), vertices[:, 0].argmin())
    out: list[float] = []
    for i in picks:
        x, y = vertices[i]
        col = min(max(round(x), 0), size - 1)
        row = min(max(round(y), 0), size - 1)
        out += [
            round(float(x), 2),
            round(float(y), 2), 2 if near_visible[row, col] else 1
        ]
    return out


def _write_split(root: str, split: str, split_index: int, seed: int,
                 num_images: int, size: int) -> tuple[dict, dict]:
    """Render one split; write its images and label maps; return both COCO
    dicts."""
    os.makedirs(os.path.join(root, split))
    os.makedirs(os.path.join(root, 'ann_dir', split))
    categories = [{
        'id': i + 1,
        'name': n,
        'supercategory': 'shape'
    } for i, n in enumerate(CLASSES)]
    instances = {'images': [], 'annotations': [], 'categories': categories}
    keypoints = {
        'images': [],
        'annotations': [],
        'categories': [{
            'id': 1,
            'name': 'shape',
            'supercategory': 'shape',
            'keypoints': list(KEYPOINT_NAMES),
            'skeleton': SKELETON
        }]
    }
    ann_id = 1
    for index in range(num_images):
        # an independent stream per image: images do not depend on split sizes
        rng = np.random.default_rng([seed, split_index, index])
        img, shapes, owner = _render_scene(rng, size)
        image_id = index + 1
        stem = f'{index:06d}'
        cv2.imwrite(
            os.path.join(root, split, f'{stem}.png'),
            cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        labels = np.zeros((size, size), np.uint8)
        image = {
            'id': image_id,
            'file_name': f'{stem}.png',
            'width': size,
            'height': size
        }
        instances['images'].append(image)
        keypoints['images'].append(dict(image))
        for k, shape in enumerate(shapes):
            visible = owner == k
            labels[visible] = shape.category_id
            instances['annotations'].append({
                'id': ann_id,
                'image_id': image_id,
                'category_id': shape.category_id,
                'segmentation': _polygons(visible),
                'area': int(visible.sum()),
                'bbox': _mask_bbox(visible),
                'iscrowd': 0
            })
            if shape.vertices is not None:
                x0, y0 = np.clip(shape.vertices.min(0), 0, size)
                x1, y1 = np.clip(shape.vertices.max(0), 0, size)
                kpts = _keypoints(shape.vertices, visible, size)
                keypoints['annotations'].append({
                    'id':
                    ann_id,
                    'image_id':
                    image_id,
                    'category_id':
                    1,
                    'keypoints':
                    kpts,
                    'num_keypoints':
                    sum(v > 0 for v in kpts[2::3]),
                    'bbox':
                    [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                    'area':
                    round(
                        float(
                            cv2.contourArea(shape.vertices.astype(
                                np.float32))), 2),
                    'iscrowd':
                    0
                })
            ann_id += 1
        cv2.imwrite(
            os.path.join(root, 'ann_dir', split, f'{stem}.png'), labels)
    return instances, keypoints


def _read_meta(out: str) -> dict | None:
    """The meta.json of an existing dataset, or None if absent or
    unreadable."""
    try:
        with open(os.path.join(out, 'meta.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate(out: str,
             seed: int = 0,
             num_train: int = 200,
             num_val: int = 50,
             size: int = 192,
             force: bool = False) -> dict:
    """Create the dataset in ``out`` (or reuse a matching one) and return
    its meta.

    Raises ``FileExistsError`` if ``out`` exists with other parameters and
    ``force`` is false.
    """
    if size < 2 * MIN_SHAPE_PX or num_train < 0 or num_val < 0:
        raise ValueError(
            f'need size >= {2 * MIN_SHAPE_PX} and non-negative image counts')
    params = {
        'format_version': FORMAT_VERSION,
        'seed': seed,
        'num_train': num_train,
        'num_val': num_val,
        'size': size
    }
    out = os.path.abspath(out)
    if os.path.exists(out) and not force:
        meta = _read_meta(out)
        if meta is not None and meta.get('params') == params:
            print(f'reusing existing dataset {out} (same parameters)')
            return meta
        found = meta.get('params') if meta else 'no readable meta.json'
        raise FileExistsError(
            f'{out} already exists with different parameters ({found}, '
            f'wanted {params}); '
            'pass --force to regenerate it or choose another --out')

    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
    try:
        os.makedirs(os.path.join(tmp, 'annotations'))
        counts = {}
        for split_index, (split,
                          n) in enumerate(zip(SPLITS, (num_train, num_val))):
            instances, keypoints = _write_split(tmp, split, split_index, seed,
                                                n, size)
            for kind, data in (('instances', instances), ('keypoints',
                                                          keypoints)):
                with open(
                        os.path.join(tmp, 'annotations',
                                     f'{kind}_{split}.json'), 'w') as f:
                    json.dump(data, f)
            counts[split] = {
                'images': n,
                'instances': len(instances['annotations']),
                'keypoint_instances': len(keypoints['annotations'])
            }
        meta = {
            'params': params,
            'classes': list(CLASSES),
            'seg_classes': ['background', *CLASSES],
            'keypoint_names': list(KEYPOINT_NAMES),
            'skeleton': SKELETON,
            'flip_pairs': FLIP_PAIRS,
            'sigmas': SIGMAS,
            'counts': counts,
        }
        with open(os.path.join(tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=2)
        if os.path.exists(
                out):  # force: swap the old dataset out, then delete it
            old = tempfile.mkdtemp(prefix=f'.{name}.old-', dir=parent)
            os.rename(out, os.path.join(old, name))
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
