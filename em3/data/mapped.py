"""``.npy`` files of several GB (the token store) read and written without the process's RSS growing with them.

A page of a file mapping counts in the process's resident set (RSS) from the first touch for as long as the mapping
lives, and on current kernels a read fault maps the whole cached folio around it (up to 2 MiB; 16 random rows of
a store mapped 24 MiB), so gathering through ``numpy.memmap`` leaves an RSS the size of the store after one pass
(a training epoch, a content-cache refresh). Hence:

- ``RowFiles`` reads rows with positioned reads (``os.preadv``, one call per run of consecutive rows): the bytes
  go through the page cache, which the kernel reclaims at will, into the returned array only.
- ``MappedArrays`` writes through shared ``numpy.memmap`` mappings (scattered row writes, as the feature stage
  makes them) and, after every ``budget`` bytes written, tells the kernel it no longer needs their pages
  (``madvise(MADV_DONTNEED)``): they leave the RSS, and their contents stay in the page cache and the file.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

RESIDENT_BUDGET = 256 << 20  # bytes written through the mappings between two releases


class MappedArrays:
    """Shared mappings of new ``.npy`` files, released together every ``budget`` bytes reported written."""

    def __init__(self, budget: int = RESIDENT_BUDGET):
        self.budget = budget
        self.maps: list[mmap.mmap] = []
        self.pending = 0  # bytes written since the last release

    def create(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | type) -> np.memmap:
        """A new zero-filled ``.npy`` file at ``path`` (sparse on disk until written), mapped for writing."""
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        self.maps.append(array._mmap)  # numpy.memmap keeps its mmap.mmap here
        return array

    def touched(self, nbytes: int) -> None:
        """Count ``nbytes`` written through the mappings; release the pages once past the budget."""
        self.pending += nbytes
        if self.pending >= self.budget:
            self.release()

    def release(self) -> None:
        """Drop every mapped page from the resident set (their contents stay in the file and the page cache)."""
        for mapping in self.maps:
            mapping.madvise(mmap.MADV_DONTNEED)
        self.pending = 0


class RowFiles:
    """Rows of C-ordered ``.npy`` files by name, read with positioned reads instead of through a mapping."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[BinaryIO, int, tuple[int, ...], np.dtype]] = {}  # file, data offset, shape, dtype

    def open(self, name: str, path: Path) -> None:
        file = Path(path).open("rb")  # noqa: SIM115 - kept open for the reads; closed when the object goes
        major, _ = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(file)
        if fortran_order or dtype.hasobject:
            file.close()
            raise ValueError(f"{path}: rows can be read only from a C-ordered array of plain values")
        self.files[name] = (file, file.tell(), tuple(shape), dtype)

    def read(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``array[rows]`` of the file opened as ``name`` (``rows``: 1-D integers, repeats and any order allowed)."""
        file, offset, shape, dtype = self.files[name]
        unique, inverse = np.unique(rows, return_inverse=True)
        if len(unique) and not 0 <= unique[0] <= unique[-1] < shape[0]:
            raise IndexError(f"{file.name}: rows {unique[0]}..{unique[-1]} outside 0..{shape[0] - 1}")
        values = np.empty((len(unique), *shape[1:]), dtype=dtype)
        row_bytes = values[:1].nbytes
        if row_bytes and len(unique):
            flat = values.reshape(-1).view(np.uint8)
            starts = np.flatnonzero(np.diff(unique, prepend=unique[0] - 2) != 1)  # first row of each run
            ends = np.append(starts[1:], len(unique))
            for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                want, at = (end - start) * row_bytes, offset + int(unique[start]) * row_bytes
                got = os.preadv(file.fileno(), [flat[start * row_bytes : end * row_bytes]], at)
                if got != want:
                    raise OSError(f"{file.name}: read {got} of {want} bytes at row {unique[start]}; truncated store?")
        return values if len(unique) == len(rows) and np.array_equal(unique, rows) else values[inverse]


class MappedRows:
    """Rows ``start..stop`` of one ``.npy`` file as torch tensors of ``dtype``, read with positioned reads when
    indexed: ``rows[index]`` (an integer tensor or array) reads those rows; ``rows[a:b]`` is a view, nothing read.
    The file may be deleted once opened (the open handle keeps it), so a temporary one leaves nothing behind."""

    def __init__(
        self,
        path: Path,
        files: RowFiles | None = None,
        start: int = 0,
        stop: int | None = None,
        dtype: np.dtype | type = np.int64,
    ):
        if files is None:
            files = RowFiles()
            files.open("rows", path)
        self.path, self.files, self.dtype = Path(path), files, dtype
        rows = files.files["rows"][2][0]
        self.start, self.stop = start, rows if stop is None else stop

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.stop - self.start, *self.files.files["rows"][2][1:])

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice | torch.Tensor | np.ndarray) -> MappedRows | torch.Tensor:
        if isinstance(index, slice):
            begin, end, step = index.indices(len(self))
            if step != 1:
                raise IndexError("mapped rows are sliced with step 1 only")
            return MappedRows(self.path, self.files, self.start + begin, self.start + max(begin, end), self.dtype)
        rows = np.asarray(index)
        if rows.dtype.kind not in "iu":
            raise IndexError(f"{self.path}: mapped rows are indexed by integers or a slice, not {rows.dtype}")
        rows = rows.astype(np.int64).reshape(-1)
        if len(rows) and not -len(self) <= rows.min() <= rows.max() < len(self):
            raise IndexError(f"{self.path}: rows {rows.min()}..{rows.max()} outside 0..{len(self) - 1}")
        values = self.files.read("rows", self.start + np.where(rows < 0, rows + len(self), rows))
        return torch.from_numpy(values.astype(self.dtype, copy=False)).reshape(*np.shape(index), *self.shape[1:])


def temporary_rows(
    shape: tuple[int, ...],
    dtype: np.dtype | type,
    chunks: Iterable[tuple[int, np.ndarray]],
    prefix: str,
    read_as: np.dtype | type | None = None,
) -> MappedRows:
    """A temporary ``.npy`` file of ``shape`` and ``dtype`` written from ``chunks`` (first row, values) through
    ``MappedArrays`` and read back as ``MappedRows`` (of ``read_as``, default ``dtype``): an array as large as the
    data stays out of memory. The file is deleted as soon as it is open (``TMPDIR`` chooses its disk)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        path = Path(folder) / "rows.npy"
        arrays = MappedArrays()
        out = arrays.create(path, shape, dtype)
        for begin, values in chunks:
            out[begin : begin + len(values)] = values
            arrays.touched(out[begin : begin + len(values)].nbytes)
        out.flush()
        arrays.release()
        return MappedRows(path, dtype=read_as or dtype)
