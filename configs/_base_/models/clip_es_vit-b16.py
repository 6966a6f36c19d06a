# Training-free CLIP-ES pseudo masks (Lin et al., "CLIP is Also an Efficient Segmenter", CVPR 2023):
# a frozen open_clip ViT-B/16 ('openai' weights), softmax Grad-CAM on the image-text scores, class-aware
# attention affinity. No training and no checkpoint:
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es_vit-b16_voc.py --out-dir D --eval
# Every setting below is the authors' computation (their released code, linyq2117/CLIP-ES), checked
# step by step against it (docs/clip_es.md, "Parity"); where the project offers something else, the
# option is named beside the authors' value.
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'  # or a local file of OpenAI's ViT-B/16 weights (ViT-B-16.pt)
model = dict(
    type='TrainingFreeCLIPES',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        # CLIP's image normalisation on the 0-255 scale, to the digits of CLIP's own constants
        mean=[122.7709383, 116.7460125, 104.0937362],
        std=[68.5005327, 66.6321579, 70.3231631],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    # OpenAI's weights were trained with QuickGELU; open_clip's 'ViT-B-16' config has GELU and a local
    # weights file carries no flag, so QuickGELU is set here (the 'openai' tag sets it too). Set
    # quick_gelu=None for a local file of weights trained with GELU.
    backbone=dict(type='CLIPVisionBackbone', model_name=clip_model, pretrained=clip_pretrained,
                  interpolate_mode='bilinear',  # CLIP-ES resizes the position embedding bilinearly
                  pos_embed_float16=True,  # ... and rounds it to float16
                  quick_gelu=True),
    text_encoder=dict(
        type='CLIPPromptTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        quick_gelu=True,
        # CLIP-ES's prompt: one template
        prompt=dict(type='TemplatePromptLearner', templates=('a clean origami {}.', ))),
    class_names='voc',
    readable_names=False,  # names prompted as written ('diningtable'); True: 'dining table'
    # CLIP-ES's 25 background words, each a row of its own in the softmax (BACKGROUND_WORDS; words that
    # are classes of the vocabulary are dropped)
    softmax_over='labels',  # softmax over the image's labelled classes + the background words
    pool='patch_mean',  # image embedding: mean of the last block's projected patch tokens
    grad_cam='closed_form',  # the Grad-CAM's backward pass written out, all classes at once (a ViT's
    #                          last block; a ModifiedResNet's attention pooling); 'autograd': one
    #                          backward pass per class, as the authors (same CAMs to float rounding;
    #                          docs/benchmarks.md)
    logit_scale=None,  # CLIP's own (100 for 'openai')
    resize_to_multiple=16,  # each side rounded up to a multiple of 16, PIL bicubic; None: the protocol's
    affinity='attention',  # class-aware attention affinity (CAA) ...
    affinity_layers=8,  # ... from the mean attention of the last 8 blocks,
    sinkhorn_iters=3,  # column/row normalised 3 times,
    affinity_power=2,  # symmetrised and squared,
    box_threshold=0.4,  # restricted to the boxes of the CAM regions above 0.4 x max,
    box_rule='clip_es',  # drawn as CLIP-ES draws them (uint8 map; a box loses its last row/column at
    #                      the bottom/right edge); 'exact': float threshold, full boxes
    rescale_output=False,  # the refined CAM resized once to the image, not normalised again,
    float16_output=True,  # and stored as float16, the values the labels are decided on
    background_index=0)
# The CAM -> pseudo-mask protocol (tools/make_pseudo_masks.py). CLIP-ES: one scale, no flip, the size
# rounding done by the model (resize_to_multiple), the CAM kept as made (normalise=False); background
# score (1 - max CAM) ** 2, i.e. background where the largest CAM is below (3 - sqrt 5) / 2 = 0.382
# (project option: bg_mode='threshold', bg_threshold=0.382). Dense CRF (pydensecrf2) with the paper's
# parameters, started from the background score 1 - max CAM (bg_power=1) and CLIP-ES's CRF image
# (BGR minus its mean, cast to uint8; project option: image='rgb'). CLIP-ES writes the pixels of CRF
# confidence < 0.95 as ignore in the masks it trains on (the 75.0 it reports scores all pixels); our
# protocol offers ignore_margin instead.
cam_cfg = dict(scales=(1.0, ), flip=False, size_divisor=None, normalise=False, bg_mode='complement',
               bg_power=2.0,
               refine=dict(type='crf', num_iters=10, pos_sxy=1, pos_compat=3, bi_sxy=67, bi_srgb=3,
                           bi_compat=4, image='clip_es', bg_power=1.0))
