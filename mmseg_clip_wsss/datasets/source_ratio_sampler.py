"""An infinite sampler over a ``ConcatDataset`` that draws each source at a fixed share of the batches."""
import itertools
from typing import Iterator, List, Optional, Sequence

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from ..registry import DATA_SAMPLERS

__all__ = ['SourceRatioSampler']


@DATA_SAMPLERS.register_module()
class SourceRatioSampler(Sampler):
    """Infinite sampler of a ``ConcatDataset`` whose sources take fixed shares of the samples.

    Concatenating 30 labelled images with 1,500 described ones and sampling uniformly shows a labelled
    image in 2% of the draws: the few exact labels drown. Here each draw first picks a source with
    probability ``ratios[s]`` and then the next index of that source's own shuffled stream (every
    image of a source is seen once before any is seen again). The global stream depends only on
    the seed; rank ``r`` of ``W`` takes draws ``r, r + W, ...`` (as mmengine's ``InfiniteSampler``),
    so the ranks see disjoint draws. For ``IterBasedTrainLoop``.

    Args:
        dataset (ConcatDataset): mmengine's or torch's ``ConcatDataset`` (its ``datasets``).
        ratios (Sequence[float]): Share of each source, >= 0, not all 0 (normalised).
        shuffle (bool): Shuffle each source's stream per pass. Defaults to True.
        seed (int, optional): Seed; None: a random seed shared by the ranks.

    Raises:
        ValueError: ``ratios`` of another length than the sources, negative or all zero, or a
            source with a positive share and no sample.
    """

    def __init__(self, dataset, ratios: Sequence[float], shuffle: bool = True, seed: Optional[int] = None):
        sources = getattr(dataset, 'datasets', None)
        if sources is None:
            raise ValueError('SourceRatioSampler: the dataset must be a ConcatDataset (type=\'ConcatDataset\', '
                             'datasets=[...]), one source per ratio.')
        self.sizes = [len(d) for d in sources]
        if len(ratios) != len(self.sizes) or min(ratios) < 0 or sum(ratios) <= 0:
            raise ValueError(f'SourceRatioSampler: ratios {list(ratios)} must be {len(self.sizes)} shares >= 0 '
                             'and not all 0 (one per dataset of the ConcatDataset).')
        empty = [i for i, (n, r) in enumerate(zip(self.sizes, ratios)) if r > 0 and n == 0]
        if empty:
            raise ValueError(f'SourceRatioSampler: sources {empty} have a share but no sample.')
        total = float(sum(ratios))
        self.ratios = torch.tensor([r / total for r in ratios], dtype=torch.float64)
        self.offsets = list(itertools.accumulate([0] + self.sizes[:-1]))
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.rank, self.world_size = get_dist_info()

    def _source_stream(self, source: int, generator: torch.Generator) -> Iterator[int]:
        n, offset = self.sizes[source], self.offsets[source]
        while True:
            order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
            yield from (offset + int(i) for i in order)

    def _draws(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        streams: List[Iterator[int]] = [self._source_stream(s, generator) for s in range(len(self.sizes))]
        while True:
            for source in torch.multinomial(self.ratios, 1024, replacement=True, generator=generator).tolist():
                yield next(streams[source])

    def __iter__(self) -> Iterator[int]:
        """Indices of this rank, without end."""
        yield from itertools.islice(self._draws(), self.rank, None, self.world_size)

    def __len__(self) -> int:
        """The size of the concatenated dataset (the sampler itself has no end)."""
        return sum(self.sizes)

    def set_epoch(self, epoch: int) -> None:
        """Not used: the stream has no epochs."""
