"""The errors of dataset files that cannot be used as they are."""

__all__ = ['DatasetError', 'MissingDatasetFileError']


class DatasetError(ValueError):
    """A dataset file (split file, label file, mask, annotation json, directory of pseudo masks) that
    cannot be used as it is. The message names the file (and line), what was found and the fix; the
    command-line tools print it without a traceback."""


class MissingDatasetFileError(DatasetError, FileNotFoundError):
    """A file that a dataset lists (an image of its split file or of its label file, a ground-truth
    mask) does not exist. A :class:`DatasetError`, so the command-line tools print its one-line
    message (the file, the list it came from, the fix) without a traceback, and a
    :class:`FileNotFoundError`, as code that catches missing files expects."""
