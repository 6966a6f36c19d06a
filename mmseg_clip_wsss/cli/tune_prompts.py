"""``python tools/tune_prompts.py CONFIG [--out FILE] [--overwrite] [--device cpu] [--no-progress]
[--cfg-options ...]``: tune the prompts of a training-free CLIP-ES config on its training split's
image-level labels, both CLIP towers frozen, and save them as a learned-prompts file
(:func:`mmseg_clip_wsss.apis.prompt_tuning.tune_prompts`; the config's ``model.prompts`` then loads it)."""
import argparse
import json
from typing import Dict, List, Optional

from mmseg_clip_wsss.apis.preflight import check_config_classes, read_config
from mmseg_clip_wsss.apis.prompt_tuning import tune_prompts
from . import INPUT_ERRORS, device_arg, run_tool
from .runner_args import add_cfg_options_arg, merge_cfg_options, naming_cfg_options

__all__ = ['parse_args', 'main', 'interrupted_line', 'run']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tune CoOp prompts (and background prompts) of a frozen CLIP on image-level labels')
    parser.add_argument('config', help='a training-free config (TrainingFreeCLIPES); its prompt_tuning '
                        'section sets the tuning (without one: the defaults, named in a logged line)')
    parser.add_argument('--out', default=None, help='learned-prompts file to write (default: the '
                        "config's model.prompts)")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing file')
    parser.add_argument('--device', type=device_arg, default=None,
                        help='cpu, cuda, cuda:0 ... (default: cuda if available)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar or epoch log')
    add_cfg_options_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Tune and save the prompts with ``argv``; returns :func:`tune_prompts`'s dict."""
    args = parse_args(argv)
    cfg = read_config(args.config, example='configs/clip_es/clip-es-learned-prompts_demo-clip_demo.py')
    merge_cfg_options(cfg, args.cfg_options)
    check_config_classes(cfg, ('train_dataloader', ))
    with naming_cfg_options(args.cfg_options):
        result = tune_prompts(cfg, args.out, device=args.device, overwrite=args.overwrite,
                              show_progress=not args.no_progress)
    print(json.dumps(dict(result, loss=[round(x, 4) for x in result['loss']])))
    return result


def interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted tuning left: nothing (the file is written once, at the end)."""
    return ('no learned-prompts file was written (it is written once tuning ends; an existing one is left '
            'as it was); run the same command again (tuning starts over)')


def run() -> None:
    run_tool(main, also=INPUT_ERRORS, interrupted=lambda: interrupted_line(parse_args()))


if __name__ == '__main__':
    run()
