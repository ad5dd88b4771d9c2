"""The error kdet raises for bad input data (annotations, images, label maps)."""


class DataError(ValueError):
    """Bad input data: the message names the file (and row, object or line) and what was expected.

    A `ValueError`, so code that already catches `ValueError` keeps working.

    Example:
    >>> try:
    ...     kdet.data.read_label_map("missing.pbtxt")
    ... except kdet.data.DataError as error:
    ...     print(error)
    """
