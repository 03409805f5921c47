"""Store files read and written at scale: a whole pass over a store leaves the RSS bounded and the data intact."""

from pathlib import Path

import numpy as np
import pytest
import torch

from em3.data.mapped import MappedArrays, MappedRows, RowFiles
from em3.data.token_store import ARRAYS, TokenStore

MIB = 1 << 20


def rss_file() -> int:
    """Bytes of file-backed pages this process has mapped and resident (RssFile)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")


def test_pages_written_leave_the_rss_at_each_budget_and_the_data_stays(tmp_path):
    mapped = MappedArrays(budget=4 * MIB)
    array = mapped.create(tmp_path / "a.npy", (64 * 1024, 512), np.float16)  # 64 MiB
    before = rss_file()
    for start in range(0, len(array), 1024):
        array[start : start + 1024] = np.arange(start, start + 1024)[:, None] % 2048
        mapped.touched(array[start : start + 1024].nbytes)
    assert rss_file() - before < 16 * MIB, "written pages must leave the RSS every 4 MiB"
    assert mapped.pending < mapped.budget
    expected = (np.arange(len(array))[:, None] % 2048).astype(np.float16)
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.broadcast_to(expected, array.shape)), "data must stay"


def test_rows_are_read_in_any_order_with_repeats_and_out_of_range_rows_are_refused(tmp_path):
    values = np.arange(50 * 3 * 2, dtype=np.float16).reshape(50, 3, 2)
    np.save(tmp_path / "v.npy", values)
    files = RowFiles()
    files.open("v", tmp_path / "v.npy")
    rows = np.array([7, 3, 4, 5, 49, 0, 7, 8])  # runs (3..5, 7..8) and singles, unsorted, a repeat
    assert np.array_equal(files.read("v", rows), values[rows])
    assert files.read("v", np.array([], dtype=np.int64)).shape == (0, 3, 2)
    with pytest.raises(IndexError, match="outside 0..49"):
        files.read("v", np.array([2, 50]))


@pytest.mark.parametrize("order", ["in order", "shuffled"])
def test_gathering_a_whole_loaded_store_keeps_its_pages_within_the_budget(tmp_path, order):
    n_items, rng = 4000, np.random.default_rng(0)
    arrays = {
        "image_tokens": rng.normal(size=(n_items + 1, 4, 1280)).astype(np.float16),  # 40 MiB
        "image_mask": np.ones((n_items + 1, 4), dtype=bool),
        "text_tokens": rng.normal(size=(n_items + 1, 8, 384)).astype(np.float16),
        "text_mask": np.ones((n_items + 1, 8), dtype=bool),
        "pooled_image": rng.normal(size=(n_items + 1, 1280)).astype(np.float16),
        "pooled_text": rng.normal(size=(n_items + 1, 384)).astype(np.float16),
    }
    arrays["image_mask"][0] = arrays["text_mask"][0] = False
    TokenStore([f"i{i}" for i in range(n_items)], **arrays).save(tmp_path / "store")

    store = TokenStore.load(tmp_path / "store")
    assert store.files is not None and {name: getattr(store, name).shape for name in ARRAYS} == {
        name: array.shape for name, array in arrays.items()
    }
    rows = torch.arange(store.n_rows) if order == "in order" else torch.randperm(store.n_rows)
    before = rss_file()
    for batch in rows.split(16):  # through the mapping, 16 scattered rows mapped 24 MiB (whole cached folios)
        content = store.gather(batch)
        assert torch.equal(content.text_tokens, torch.from_numpy(arrays["text_tokens"][batch.numpy()]).float())
    assert rss_file() - before < 8 * MIB, "a pass over a 77 MiB store must not leave it in the RSS"
    assert not store.gather(torch.tensor([0])).image_mask.any()


def test_mapped_rows_read_what_was_written_through_views_after_the_file_is_deleted(tmp_path):
    values = np.arange(40 * 3, dtype=np.int32).reshape(40, 3)
    np.save(tmp_path / "h.npy", values)
    rows = MappedRows(tmp_path / "h.npy")
    (tmp_path / "h.npy").unlink()  # the open handle keeps the data
    assert rows.shape == (40, 3) and len(rows) == 40
    part = rows[10:30]  # a view: its row 0 is row 10
    assert part.shape == (20, 3)
    got = part[torch.tensor([[0, 19], [5, -1]])]
    assert got.dtype == torch.int64 and got.shape == (2, 2, 3)
    assert torch.equal(got, torch.from_numpy(values[[[10, 29], [15, 29]]]).long())
    assert torch.equal(part[2:4][torch.arange(2)], torch.from_numpy(values[12:14]).long())
    with pytest.raises(IndexError, match="outside 0..19"):
        part[torch.tensor([20])]
    with pytest.raises(IndexError, match="integers or a slice"):
        part[torch.ones(20, dtype=torch.bool)]
