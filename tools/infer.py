"""Run a trained model on images and write pictures of its predictions.

    python tools/infer.py CONFIG CHECKPOINT demo.jpg [more images or a folder]
        [--out-dir outputs] [--score-thr 0.3] [--device cpu]
    python tools/infer.py CONFIG MODEL.onnx demo.jpg --backend onnxruntime
    python tools/infer.py CONFIG MODEL.onnx demo.jpg --backend openvino
        [--precision fp32]
    python tools/infer.py CONFIG CHECKPOINT demo.jpg --amp  # autocast

With ``--backend onnxruntime`` (or ``openvino``), CHECKPOINT is a file
exported from CONFIG by tools/export_onnx.py: the backend runs the
network, the config's own preprocessing and post-processing run around
it, and the outputs are written as for the PyTorch model, with the class
names, colours and skeleton of the config's dataset. A file exported at a
fixed size stops the run with one line at the first image of another
size.

Detection configs draw boxes and masks, segmentation configs the label
map, keypoint configs the skeletons (whole image as the person box). The
pictures go to OUT_DIR/vis/, raw predictions to OUT_DIR/preds/, named
after each image (JSON; segmentation: the label map as PNG). A folder
stands for its image files (by suffix, not recursive).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List

import cv2

import mmregionvit  # noqa: F401
from mmregionvit.deploy.runtime import (ExportedShapeError,
                                        add_backend_arguments, check_backend,
                                        check_backend_file,
                                        check_pipeline_size, use_backend,
                                        use_dataset_metainfo)
from mmregionvit.engine.autocast import (add_amp_argument, autocast_inference,
                                         inference_dtype)
from mmregionvit.models.checkpoint import read_state_dict
from mmregionvit.utils.config import dataset_metainfo, load_config
from mmregionvit.utils.preflight import PreflightError, check_channels
from mmregionvit.utils.quiet import quiet_upstream_noise

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Predict and visualise')
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint',
        help='weights, or an exported .onnx file with '
        '--backend onnxruntime')
    parser.add_argument('inputs', nargs='+', help='images or folders')
    parser.add_argument('--out-dir', default='outputs')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection score threshold for drawing')
    parser.add_argument('--device', default='cpu')
    add_backend_arguments(parser, 'run')
    add_amp_argument(parser)
    return parser.parse_args(argv)


def image_files(inputs: List[str]) -> List[str]:
    """The images to run on: files as given, each folder's image files.

    Raises ``ValueError`` naming a file that cannot be decoded as an image
    or a folder without images.
    """
    files = []
    for path in inputs:
        if osp.isdir(path):
            found = sorted(
                osp.join(path, name) for name in os.listdir(path)
                if name.lower().endswith(IMAGE_SUFFIXES)
                and osp.isfile(osp.join(path, name)))
            if not found:
                raise ValueError(f'folder {path} holds no image files '
                                 f'({", ".join(IMAGE_SUFFIXES)})')
            files += found
        else:
            files.append(path)
    for path in files:
        if cv2.imread(path, cv2.IMREAD_COLOR) is None:
            raise ValueError(f'{path} cannot be read as an image; give image '
                             'files or folders of them')
    return files


def inferencer_model(inferencer):
    """The model an upstream inferencer runs."""
    return getattr(inferencer, 'inferencer', inferencer).model


def build_inferencer(cfg, checkpoint: str, device: str):
    """The upstream inferencer of the config's library."""
    scope = cfg.default_scope
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        return DetInferencer(model=cfg, weights=checkpoint, device=device)
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(model=cfg, weights=checkpoint, device=device)
    from mmpose.apis import MMPoseInferencer

    # the whole image as the instance box: no detector to download
    return MMPoseInferencer(
        pose2d=cfg,
        pose2d_weights=checkpoint,
        det_model='whole_image',
        device=device)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    missing = [p for p in args.inputs + [args.checkpoint] if not osp.exists(p)]
    try:
        if missing:
            raise FileNotFoundError(f'not found: {", ".join(missing)}')
        check_backend_file(args.checkpoint, args.backend)
        check_backend(args.backend, args.precision)
        device_type = args.device.split(':')[0]
        amp = inference_dtype(args.amp, args.backend, device_type)
        cfg = load_config(args.config)
        check_channels(cfg.model)
        if args.backend == 'pytorch':  # the file holds weights at all
            read_state_dict(args.checkpoint, mmap=True)
        inputs = image_files(args.inputs)
    except (FileNotFoundError, ImportError, ValueError, PreflightError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    cfg.model.backbone.init_cfg = None  # weights come from the checkpoint
    if args.backend == 'pytorch':
        inferencer = build_inferencer(cfg, args.checkpoint, args.device)
        if amp:
            autocast_inference(inferencer_model(inferencer), device_type, amp)
    else:
        inferencer = build_inferencer(cfg, None, args.device)
        use_dataset_metainfo(inferencer, dataset_metainfo(cfg),
                             cfg.default_scope)
        try:
            exported = use_backend(
                inferencer_model(inferencer), args.checkpoint,
                cfg.default_scope, args.backend, args.precision)
            check_pipeline_size(exported, cfg)
        except ValueError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
    try:
        predict(inferencer, cfg.default_scope, inputs, args)
    except ExportedShapeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'predictions drawn in {osp.join(args.out_dir, "vis")}')
    return 0


def predict(inferencer, scope: str, inputs: List[str],
            args: argparse.Namespace) -> None:
    """Run the inferencer on ``inputs``, writing to ``args.out_dir``."""
    if scope == 'mmdet':
        inferencer(
            inputs,
            out_dir=args.out_dir,
            no_save_pred=False,
            pred_score_thr=args.score_thr)
    elif scope == 'mmseg':
        inferencer(inputs, out_dir=args.out_dir, pred_out_dir='preds')
        # mmseg numbers its label maps; name them after their images
        preds = osp.join(args.out_dir, 'preds')
        for i, path in enumerate(inputs):
            stem = osp.splitext(osp.basename(path))[0]
            os.replace(
                osp.join(preds, f'{i:08d}_pred.png'),
                osp.join(preds, f'{stem}.png'))
    else:
        for _ in inferencer(
                inputs,
                vis_out_dir=osp.join(args.out_dir, 'vis'),
                pred_out_dir=osp.join(args.out_dir, 'preds')):
            pass


if __name__ == '__main__':
    sys.exit(main())
