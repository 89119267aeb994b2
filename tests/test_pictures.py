"""Pictures: label maps painted over images, legends of colours, the
demo's ground truth beside its predictions, and the config's classes in
the pictures of an exported file."""
import numpy as np
import pytest
from tool_helpers import DEMO_DET, ROOT, load_tool

from mmregionvit.deploy.runtime import use_dataset_metainfo
from mmregionvit.utils.config import dataset_metainfo, load_config
from mmregionvit.visualization.panels import BAR, legend, paint_labels, titled

DEMO_SEG = str(ROOT / 'configs/segmentation/upernet_regionvit_demo_shapes.py')
DEMO_POSE = str(ROOT / 'configs/keypoint/td-hm_regionvit_demo_shapes.py')
SHAPES = ('circle', 'triangle', 'rectangle')
COLOURS = [(220, 20, 60), (0, 160, 80), (30, 90, 230)]


def test_paint_labels():
    """Each class's pixels are blended with its colour; skipped classes
    and labels outside the palette (ignored pixels) keep the image."""
    image = np.full((2, 3, 3), 100, np.uint8)
    labels = np.array([[0, 1, 2], [255, 1, 0]])
    out = paint_labels(
        image,
        labels, [(0, 0, 0), (200, 0, 0), (0, 200, 0)],
        skip=[0],
        alpha=0.5)
    assert (out[labels == 0] == 100).all() and (out[labels == 255]
                                                == 100).all()
    assert (out[labels == 1] == [150, 50, 50]).all()
    assert (out[labels == 2] == [50, 150, 50]).all()
    assert (image == 100).all()  # drawn on a copy


def test_legend_has_a_swatch_of_each_colour():
    wide = legend(SHAPES, COLOURS, 400)
    assert wide.shape == (BAR, 400, 3)
    for colour in COLOURS:  # a filled square of each
        assert (wide == colour).all(-1).sum() >= (BAR - 8)**2
    narrow = legend(SHAPES, COLOURS, 90)  # one entry to a row
    assert narrow.shape == (3 * BAR, 90, 3)
    for row, colour in enumerate(COLOURS):
        assert (narrow[row * BAR:(row + 1) * BAR] == colour).all(-1).any()


def test_titled_keeps_the_image_under_a_bar():
    image = np.zeros((10, 50, 3), np.uint8)
    out = titled(image, 'prediction')
    assert out.shape == (10 + BAR, 50, 3)
    assert (out[BAR:] == 0).all()
    assert (out[:BAR] < 255).any()  # the title's text


@pytest.mark.parametrize('library, config', [('mmdet', DEMO_DET),
                                             ('mmseg', DEMO_SEG),
                                             ('mmpose', DEMO_POSE)])
def test_inferencer_without_weights_takes_the_configs_dataset(library, config):
    """The inferencer tools/infer.py builds for an exported file (no
    weights) draws with the config's class names and colours, or keypoint
    skeleton, not with COCO's or Cityscapes'."""
    pytest.importorskip(library)
    cfg = load_config(config)
    cfg.model.backbone.init_cfg = None
    inferencer = load_tool('infer').build_inferencer(cfg, None, 'cpu')
    meta = dataset_metainfo(cfg)
    use_dataset_metainfo(inferencer, meta, cfg.default_scope)
    if library == 'mmpose':
        visualizer = inferencer.inferencer.visualizer
        assert visualizer.skeleton == [(0, 1), (1, 2), (2, 3), (3, 0)]
        assert np.array_equal(
            visualizer.kpt_color,
            [[255, 128, 0], [0, 255, 0], [51, 153, 255], [255, 0, 255]])
        return
    if library == 'mmseg':  # handed to the visualizer when drawing
        drawn = inferencer.model.dataset_meta
        assert tuple(drawn['classes']) == ('background', *SHAPES)
        assert [tuple(c) for c in drawn['palette']] == [(0, 0, 0), *COLOURS]
        return
    drawn = inferencer.visualizer.dataset_meta
    assert tuple(drawn['classes']) == SHAPES
    assert [tuple(c) for c in drawn['palette']] == COLOURS


def test_paint_labels_outlines_each_region():
    image = np.zeros((9, 9, 3), np.uint8)
    labels = np.zeros((9, 9), int)
    labels[2:7, 2:7] = 1
    out = paint_labels(
        image,
        labels, [(0, 0, 0), (200, 0, 0)],
        skip=[0],
        alpha=1.0,
        outline=(255, 255, 255))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert (out[ring] == 255).all()  # the region's border
    assert (out[3:6, 3:6] == [200, 0, 0]).all()  # inside: its colour
    assert (out[labels == 0] == 0).all()  # outside: the image
