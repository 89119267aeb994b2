"""Draw what a RegionViT model sees: regional and local attention, feature
maps and class activation maps.

    python tools/vis_attention.py --config CONFIG [--checkpoint CKPT] IMAGE...
    python tools/vis_attention.py --model regionvit_small_224 \\
        [--checkpoint RegionViT-S.pth] [--arch JSON] IMAGE...

Options: [--out-dir vis] [--kinds regional local features cam]
[--point X Y] [--stages 0 1 2 3] [--block -1] [--heads mean|all]
[--features mean|pca] [--target-category N] [--det-index N]

CONFIG is a detection or segmentation config (its test preprocessing is
used); ``--model`` a timm classifier. Each picture goes to
``OUT_DIR/<image>_<kind>_stage<s>.png``. The attention is the model's own,
recorded on the backbone's reference path; the tool says so and how far
that path's outputs are from the fast path's. See docs/visualization.md.
"""
import argparse
import sys

import mmregionvit  # noqa: F401
from mmregionvit.visualization.pictures import (KINDS, ClassifierSubject,
                                                ConfigSubject, make_pictures)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw attention, features and Grad-CAM of RegionViT')
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument('--config', help='a detection or segmentation config')
    model.add_argument('--model', help='a timm classifier, regionvit_*_224')
    parser.add_argument('images', nargs='+')
    parser.add_argument(
        '--checkpoint',
        help='weights; without: a config model starts from its '
        "initialisation, a classifier downloads its release file")
    parser.add_argument(
        '--arch', help='a custom arch for --model, as JSON (official names)')
    parser.add_argument('--out-dir', default='vis')
    parser.add_argument(
        '--kinds', nargs='+', choices=KINDS, default=list(KINDS))
    parser.add_argument(
        '--point',
        nargs=2,
        type=float,
        metavar=('X', 'Y'),
        help='image pixel whose attention is drawn (default: the centre)')
    parser.add_argument(
        '--stages', nargs='+', type=int, help='default: every stage')
    parser.add_argument(
        '--block',
        type=int,
        default=-1,
        help='block of each stage whose attention is drawn')
    parser.add_argument('--heads', choices=('mean', 'all'), default='mean')
    parser.add_argument('--features', choices=('mean', 'pca'), default='mean')
    parser.add_argument(
        '--target-category',
        type=int,
        help='class to explain (default: the top one)')
    parser.add_argument(
        '--det-index',
        type=int,
        default=0,
        help='detection to explain, by its index in the output '
        '(default: 0, the first)')
    return parser.parse_args(argv)


def build_subject(args: argparse.Namespace):
    if args.model:
        from mmregionvit.models.timm_models import create_classifier
        return ClassifierSubject(
            create_classifier(args.model, args.checkpoint, args.arch))
    from mmregionvit.utils.config import load_config
    if args.arch:
        raise ValueError('--arch goes with --model; a config names its arch')
    if args.checkpoint is None:
        print('no --checkpoint: the model keeps its initial weights')
    return ConfigSubject(load_config(args.config), args.checkpoint)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        subject = build_subject(args)
        written = make_pictures(
            subject,
            args.images,
            args.out_dir,
            kinds=args.kinds,
            point=args.point,
            stages=args.stages,
            block=args.block,
            all_heads=args.heads == 'all',
            features=args.features,
            target=args.target_category,
            det_index=args.det_index)
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'{len(written)} pictures written to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
