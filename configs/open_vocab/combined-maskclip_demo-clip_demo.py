# Open vocabulary from a trained stage-1 head and the demo CLIP's dense zero-shot map together
# (OpenVocabCombiner, docs/open_vocabulary.md): names the head was trained on are scored by its CAMs,
# names it never saw by MaskCLIP's dense map of the CLIP; each source through a Platt sigmoid fitted on
# fit_split (GT masks of the trained classes; never the scored openvocab split). Used with a stage-1
# config and checkpoint:
#   python -m mmseg_clip_wsss.cli.open_vocab configs/demo/clip_wsss_clip-rn_demo.py CKPT \
#       --combine configs/open_vocab/combined-maskclip_demo-clip_demo.py --out work_dirs/ov/figures.json
# (the calibration is written to work_dirs/ov/figures_calibration.json and read from there next time).
# a TrainingFreeDenseCLIP config (its background words and temperature; the dense mode is the combiner's)
dense_config = '{{ fileDirname }}/../dense_clip/dense-clip-maskclip_demo-clip_demo.py'
# val: the head never trained on it (its train-split scores are overconfident); the dense settings of
# dense_config were chosen on val too, and nothing here is chosen on openvocab
fit_split = 'val'
combiner = dict(type='OpenVocabCombiner', dense_mode='maskclip', max_fit_pixels=200000)
