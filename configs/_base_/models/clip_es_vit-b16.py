# Training-free CLIP-ES pseudo masks (Lin et al., "CLIP is Also an Efficient Segmenter", CVPR 2023):
# a frozen open_clip ViT-B/16 ('openai' weights), softmax Grad-CAM on the image-text scores, class-aware
# attention affinity. No training and no checkpoint:
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es_vit-b16_voc.py --out-dir D --eval
# Every choice below is the paper's (its released code), named where it is made.
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'  # or a local open_clip checkpoint file of ViT-B-16
model = dict(
    type='TrainingFreeCLIPES',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        # CLIP's image normalisation (0-255 scale)
        mean=[122.771, 116.746, 104.094],
        std=[68.501, 66.632, 70.323],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    backbone=dict(type='CLIPVisionBackbone', model_name=clip_model, pretrained=clip_pretrained,
                  interpolate_mode='bilinear'),  # CLIP-ES resizes the position embedding bilinearly
    text_encoder=dict(
        type='CLIPPromptTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        # CLIP-ES's prompt: one template
        prompt=dict(type='TemplatePromptLearner', templates=('a clean origami {}.', ))),
    class_names='voc',
    # CLIP-ES's 25 background words, each a row of its own in the softmax (BACKGROUND_WORDS; words that
    # are classes of the vocabulary, e.g. COCO's keyboard, are dropped)
    softmax_over='labels',  # softmax over the image's labelled classes + the background words
    pool='patch_mean',  # image embedding: mean of the last block's projected patch tokens
    logit_scale=None,  # CLIP's own (100 for 'openai')
    affinity='attention',  # class-aware attention affinity (CAA) ...
    affinity_layers=8,  # ... from the mean attention of the last 8 blocks,
    sinkhorn_iters=3,  # column/row normalised 3 times,
    affinity_power=2,  # symmetrised and squared,
    box_threshold=0.4,  # restricted to the boxes of the CAM regions above 0.4 x max
    background_index=0)
# The CAM -> pseudo-mask protocol (tools/make_pseudo_masks.py). CLIP-ES: one scale, no flip, each side
# resized to a multiple of the patch size; background where (1 - max CAM)^2 wins, i.e. where the largest
# CAM is below (3 - sqrt 5) / 2 = 0.382. With dense CRF (pydensecrf2) the paper's CRF parameters;
# CLIP-ES also ignores CRF pixels of confidence < 0.95 (our protocol offers ignore_margin instead).
cam_cfg = dict(scales=(1.0, ), flip=False, size_divisor=16, bg_mode='threshold', bg_threshold=0.382,
               refine=dict(type='crf', num_iters=10, pos_sxy=1, pos_compat=3, bi_sxy=67, bi_srgb=3,
                           bi_compat=4))
