"""tools/test_cls.py end to end on a small generated ImageFolder."""
import json
import re

import numpy as np
import pytest
import timm
import torch
import torchvision.transforms as T
from conftest import load_fixture
from PIL import Image
from test_timm import classification_weights, release_file
from timm.data import ImageNetInfo
from tool_helpers import load_tool

test_cls = load_tool('test_cls')

ARCH = {
    k: v
    for k, v in load_fixture('tiny3conv_w7')['official_kwargs'].items()
    if k not in ('img_size', 'num_classes', 'det_norm')
}
CLASSES = ['cat', 'dog', 'fish', 'fox', 'owl', 'yak']
SIZES = [(300, 260), (180, 240), (256, 256), (231, 347)]


def make_images(root, classes=CLASSES, per_class=2):
    """``per_class`` random PNGs of assorted sizes in each class folder;
    returns ``(path, class index)`` in ImageFolder's order."""
    rng = np.random.default_rng(0)
    samples = []
    for c, name in enumerate(sorted(classes)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = SIZES[(c + i) % len(SIZES)]
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            path = root / name / f'{name}_{i}.png'
            Image.fromarray(pixels).save(path)
            samples.append((path, c))
    return samples


def official_transform():
    """The official evaluation transform (datasets.py build_transform with
    input_size 224 and crop_ratio 256 / 224), written out."""
    return T.Compose([
        T.Resize(
            int(256 / 224 * 224), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(224),
        T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    ])


def expected_accuracy(checkpoint, samples, classes):
    """Top-1 and top-5 (%) computed here, image by image."""
    model = timm.create_model(
        'regionvit_tiny_224',
        pretrained=True,
        arch=ARCH,
        num_classes=classes,
        pretrained_cfg_overlay=dict(file=checkpoint,
                                    num_classes=classes)).eval()
    transform = official_transform()
    top1 = top5 = 0
    for path, label in samples:
        image = transform(Image.open(path).convert('RGB'))
        with torch.no_grad():
            logits = model(image[None])[0]
        ranked = logits.argsort(descending=True).tolist()
        top1 += ranked[0] == label
        top5 += label in ranked[:5]
    return 100 * top1 / len(samples), 100 * top5 / len(samples)


def run_tool(capsys, *argv):
    code = test_cls.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def printed_accuracy(out):
    m = re.search(r'top-1 ([\d.]+)%, top-5 ([\d.]+)% \((\d+) images\)', out)
    return float(m.group(1)), float(m.group(2)), int(m.group(3))


@pytest.fixture
def data(tmp_path):
    samples = make_images(tmp_path / 'val')
    sd = classification_weights(load_fixture('tiny3conv_w7'), len(CLASSES))
    return dict(
        root=str(tmp_path / 'val'),
        samples=samples,
        checkpoint=release_file(tmp_path, sd))


def common_args(data):
    return [
        '--model', 'regionvit_tiny_224', '--checkpoint', data['checkpoint'],
        '--arch',
        json.dumps(ARCH), '--workers', '0', '--device', 'cpu'
    ]


def test_transform_is_the_official_one():
    model = timm.create_model('regionvit_small_224')
    config = timm.data.resolve_data_config(model=model)
    ours = timm.data.create_transform(**config)
    rng = np.random.default_rng(1)
    for h, w in SIZES:
        image = Image.fromarray(
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        torch.testing.assert_close(
            ours(image), official_transform()(image), rtol=0, atol=0)


def test_evaluates_an_image_folder(data, capsys):
    code, out, err = run_tool(capsys, *common_args(data), '--data-root',
                              data['root'], '--batch-size', '5')
    assert code == 0, err
    top1, top5, seen = printed_accuracy(out)
    assert seen == len(data['samples'])
    expected = expected_accuracy(data['checkpoint'], data['samples'],
                                 len(CLASSES))
    assert (top1, top5) == tuple(round(v, 2) for v in expected)
    assert top5 < 100  # 6 classes: top-5 can miss
    assert 'eval' in err and '3/3' in err  # progress bar over 3 batches


def test_limit_spreads_over_the_data(data, capsys):
    code, out, err = run_tool(capsys, *common_args(data), '--data-root',
                              data['root'], '--limit', '5')
    assert code == 0, err
    n = len(data['samples'])
    chosen = [data['samples'][i * n // 5] for i in range(5)]
    assert len({label for _, label in chosen}) == 5
    expected = expected_accuracy(data['checkpoint'], chosen, len(CLASSES))
    assert printed_accuracy(out) == (*[round(v, 2) for v in expected], 5)


def test_flat_folder_with_ann_file(data, tmp_path, capsys):
    flat = tmp_path / 'flat'
    flat.mkdir()
    lines = []
    for path, label in data['samples']:
        (flat / path.name).write_bytes(path.read_bytes())
        lines.append(f'{path.name} {label}')
    ann = tmp_path / 'val.txt'
    ann.write_text('\n'.join(lines) + '\n')
    code, out, err = run_tool(capsys, *common_args(data), '--data-root',
                              str(flat), '--ann-file', str(ann))
    assert code == 0, err
    expected = expected_accuracy(data['checkpoint'], data['samples'],
                                 len(CLASSES))
    assert printed_accuracy(out)[:2] == tuple(round(v, 2) for v in expected)


def test_imagenet_synset_folders_take_imagenet_indices(tmp_path, capsys):
    """A few ImageNet class folders (a subset of val): labels are their
    ImageNet indices, not their rank among the folders."""
    synsets = ImageNetInfo().label_names()
    chosen = [synsets[i] for i in (3, 400, 999)]
    samples = make_images(tmp_path / 'val', chosen)
    samples = [(p, synsets.index(p.parent.name)) for p, _ in samples]
    sd = classification_weights(load_fixture('tiny3conv_w7'), 1000)
    # a head that ranks 400, 3, 999 first whatever the image: top-1 hits
    # folder 400's images, top-5 every image, with the right labels only
    sd['head.weight'] = torch.zeros_like(sd['head.weight'])
    sd['head.bias'] = torch.zeros(1000)
    sd['head.bias'][[400, 3, 999]] = torch.tensor([3., 2., 1.])
    checkpoint = release_file(tmp_path, sd)
    code, out, err = run_tool(capsys, '--model', 'regionvit_tiny_224',
                              '--checkpoint', checkpoint, '--arch',
                              json.dumps(ARCH), '--workers', '0',
                              '--data-root', str(tmp_path / 'val'))
    assert code == 0, err
    expected = expected_accuracy(checkpoint, samples, 1000)
    assert printed_accuracy(out)[:2] == tuple(round(v, 2) for v in expected)
    assert expected == pytest.approx((100 / 3, 100))


def test_amp_runs(data, capsys):
    code, out, err = run_tool(capsys, *common_args(data), '--data-root',
                              data['root'], '--amp')
    assert code == 0, err
    top1, top5, seen = printed_accuracy(out)
    assert seen == len(data['samples']) and 0 <= top1 <= top5 <= 100


def test_errors_are_one_line(data, tmp_path, capsys):
    official = load_fixture('tiny3conv_w7')
    four = release_file(tmp_path, classification_weights(official, 4),
                        'four.pth')
    headless = release_file(tmp_path, {
        k: v
        for k, v in official['state_dict'].items() if 'head.' not in k
    }, 'headless.pth')
    root = data['root']
    cases = [
        (['--data-root', str(tmp_path / 'nowhere')], 'is not a folder'),
        (['--data-root', root, '--checkpoint',
          four], 'has 6 class folders but the model 4 classes'),
        (['--data-root', root, '--checkpoint',
          headless], 'has no classifier head'),
        (['--data-root', root, '--checkpoint',
          'none.pth'], '--checkpoint none.pth not found'),
        (['--data-root', root, '--arch',
          json.dumps(dict(ARCH, window=7))], 'Unknown RegionViT arch keys'),
        ([
            '--data-root', root, '--arch',
            json.dumps(dict(ARCH, depth=[1, 1, 3, 1]))
        ], 'does not fit'),
        (['--data-root', root, '--arch', '{depth'], 'not valid JSON'),
        (['--data-root', root, '--model', 'regionvit_huge'], 'unknown model'),
    ]
    for extra, message in cases:
        code, out, err = run_tool(capsys, *common_args(data), *extra)
        assert code == 2, extra
        assert err.startswith('error: ') and message in err, err
        assert err.count('\n') == 1, err
