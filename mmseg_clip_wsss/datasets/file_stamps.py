"""What a file holds now, as a short string, for records that must notice when a file behind the same
path changed (a CLIP pretrained again, a pool drawn with another seed): the pseudo masks'
``protocol.json`` (:func:`mmseg_clip_wsss.cam.run.model_record`), the demo runs' ``run_with.json``,
caches and thresholds files."""
import hashlib
import os.path as osp
from typing import Dict, Iterable, Iterator

__all__ = ['file_identity', 'folder_stamps', 'nested_strings', 'DATA_RECORDS', 'DIGEST_LIMIT']

#: Files up to this size are identified by their SHA-256; larger ones (checkpoints) by size and time.
DIGEST_LIMIT = 64 * 1024 ** 2
#: The record a generated data folder keeps of what it was made with (world, seed, sizes, style).
DATA_RECORDS = ('demo_info.json', 'described_pool.json')


def file_identity(path: str) -> str:
    """What identifies the content of ``path``: ``sha256:<hex>`` for a file up to
    :data:`DIGEST_LIMIT` bytes, else ``<size> bytes, mtime <seconds>`` (a checkpoint of hundreds of MB
    is not read).

    Raises:
        FileNotFoundError: no such file.
    """
    size = osp.getsize(path)
    if size > DIGEST_LIMIT:
        return f'{size} bytes, mtime {int(osp.getmtime(path))}'
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return f'sha256:{digest.hexdigest()}'


def folder_stamps(paths: Iterable[str]) -> Dict[str, str]:
    """:func:`file_identity` of the existing files among ``paths``, and of the :data:`DATA_RECORDS` of
    the existing folders among them (a folder's other files are not read), keyed by absolute path."""
    stamps = {}
    for path in paths:
        if osp.isfile(path):
            stamps[osp.abspath(path)] = file_identity(path)
        elif osp.isdir(path):
            for name in DATA_RECORDS:
                record = osp.join(path, name)
                if osp.isfile(record):
                    stamps[osp.abspath(record)] = file_identity(record)
    return dict(sorted(stamps.items()))


def nested_strings(value) -> Iterator[str]:
    """Every string inside a nested dict / list / tuple (a config's values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from nested_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from nested_strings(item)
