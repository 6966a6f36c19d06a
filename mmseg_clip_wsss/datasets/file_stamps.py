"""What a file holds now, as a short string, for caches and run records that must notice when a file
behind the same path changed (a CLIP pretrained again, a pool drawn with another seed)."""
import hashlib
import os
import os.path as osp
from typing import Dict, Iterable

__all__ = ['file_stamp', 'folder_stamps', 'DATA_RECORDS', 'HASHED_SIZE']

#: Files up to this size (bytes) are stamped by their content (SHA-256), larger ones (checkpoints) by
#: size and modification time.
HASHED_SIZE = 1 << 24
#: The record a generated data folder keeps of what it was made with (world, seed, sizes, style).
DATA_RECORDS = ('demo_info.json', 'described_pool.json')


def file_stamp(path: str) -> str:
    """``sha256:<hex>`` of a file up to :data:`HASHED_SIZE` bytes, else ``size:<bytes>:mtime:<ns>``.

    Raises:
        FileNotFoundError: no such file.
    """
    info = os.stat(path)
    if info.st_size > HASHED_SIZE:
        return f'size:{info.st_size}:mtime:{info.st_mtime_ns}'
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return f'sha256:{digest.hexdigest()}'


def folder_stamps(paths: Iterable[str]) -> Dict[str, str]:
    """Stamps of the existing files among ``paths``, and of the :data:`DATA_RECORDS` of the existing
    folders among them (a folder's other files are not read), keyed by absolute path."""
    stamps = {}
    for path in paths:
        if osp.isfile(path):
            stamps[osp.abspath(path)] = file_stamp(path)
        elif osp.isdir(path):
            for name in DATA_RECORDS:
                record = osp.join(path, name)
                if osp.isfile(record):
                    stamps[osp.abspath(record)] = file_stamp(record)
    return dict(sorted(stamps.items()))
