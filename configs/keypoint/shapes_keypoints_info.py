# Keypoint meta information of the synthetic "shapes" data
# (tools/make_demo_data.py) in mmpose's dataset_info format: the extreme
# vertices of each shape, top/right/bottom/left; a horizontal flip swaps
# right and left. Loaded by td-hm_regionvit_demo_shapes.py through
# metainfo=dict(from_file=...); not a model config.
dataset_info = dict(
    dataset_name='shapes',
    paper_info=dict(
        author='mmregionvit',
        title='Synthetic shapes (tools/make_demo_data.py)',
        container='',
        year='',
        homepage='',
    ),
    keypoint_info={
        0: dict(name='top', id=0, color=[255, 128, 0], type='upper', swap=''),
        1: dict(name='right', id=1, color=[0, 255, 0], type='', swap='left'),
        2:
        dict(name='bottom', id=2, color=[51, 153, 255], type='lower', swap=''),
        3: dict(name='left', id=3, color=[255, 0, 255], type='', swap='right'),
    },
    skeleton_info={
        0: dict(link=('top', 'right'), id=0, color=[255, 255, 255]),
        1: dict(link=('right', 'bottom'), id=1, color=[255, 255, 255]),
        2: dict(link=('bottom', 'left'), id=2, color=[255, 255, 255]),
        3: dict(link=('left', 'top'), id=3, color=[255, 255, 255]),
    },
    joint_weights=[1.0, 1.0, 1.0, 1.0],
    sigmas=[0.05, 0.05, 0.05, 0.05])
