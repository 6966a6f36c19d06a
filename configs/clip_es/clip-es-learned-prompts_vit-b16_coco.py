# CLIP-ES on COCO 2014 with prompts tuned on the image-level labels of train2014 (82,783 images),
# OpenAI's ViT-B/16 frozen (docs/clip_es.md, "Prompts tuned on image labels"):
#   python tools/tune_prompts.py configs/clip_es/clip-es-learned-prompts_vit-b16_coco.py
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es-learned-prompts_vit-b16_coco.py \
#       --out-dir work_dirs/clip_es_learned-prompts_coco --eval
# Everything but the prompts is configs/clip_es/clip-es_vit-b16_coco.py. The context starts as CLIP-ES's
# own template, 'a clean origami {}.', its words a learnable CoOp context (EnsemblePromptLearner with
# one template), so before tuning the rows are CLIP-ES's; the background words are tuned the same way.
# The other options are the demo's (chosen on the demo's val split); not measured on COCO here.
_base_ = ['./clip-es_vit-b16_coco.py']
prompts_file = 'work_dirs/prompts/clip-es_vit-b16_coco.pth'  # written by tools/tune_prompts.py
model = dict(prompts=prompts_file)
prompt_tuning = dict(
    prompt=dict(type='EnsemblePromptLearner', templates=('a clean origami {}.', )),
    loss=dict(type='BackgroundNegativePromptLoss', gamma_pos=0.0, gamma_neg=2.0, clip=0.05),
    epochs=40, batch_size=32, lr=0.002, optimizer='sgd', seed=0)
