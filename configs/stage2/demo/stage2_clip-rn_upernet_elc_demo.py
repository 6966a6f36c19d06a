# Stage 2 on the demo data with early-learning label correction, adapted from ADELE (Liu et al.,
# "Adaptive Early-Learning Correction for Segmentation from Noisy Annotations", CVPR 2022): once a
# class's training IoU against the pseudo masks flattens, pixels the model gives that class with
# probability > 0.8 are relabelled to it (EarlyLearningCorrectionLoss); everything else is the demo's
# stage-2 config.
#   python tools/train.py configs/stage2/demo/stage2_clip-rn_upernet_elc_demo.py
_base_ = ['../../demo/stage2_clip-rn_upernet_demo.py']
model = dict(
    decode_head=dict(
        loss_decode=dict(
            _delete_=True, type='EarlyLearningCorrectionLoss', num_classes={{_base_.num_classes}},
            interval=25, prob_threshold=0.8, slowdown=0.9)))
