# WeCLIP-style stage 1 (Zhang et al., "Frozen CLIP: A Strong Backbone for Weakly Supervised Semantic
# Segmentation", CVPR 2024): the frozen open_clip ViT-B/16 image tower as the backbone (no gradient
# reaches it), its intermediate patch tokens fused by our RSC-A neck, scored by the text-guided head
# against CLIP text embeddings of the same model. Only the neck, the head and the prompts train.
#   python tools/train.py configs/weclip/clip_wsss_frozen-clip-vit-b16_voc.py
_base_ = '../clip_wsss_swin_voc.py'
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
model = dict(
    data_preprocessor=dict(mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323]),
    backbone=dict(
        _delete_=True,
        type='CLIPVisionBackbone',
        model_name=clip_model,
        pretrained=clip_pretrained,
        out_indices=(3, 5, 7, 11),  # four depths of the 12 blocks, all at stride 16
        frozen=True,
        quick_gelu=True),  # OpenAI's weights need QuickGELU, also from a local file (no flag there)
    neck=dict(in_channels=[768, 768, 768, 768]),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained, quick_gelu=True))
