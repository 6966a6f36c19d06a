"""The demo's training-free row: CLIP-ES pseudo masks of the demo train split from the demo CLIP alone.

``python -m mmseg_clip_wsss.demo.training_free [--data-root data/demo] [--clip data/demo/clip/clip.pt]
[--out-dir work_dirs/demo/training_free] [--row row.json]`` prints the row as JSON (and writes it); :func:`training_free_row` returns it.
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional

import torch

__all__ = ['TRAINING_FREE_CONFIG', 'training_free_row']

#: The demo's training-free config (TrainingFreeCLIPES on the demo CLIP).
TRAINING_FREE_CONFIG = 'configs/clip_es/clip-es_demo-clip_demo.py'


def training_free_row(data_root: str = 'data/demo',
                      clip_checkpoint: Optional[str] = None,
                      out_dir: str = 'work_dirs/demo/training_free',
                      threads: Optional[int] = None) -> Dict:
    """Write CLIP-ES pseudo masks for the demo train split (no training, no checkpoint of ours) and
    score them against the ground truth, as ``tools/make_pseudo_masks.py CONFIG --eval`` does.

    Masks are always rewritten, so that the time is the time of making them.

    Args:
        data_root (str): The demo data. Defaults to ``'data/demo'``.
        clip_checkpoint (str, optional): The demo CLIP (open_clip state dict); None: the config's
            ``data/demo/clip/clip.pt`` under ``data_root``.
        out_dir (str): Masks, ``metrics.json`` and ``protocol.json``. Defaults to
            ``'work_dirs/demo/training_free'``.
        threads (int, optional): torch CPU threads (None: torch's default).

    Returns:
        dict: ``training_free_miou`` (%), ``training_free_seconds_per_image`` (wall time of the masks,
        writing included, over the number of images) and ``training_free_images``.
    """
    from mmseg_clip_wsss.cam.cli import make_pseudo_masks_main
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    clip_checkpoint = clip_checkpoint or osp.join(data_root, 'clip', 'clip.pt')
    if not osp.isfile(clip_checkpoint):
        raise FileNotFoundError(f'training_free_row: the demo CLIP {clip_checkpoint} does not exist; '
                                f'make it with `python tools/pretrain_clip.py --data-root {data_root}`.')
    options: List[str] = [f'cam_dataloader.dataset.data_root={data_root}',
                          f'model.backbone.pretrained={clip_checkpoint}',
                          f'model.text_encoder.pretrained={clip_checkpoint}']
    if threads:
        torch.set_num_threads(threads)
    result = make_pseudo_masks_main([osp.join(repo, TRAINING_FREE_CONFIG), '--out-dir', out_dir, '--eval',
                                     '--overwrite', '--no-progress', '--cfg-options', *options])
    images = result['written']
    return dict(training_free_miou=round(float(result['metrics']['mIoU']), 2),
                training_free_seconds_per_image=round(result['seconds'] / max(images, 1), 4),
                training_free_images=images)


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description='CLIP-ES training-free pseudo masks of the demo data')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--clip', default=None, help='demo CLIP checkpoint (default DATA_ROOT/clip/clip.pt)')
    parser.add_argument('--out-dir', default='work_dirs/demo/training_free')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--row', default=None, help='JSON file to write the row to')
    args = parser.parse_args(argv)
    row = training_free_row(args.data_root, args.clip, args.out_dir, args.threads)
    if args.row:
        with open(args.row, 'w') as f:
            json.dump(row, f, indent=2)
    print(json.dumps(row))
    return row


if __name__ == '__main__':
    main()
