# The stage-1 demo model with fixed hand-written prompts (a template ensemble) instead of learned
# context: the comparison that shows what prompt learning buys.
_base_ = './clip_wsss_swin_demo.py'
model = dict(text_encoder=dict(prompt=dict(_delete_=True, type='TemplatePromptLearner')))
