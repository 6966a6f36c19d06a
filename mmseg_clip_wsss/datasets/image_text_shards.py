"""Image-text pairs streamed from webdataset tar shards (``<key>.jpg`` + ``<key>.txt``).

The shard format of open_clip's training data and of ``img2dataset``: each sample is the files of one
key in a tar (``000123.jpg``, ``000123.txt``); the text file holds the description (one per line when
an image has several). Shards are read with the ``webdataset`` package (its tar iterators), split
first across the distributed ranks and then across the dataloader workers, so every shard of an epoch
is read by exactly one worker of one rank; the stream repeats epoch after epoch (shards re-shuffled
per epoch from the seed), and a run restarts where it stopped (``resume_epoch``, ``resume_batches``).
"""
import os.path as osp
import tarfile
from itertools import count
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.shardlists import expand_urls
from webdataset.tariterators import tarfile_samples

from ..registry import DATASETS
from .errors import DatasetError, MissingDatasetFileError
from .image_text_dataset import image_text_sample

__all__ = ['ImageTextShards', 'expand_shards', 'shards_for', 'resume_skip', 'shard_sample',
           'tar_cut_short']

IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp')
#: The fix of a shard that is no (whole) tar file.
SHARD_FIX = ('write it again as a tar of <key>.jpg + <key>.txt files (docs/datasets.md, "Image-text '
             'pairs"), or leave it out of shards=')
#: ``len()`` of a stream of unknown size.
ENDLESS = 2**31 - 1


def expand_shards(shards: Union[str, Sequence[str]], data_root: str = '') -> List[str]:
    """Every shard of a brace pattern (``'pairs-{000000..000099}.tar'``) or a list of them.

    Args:
        shards (str | Sequence[str]): Brace pattern(s) (``::`` separates several, as in
            webdataset), or a list of files; relative ones are taken under ``data_root``.
        data_root (str): Folder of relative shard paths. Defaults to ''.

    Returns:
        list[str]: The shard files, in the order the pattern gives them.

    Raises:
        ValueError: the pattern gives no shard.
    """
    patterns = [shards] if isinstance(shards, str) else list(shards)
    urls = [url for pattern in patterns for url in expand_urls(pattern)]
    if not urls:
        raise ValueError(f'ImageTextShards: the shard pattern {shards!r} names no shard.')
    return [u if '://' in u or osp.isabs(u) or not data_root else osp.join(data_root, u) for u in urls]


def shards_for(shards: Sequence[str], epoch: int, rank: int, world_size: int, worker: int = 0,
               num_workers: int = 1, shuffle: bool = True, seed: int = 0) -> List[str]:
    """The shards one dataloader worker of one rank reads in an epoch.

    The epoch's order (a permutation drawn from ``(seed, epoch)``, or the given order) is dealt out
    round-robin to the ranks, and each rank's share round-robin to its workers: over all ranks and
    workers every shard is read exactly once per epoch.

    Args:
        shards (Sequence[str]): Every shard.
        epoch (int): The epoch (decides the order when ``shuffle``).
        rank (int): This process's rank; ``world_size`` the number of ranks.
        worker (int): The dataloader worker; ``num_workers`` how many a rank runs (0 and 1: one).
        shuffle (bool): Shuffle the shards per epoch. Defaults to True.
        seed (int): Seed of the shuffles. Defaults to 0.

    Returns:
        list[str]: This worker's shards, in reading order.
    """
    order = list(shards)
    if shuffle:
        order = [order[i] for i in np.random.default_rng([seed, epoch]).permutation(len(order))]
    return order[rank::world_size][worker::max(num_workers, 1)]


def resume_skip(batches_seen: int, batch_size: int, worker: int, num_workers: int) -> int:
    """Samples a worker's stream had given when its rank had taken ``batches_seen`` batches.

    A ``DataLoader`` over an iterable dataset takes one batch from each worker in turn; worker ``w``
    of ``W`` has given ``ceil((k - w) / W)`` of the first ``k`` batches (the whole stream with
    ``num_workers`` 0). Exact while every worker still has samples in the epoch.
    """
    workers = max(num_workers, 1)
    return batch_size * max(0, -(-(batches_seen - worker) // workers))


def shard_sample(raw: Dict, loss_weight: float = 1.0,
                 image_extensions: Sequence[str] = IMAGE_EXTENSIONS, text_extension: str = 'txt') -> dict:
    """One webdataset sample (``__key__``, ``__url__`` and file bytes) as an image-text sample.

    Args:
        raw (dict): The sample as webdataset's tar iterator groups it.
        loss_weight (float): The source's weight. Defaults to 1.0.
        image_extensions (Sequence[str]): Image file extensions, first found wins.
        text_extension (str): The description's extension. Defaults to ``'txt'``.

    Returns:
        dict: :func:`~mmseg_clip_wsss.datasets.image_text_dataset.image_text_sample` with
        ``img_bytes`` and ``img_path`` ``'<shard>#<key>'``.

    Raises:
        DatasetError: no image, or no (or an empty) description, naming the shard and the key.
    """
    shard, key = raw.get('__url__', '?'), raw.get('__key__', '?')
    found = sorted(k for k in raw if not k.startswith('__'))
    image_ext = next((ext for ext in image_extensions if ext in raw), None)
    if image_ext is None:
        raise DatasetError(f'shard {shard}, sample {key!r}: no image ({"/".join(image_extensions)}), found '
                           f'{found}; add the image or leave the sample out of the shard.')
    text = raw.get(text_extension)
    captions = [] if text is None else [
        line.strip() for line in bytes(text).decode('utf-8', errors='replace').splitlines() if line.strip()]
    if not captions:
        what = 'an empty' if text is not None else 'no'
        raise DatasetError(f'shard {shard}, sample {key!r}: {what} caption (.{text_extension}), found '
                           f'{found}; write its description into {key}.{text_extension} or leave the '
                           'sample out of the shard.')
    return image_text_sample(f'{shard}#{key}', key, captions, loss_weight, img_bytes=bytes(raw[image_ext]))


#: A tar archive ends with two 512-byte blocks of zeros after its last member (POSIX ustar).
_TAR_END_MARKER = 1024


def tar_cut_short(path: str) -> Optional[str]:
    """Why local tar file ``path`` is not whole (None: it is): a member whose data runs past the end
    of the file, or no end marker after the last member. A file cut at a 512-byte block boundary
    between two members reads as a whole shorter tar (its last sample without its caption), so the
    end marker is what tells it apart.

    Args:
        path (str): A local tar file.

    Returns:
        str | None: The reason, naming the byte counts.
    """
    try:
        with tarfile.open(path, 'r:') as tar:
            tar.getmembers()
            end = tar.offset  # just after the last member's data (its blocks)
    except tarfile.TarError as err:
        return str(err.args[0]).split(' @ ')[0] if err.args else type(err).__name__
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        f.seek(end)
        marker = f.read(_TAR_END_MARKER)
    if len(marker) < _TAR_END_MARKER or marker.strip(b'\0'):
        return (f'cut short: {size} bytes, and no tar end marker after the last member at byte {end}, '
                'so its last sample may be incomplete')
    return None


def _read_shard(shard: str) -> Iterator[dict]:
    """The raw samples of one shard (webdataset's tar iterator); a shard that is no tar file, or one
    cut short (:func:`tar_cut_short`), is refused naming it (:class:`DatasetError`) instead of
    tarfile's ``ReadError`` or a sample of no caption."""
    reason = tar_cut_short(shard) if osp.isfile(shard) else None
    if reason is not None:
        raise DatasetError(f'ImageTextShards: shard {shard} is not a whole tar file ({reason}); '
                           f'{SHARD_FIX}.')
    try:
        yield from tarfile_samples([dict(url=shard)])
    except tarfile.TarError as err:
        reason = str(err.args[0]).split(' @ ')[0] if err.args else type(err).__name__
        raise DatasetError(f'ImageTextShards: shard {shard} is not a whole tar file ({reason}); '
                           f'{SHARD_FIX}.') from err


@DATASETS.register_module()
class ImageTextShards(IterableDataset):
    """Image-text pairs streamed from webdataset tar shards, split across ranks and workers.

    Yields the samples of :class:`~mmseg_clip_wsss.datasets.ImageTextDataset` (``img_path`` =
    ``'<shard>#<key>'``, ``img_id`` = the key, ``captions``, ``loss_weight``) plus the encoded image as
    ``img_bytes``, which ``LoadWSSSImage`` decodes: the same pipeline serves both. Each worker of each
    rank reads its own shards of the epoch (:func:`shards_for`); with ``repeat`` the stream goes on
    epoch after epoch (mmengine's iteration-based loop), otherwise it ends after one.

    Use it with ``sampler=None`` in the dataloader config (an iterable dataset has no sampler); every
    rank should hold about as many shards as the others (a pattern of at least ``world_size`` x
    ``num_workers`` shards of similar size).

    Args:
        shards (str | Sequence[str]): Brace pattern or list of tar files (see :func:`expand_shards`).
        data_root (str): Folder of relative shard paths. Defaults to ''.
        pipeline (Sequence[dict]): Transforms, as for any mmengine dataset. Defaults to ().
        shuffle_shards (bool): Shuffle the shard order per epoch. Defaults to True.
        seed (int): Seed of the shard shuffles. Defaults to 0.
        repeat (bool): Run epoch after epoch without end. Defaults to True.
        resume_epoch (int): Epoch to start in (resuming). Defaults to 0.
        resume_batches (int): Batches this rank had taken in ``resume_epoch``; each worker skips
            what it had given (:func:`resume_skip`). Defaults to 0.
        batch_size (int): The dataloader's batch size (needed to resume). Defaults to 1.
        rank (int, optional) / world_size (int, optional): This process's rank and the number of
            ranks; None: mmengine's ``get_dist_info()``.
        loss_weight (float): Weight of this source in the losses. Defaults to 1.0.
        metainfo (dict, optional): Dataset meta information (``classes``). Defaults to None.
        check_files (bool): Check that every local shard exists at construction. Defaults to True.
        num_samples (int, optional): Samples in all shards (e.g. from img2dataset's stats): ``len()``
            gives this rank's share of them. None: ``len()`` is :data:`ENDLESS` (mmengine asks a
            dataloader for its length to convert epoch-based schedules, which an endless stream
            has not). Defaults to None.

    Raises:
        MissingDatasetFileError: a shard that does not exist (local paths).
        DatasetError: a local shard that is no tar file (with ``check_files``); while streaming, a
            shard that is no whole tar file (shard named) or a sample without image or caption
            (shard and key named).
        ValueError: fewer shards than ranks.
    """

    def __init__(self,
                 shards: Union[str, Sequence[str]],
                 data_root: str = '',
                 pipeline: Sequence[dict] = (),
                 shuffle_shards: bool = True,
                 seed: int = 0,
                 repeat: bool = True,
                 resume_epoch: int = 0,
                 resume_batches: int = 0,
                 batch_size: int = 1,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None,
                 loss_weight: float = 1.0,
                 metainfo: Optional[dict] = None,
                 check_files: bool = True,
                 num_samples: Optional[int] = None) -> None:
        super().__init__()
        self.shards = expand_shards(shards, data_root)
        if check_files:
            self._check_shards()
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        if len(self.shards) < self.world_size:
            raise ValueError(f'ImageTextShards: {len(self.shards)} shards cannot feed {self.world_size} '
                             'ranks; write at least one shard per rank (better: per worker).')
        self.pipeline = Compose(pipeline)
        self.shuffle_shards, self.seed, self.repeat = shuffle_shards, seed, repeat
        self.resume_epoch, self.resume_batches = int(resume_epoch), int(resume_batches)
        self.batch_size = int(batch_size)
        self.loss_weight = float(loss_weight)
        self._metainfo = dict(metainfo or {})
        self.num_samples = num_samples

    def __len__(self) -> int:
        """This rank's share of ``num_samples``, or :data:`ENDLESS` without it."""
        if self.num_samples is None:
            return ENDLESS
        return -(-self.num_samples // self.world_size)

    @property
    def metainfo(self) -> dict:
        """Dataset meta information (a copy)."""
        return dict(self._metainfo)

    def _check_shards(self) -> None:
        local = [s for s in self.shards if '://' not in s]
        missing = [s for s in local if not osp.isfile(s)]
        if missing:
            shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
            raise MissingDatasetFileError(
                f'ImageTextShards: {len(missing)} of {len(self.shards)} shards do not exist: {shown}. '
                'Fix data_root or the shard pattern (shards=...).')
        not_tar = [s for s in local if not tarfile.is_tarfile(s)]
        if not_tar:
            shown = ', '.join(not_tar[:5]) + (', ...' if len(not_tar) > 5 else '')
            raise DatasetError(f'ImageTextShards: {len(not_tar)} of {len(self.shards)} shards are not tar '
                               f'files: {shown}; {SHARD_FIX}.')

    def _worker(self):
        info = get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def worker_shards(self, epoch: int, worker: int = 0, num_workers: int = 1) -> List[str]:
        """The shards that ``worker`` of this rank reads in ``epoch`` (see :func:`shards_for`)."""
        return shards_for(self.shards, epoch, self.rank, self.world_size, worker, num_workers,
                          self.shuffle_shards, self.seed)

    def raw_samples(self, worker: int = 0, num_workers: int = 1) -> Iterator[dict]:
        """The samples of one worker before the pipeline, from the resume point on.

        Resumed after ``k`` batches, worker ``w`` continues the stream of the worker ``(w + k) % W``
        of the first run: the loader takes its first batch from worker 0, and the first run's next
        batch was that worker's.
        """
        worker = (worker + self.resume_batches) % max(num_workers, 1)
        skip = resume_skip(self.resume_batches, self.batch_size, worker, num_workers)
        epochs = count(self.resume_epoch) if self.repeat else [self.resume_epoch]
        for epoch in epochs:
            shards = self.worker_shards(epoch, worker, num_workers)
            if not shards:
                return  # more workers than shards: this one has none (and would spin forever)
            for shard in shards:
                for raw in _read_shard(shard):
                    if skip:
                        skip -= 1
                        continue
                    yield shard_sample(raw, self.loss_weight)

    def __iter__(self) -> Iterator[dict]:
        worker, num_workers = self._worker()
        for sample in self.raw_samples(worker, num_workers):
            yield self.pipeline(sample)
