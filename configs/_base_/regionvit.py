# The RegionViT backbone and its optimizer settings, shared by every config
# here. Inherit this file beside the mmdet/mmseg/mmpose bases and use its
# variables, e.g.
#   model = dict(backbone=dict(_base_.regionvit_backbone, _delete_=True))
#   optim_wrapper = dict(paramwise_cfg=_base_.regionvit_paramwise_cfg)
custom_imports = dict(imports=['mmregionvit'], allow_failed_imports=False)

# The ImageNet weights of the official release (RegionViT-{Ti,S,M,B}.pth).
regionvit_release = ('https://github.com/IBM/RegionViT/releases/download/'
                     'weights-v0.1/')

# RegionViT-S; configs of other variants change arch and the checkpoint. A
# local copy of the weights:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/to/RegionViT-S.pth
regionvit_backbone = dict(
    type='mmregionvit.RegionViT',
    arch='small',
    out_indices=(0, 1, 2, 3),
    det_norm=True,
    init_cfg=dict(
        type='Pretrained', checkpoint=regionvit_release + 'RegionViT-S.pth'))

# No weight decay on norms and relative-position tables.
regionvit_paramwise_cfg = dict(
    norm_decay_mult=0.0, custom_keys={'.rel_pos': dict(decay_mult=0.0)})
