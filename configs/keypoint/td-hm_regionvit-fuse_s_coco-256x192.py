# Top-down heatmap pose, RegionViT-S with all four stages fused, COCO
# 256x192 (otherwise as td-hm_regionvit_s_coco-256x192.py).
#
# FeatureMapProcessor resizes the stride-8/16/32 maps bilinearly to the
# stride-4 map (64x48) and concatenates them (96+192+384+768 = 1440
# channels; the maps are layer-normed, so no ReLU). The head then needs no
# deconvolutions: a 1x1 conv to 256 channels (BN, ReLU) and the final 1x1
# conv to the 17 heatmaps at 64x48.
_base_ = './td-hm_regionvit_s_coco-256x192.py'

model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(type='FeatureMapProcessor', concat=True),
    head=dict(
        in_channels=1440,
        deconv_out_channels=None,
        conv_out_channels=(256, ),
        conv_kernel_sizes=(1, )))
