# CAM -> pseudo mask protocol (tools/make_pseudo_masks.py) of the stage-1 demo models. The
# refinement and the background threshold were chosen on the CAMs of the *val* split (which has
# image labels and GT masks too), never on the train split the pseudo masks are scored on: wider
# and longer pixel-adaptive propagation than the default (dilations up to 24 px of the 128 px image,
# 20 steps, sharper colour term) and a lower threshold, which the propagated maps need.
cam_cfg = dict(scales=(1.0, 0.75, 1.5), flip=True,
               refine=dict(type='par', num_iters=20, dilations=(1, 2, 4, 8, 16, 24), colour_sigma=0.2),
               bg_mode='threshold', bg_threshold=0.2)
