"""The error of a dataset file that cannot be used as it is."""

__all__ = ['DatasetError']


class DatasetError(ValueError):
    """A dataset file (split file, label file, mask, annotation json, directory of pseudo masks) that
    cannot be used as it is. The message names the file (and line), what was found and the fix; the
    command-line tools print it without a traceback."""
