"""The one error type for unusable data."""


class DataError(ValueError):
    """Data that cannot be used as a whole (missing file or column, wrong delimiter, truncated or non-UTF-8
    file, empty dataset, too many bad rows); the message names the file and what was expected."""
