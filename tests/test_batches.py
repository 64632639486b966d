import pytest
import torch

from songgen.training.batches import StreamBatches, eval_rows
from songgen.errors import ConfigError


def test_rows_are_contiguous_and_targets_shifted_by_one():
    data = torch.arange(100, dtype=torch.int16)
    b = StreamBatches(data, batch_size=3, seq_len=5)
    assert len(b) == 6  # 33 columns per row -> 6 whole steps
    x0, y0 = b.batch(0, torch.device("cpu"))
    x1, _ = b.batch(1, torch.device("cpu"))
    assert x0.dtype == torch.int64
    assert x0[:, 0].tolist() == [0, 33, 66]
    assert torch.equal(y0, x0 + 1)
    # Step 1 continues each row exactly where step 0 stopped.
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)


def test_too_short_for_one_window_is_a_clear_error():
    with pytest.raises(ConfigError, match="fewer than batch size x sequence length"):
        StreamBatches(torch.arange(50), batch_size=4, seq_len=16)


def test_eval_rows_cover_the_data_once():
    data = torch.arange(1000)
    x, y = eval_rows(data, rows=8)
    assert torch.equal(y, x + 1)
    assert x.numel() >= len(data) - 8


def test_eval_rows_sample_a_long_text_evenly_within_the_limit():
    data = torch.arange(100_001)
    x, y = eval_rows(data, rows=8, limit=10_000)
    assert x.shape == (8, 1250) and torch.equal(y, x + 1)
    assert x[0, 0] == 0 and y[-1, -1] == 100_000  # from the very start to the very end
    assert all(x[i + 1, 0] > x[i, -1] for i in range(7))  # no character scored twice
