# CLIP-ES on the demo data with prompts tuned on the demo train split's image-level labels, the demo
# CLIP frozen (docs/clip_es.md, "Prompts tuned on image labels"):
#   python tools/tune_prompts.py configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py
#   python tools/make_pseudo_masks.py configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py \
#       --out-dir work_dirs/clip_es_learned-prompts_demo --eval
# Everything but the prompts is configs/clip_es/clip-es_demo-clip_demo.py: the same CLIP, class names,
# background words, CAM protocol. The prompts start as that config's four hand-written templates, each
# a learnable CoOp context (EnsemblePromptLearner: before tuning the rows are the hand-written ones);
# the background words are prompted, and tuned, the same way. The tuning options were chosen on the
# demo *val* split (prompts tuned on the train labels, CLIP-ES masks of val scored), never on the train
# split that is scored; docs/clip_es.md lists the options tried.
_base_ = ['./clip-es_demo-clip_demo.py']
prompts_file = 'work_dirs/prompts/clip-es_demo-clip_demo.pth'  # written by tools/tune_prompts.py
templates = ('a photo of a {}.', 'a {}.', 'there is a {} in the picture.', 'an image of a {}.')
model = dict(prompts=prompts_file)
prompt_tuning = dict(
    prompt=dict(type='EnsemblePromptLearner', templates=templates),
    loss=dict(type='BackgroundNegativePromptLoss', gamma_pos=0.0, gamma_neg=2.0, clip=0.05),
    epochs=40, batch_size=32, lr=0.002, optimizer='sgd', seed=0)
