"""Evaluate a RegionViT ImageNet classifier on ImageNet-style data.

    python tools/test_cls.py --model regionvit_small_224 \\
        --checkpoint RegionViT-S.pth --data-root imagenet/val

DATA_ROOT is an ImageFolder (one folder per class; class indices follow the
sorted folder names, as officially, or ImageNet's order when the folders are
ImageNet synsets) or a flat folder of images with ``--ann-file`` (lines
``file label``, the label an index or a synset: OpenMMLab's
``meta/val.txt``). Images get the model's evaluation preprocessing (for
RegionViT the official one: resize the shorter side to 256 bicubic, centre
crop 224, ImageNet mean and std). Prints top-1 and top-5 accuracy.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import torch
from timm.data import ImageNetInfo, create_transform, resolve_data_config
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader
from tqdm import tqdm

import mmregionvit  # noqa: F401  (registers the RegionViT models)
from mmregionvit.models import VARIANTS
from mmregionvit.models.timm_models import create_classifier, model_name

# timm name -> official variant
MODELS = {model_name(name): variant for name, variant in VARIANTS.items()}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--model', required=True, help='regionvit_{tiny,small,...}_224')
    parser.add_argument(
        '--checkpoint',
        help='weights file (e.g. the official RegionViT-S.pth; its head '
        "gives the classes); default: download the model's release file")
    parser.add_argument('--data-root', required=True)
    parser.add_argument(
        '--ann-file', help='labels of a flat image folder: "file label" lines')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, default=4)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='autocast: bfloat16 on CPU, float16 on CUDA')
    parser.add_argument(
        '--limit',
        type=int,
        help='evaluate this many images, evenly spread over the data')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--arch',
        help='a custom RegionViT arch as JSON, in the official names, e.g. '
        '\'{"embed_dim": [16, 16, 32, 64, 128], "depth": [1, 1, 2, 1], '
        '"num_heads": [1, 2, 4, 8], "kernel_sizes": [7, 7, 7, 7]}\'')
    args = parser.parse_args(argv)
    for name in ('batch_size', 'limit'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.workers < 0:
        parser.error('--workers must be >= 0')
    return args


class LabelledImages(Dataset):
    """Images of a flat folder, labelled by an annotation file."""

    def __init__(self, root: str, samples: List[Tuple[str, int]],
                 transform) -> None:
        self.root, self.samples, self.transform = root, samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        name, label = self.samples[i]
        return self.transform(default_loader(osp.join(self.root, name))), label


def read_ann_file(path: str, num_classes: int) -> List[Tuple[str, int]]:
    """``(file, class index)`` of each ``file label`` line; a label is an
    index or an ImageNet synset."""
    synsets = {s: i for i, s in enumerate(ImageNetInfo().label_names())}
    samples = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            label = parts[-1] if len(parts) == 2 else None
            if label is not None and label.isdigit():
                index = int(label)
            else:
                index = synsets.get(label, -1)
            if not 0 <= index < num_classes:
                raise ValueError(f'{path}:{lineno}: expected "file label" '
                                 'with a class index below '
                                 f'{num_classes} or an ImageNet synset, got '
                                 f'{line.strip()!r}')
            samples.append((parts[0], index))
    if not samples:
        raise ValueError(f'{path} lists no images')
    return samples


def imagenet_indices(classes: List[str],
                     num_classes: int) -> Optional[Dict[int, int]]:
    """ImageNet's index of each class folder, when every folder is an
    ImageNet synset and the model has ImageNet's 1000 classes."""
    synsets = ImageNetInfo().label_names()
    if num_classes != len(synsets) or not set(classes) <= set(synsets):
        return None
    order = {s: i for i, s in enumerate(synsets)}
    return {i: order[c] for i, c in enumerate(classes)}


def build_dataset(args: argparse.Namespace, num_classes: int,
                  transform) -> Dataset:
    root = args.data_root
    if not osp.isdir(root):
        raise FileNotFoundError(f'--data-root {root} is not a folder')
    if args.ann_file:
        if not osp.isfile(args.ann_file):
            raise FileNotFoundError(f'--ann-file {args.ann_file} not found')
        samples = read_ann_file(args.ann_file, num_classes)
        absent = [n for n, _ in samples if not osp.isfile(osp.join(root, n))]
        if absent:
            raise FileNotFoundError(
                f'{len(absent)} images of {args.ann_file} are not in {root} '
                f'(first: {absent[0]})')
        dataset = LabelledImages(root, samples, transform)
    else:
        with os.scandir(root) as entries:
            folders = any(e.is_dir() for e in entries)
        if not folders:
            raise ValueError(f'{root} has no class folders; for a flat '
                             'folder of images, pass --ann-file')
        dataset = ImageFolder(root, transform, allow_empty=True)
        if not dataset.samples:
            raise ValueError(f'no images ({", ".join(IMG_EXTENSIONS)}) in '
                             f'the class folders of {root}')
        mapping = imagenet_indices(dataset.classes, num_classes)
        if mapping is not None:
            dataset.target_transform = mapping.__getitem__
        elif len(dataset.classes) != num_classes:
            raise ValueError(
                f'{root} has {len(dataset.classes)} class folders but the '
                f'model {num_classes} classes (ImageNet synsets as folder '
                'names take their ImageNet indices)')
    if args.limit and args.limit < len(dataset):
        n = len(dataset)
        dataset = Subset(dataset,
                         [i * n // args.limit for i in range(args.limit)])
    return dataset


def build_model(args: argparse.Namespace) -> torch.nn.Module:
    return create_classifier(args.model, args.checkpoint, args.arch)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: str,
             amp: bool) -> Tuple[float, float, int]:
    """Top-1 and top-5 accuracy (%) and the number of images."""
    dtype = torch.float16 if device.startswith('cuda') else torch.bfloat16
    top1 = top5 = seen = 0
    bar = tqdm(loader, desc='eval', unit='batch', dynamic_ncols=True)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.split(':')[0], dtype, enabled=amp):
            logits = model(images)
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices == targets[:, None]
        top1 += hits[:, 0].sum().item()
        top5 += hits.any(dim=1).sum().item()
        seen += len(targets)
        bar.set_postfix(top1=f'{100 * top1 / seen:.2f}')
    return 100 * top1 / seen, 100 * top5 / seen, seen


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError('--device cuda: CUDA is not available')
        model = build_model(args).to(args.device)
        config = resolve_data_config(model=model)
        dataset = build_dataset(args, model.num_classes,
                                create_transform(**config))
    except (FileNotFoundError, ValueError, KeyError) as e:
        # a KeyError's str() quotes its message
        message = e.args[0] if isinstance(e, KeyError) else e
        print(f'error: {message}', file=sys.stderr)
        return 2
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=args.workers,
        pin_memory=args.device.startswith('cuda'))
    top1, top5, seen = evaluate(model, loader, args.device, args.amp)
    print(f'{args.model}: top-1 {top1:.2f}%, top-5 {top5:.2f}% '
          f'({seen} images)')
    reference = MODELS[args.model].top1
    if reference is not None and not args.arch:
        print(f'official top-1 of {args.model}: {reference}%')
    return 0


if __name__ == '__main__':
    sys.exit(main())
