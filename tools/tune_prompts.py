"""``tools/tune_prompts.py``: see :mod:`mmseg_clip_wsss.cli.tune_prompts` (``--help`` lists the options)."""
from mmseg_clip_wsss.cli.tune_prompts import run

if __name__ == '__main__':
    run()
