"""Generate a small synthetic "shapes" dataset for CPU demos.

Deterministic (seeded) and download-free. One scene rendering feeds three
annotation formats under ``--out``::

    train/*.png, val/*.png                     RGB images
    annotations/instances_{train,val}.json     COCO instances (Mask R-CNN)
    ann_dir/{train,val}/*.png                  semantic labels 0=bg, 1..3
    annotations/keypoints_{train,val}.json     COCO keypoints (top-down pose)
    meta.json                                  parameters, classes, keypoints

Usage::

    python tools/make_demo_data.py --out data/shapes --seed 0 \\
        --num-train 200 --num-val 50 --size 192 [--force]
"""
import argparse
import os
import sys
import time

from mmregionvit.datasets.shapes import generate


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--out', default='data/shapes', help='output directory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument(
        '--size', type=int, default=192, help='square image side in pixels')
    parser.add_argument(
        '--force', action='store_true', help='regenerate even if --out exists')
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        meta = generate(args.out, args.seed, args.num_train, args.num_val,
                        args.size, args.force)
    except (FileExistsError, ValueError) as e:
        sys.exit(f'error: {e}')
    for split, c in meta['counts'].items():
        print(f'{split}: {c["images"]} images, {c["instances"]} instances, '
              f'{c["keypoint_instances"]} keypoint instances')
    print(f'classes: {meta["classes"]}')
    print(f'keypoint names: {meta["keypoint_names"]}')
    print(f'{os.path.abspath(args.out)} ready in '
          f'{time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()
