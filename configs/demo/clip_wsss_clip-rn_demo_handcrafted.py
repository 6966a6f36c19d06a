# The stage-1 CLIP demo model with fixed hand-written prompts (a template ensemble) instead of
# learned CoOp context: what prompt learning buys on a pretrained text tower.
_base_ = './clip_wsss_clip-rn_demo.py'
model = dict(text_encoder=dict(prompt=dict(_delete_=True, type='TemplatePromptLearner')))
