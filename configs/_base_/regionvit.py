# The RegionViT backbone and its optimizer settings, shared by every config
# here. Inherit this file beside the mmdet/mmseg/mmpose bases and use its
# variables, e.g.
#   model = dict(backbone=dict(_base_.regionvit_backbone, _delete_=True))
#   optim_wrapper = dict(paramwise_cfg=_base_.regionvit_paramwise_cfg)
# (the detectors: _base_.regionvit_detectron2_paramwise_cfg).
custom_imports = dict(imports=['mmregionvit'], allow_failed_imports=False)

# The ImageNet weights of the official release (RegionViT-{Ti,S,M,B}.pth).
regionvit_release = ('https://github.com/IBM/RegionViT/releases/download/'
                     'weights-v0.1/')

# RegionViT-S; configs of other sizes merge in their regionvit_sizes entry
# (below). A local copy of the weights:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/to/RegionViT-S.pth
regionvit_backbone = dict(
    type='mmregionvit.RegionViT',
    arch='small',
    out_indices=(0, 1, 2, 3),
    det_norm=True,
    init_cfg=dict(
        type='Pretrained', checkpoint=regionvit_release + 'RegionViT-S.pth'))

# The other sizes: what a config of RegionViT-S changes in its backbone
# (`backbone`, merged into regionvit_backbone) and the channels of the four
# stages (`channels`) that its neck or heads take, e.g.
#   __size = _base_.regionvit_sizes.tiny
#   model = dict(backbone=__size.backbone,
#                neck=dict(in_channels=__size.channels))
# The 14x14-window archs (small_w14, base_w14_peg, ...) load the weights and
# have the channels of their 7x7 arch: their configs inherit that arch's.
# tests/test_variants.py checks every config's arch and weights against
# mmregionvit/models/variants.py.
regionvit_sizes = {
    arch:
    dict(
        backbone=dict(
            arch=arch,
            init_cfg=dict(
                checkpoint=f'{regionvit_release}RegionViT-{weights}.pth')),
        channels=channels)
    for arch, weights, channels in [
        ('tiny', 'Ti', [64, 128, 256, 512]),
        ('small', 'S', [96, 192, 384, 768]),
        ('medium', 'M', [96, 192, 384, 768]),
        ('base', 'B', [128, 256, 512, 1024]),
    ]
}
# The demos': a small RegionViT trained from scratch (no ImageNet weights
# offline).
regionvit_sizes['demo'] = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dim=[32, 32, 64, 128, 256],
            num_heads=[1, 2, 4, 8],
            depth=[1, 1, 2, 1],
            kernel_sizes=[7, 7, 7, 7]),
        drop_path_rate=0.0,
        init_cfg=None),
    channels=[32, 64, 128, 256])

# Segmentation and pose: no weight decay on norms and relative-position
# tables.
regionvit_paramwise_cfg = dict(
    norm_decay_mult=0.0, custom_keys={'.rel_pos': dict(decay_mult=0.0)})

# The official detectors' weight decay, for a base decay of 0.05 (AdamW):
# main_detection.py builds the optimizer from detectron2's
# get_default_optimizer_params(weight_decay_norm=SOLVER.WEIGHT_DECAY_NORM,
# weight_decay_bias=SOLVER.WEIGHT_DECAY_BIAS), here in our names:
# - WEIGHT_DECAY_NORM 0.0 for the parameters of torch normalisation modules.
#   Officially those are only the blocks' nn.LayerNorms; the official
#   LayerNorm2d (patch embedding, downsampling, the per-stage detection
#   norms, our out_norm) is a plain nn.Module, so it decays like a conv.
# - Official quirk: every parameter named `bias`, norms' included (that
#   override comes last), decays with 1e-4 (0.002 x 0.05). The official
#   detectron2 fork sets the default WEIGHT_DECAY_BIAS = WEIGHT_DECAY while
#   that is still detectron2's 1e-4, and the official yaml files change only
#   WEIGHT_DECAY.
# - Everything else, the relative-position tables included, decays with
#   the base 0.05.
regionvit_detectron2_paramwise_cfg = dict(
    custom_keys={
        '.bias': dict(decay_mult=0.002),
        '.regional_norm.weight': dict(decay_mult=0.0),
        '.local_norm.weight': dict(decay_mult=0.0),
        '.mlp_norm.weight': dict(decay_mult=0.0),
    })
