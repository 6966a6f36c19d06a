# Stage 2 on VOC with early-learning label correction, adapted from ADELE (Liu et al., "Adaptive
# Early-Learning Correction for Segmentation from Noisy Annotations", CVPR 2022): once a class's
# training IoU against the pseudo masks flattens, pixels the model gives that class with probability
# > 0.8 are relabelled to it. One IoU point per 500 iterations (80 over the 40k schedule).
_base_ = ['./upernet_swin-t_pseudo-voc12aug-512x512.py']
custom_imports = dict(imports=['mmseg_clip_wsss'], allow_failed_imports=False)
model = dict(
    decode_head=dict(
        loss_decode=dict(
            _delete_=True, type='EarlyLearningCorrectionLoss', num_classes=21, interval=500,
            prob_threshold=0.8, slowdown=0.9)))
