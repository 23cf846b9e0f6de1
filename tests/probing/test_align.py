"""Alignment of sequence positions with per-sentence labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physlm.probing.align import IGNORE_INDEX, PackedLayout, SentenceLayout, gather_labels, to_sentence_rows
from physlm.tasks.base import TokenTable

# <pad> = 0, <bos> = 1, <eos> = 2, <mask> = 3, then tokens 4..9 (the CFG layout of DEVELOPERS.md)
TABLE = TokenTable("toy", ("<pad>", "<bos>", "<eos>", "<mask>", *"abcdef"))


def test_sentence_layout_puts_x_i_at_i_plus_one():
    layout = SentenceLayout.from_sentences([[4, 5, 6], [7]], TABLE)
    assert layout.tokens.tolist() == [[1, 4, 5, 6, 2], [1, 7, 2, 0, 0]]
    assert layout.token_index.tolist() == [[-1, 0, 1, 2, -1], [-1, 0, -1, -1, -1]]
    labels = gather_labels(layout, [np.array([10, 11, 12]), np.array([20])])
    assert labels.tolist() == [[IGNORE_INDEX, 10, 11, 12, IGNORE_INDEX], [IGNORE_INDEX, 20] + [IGNORE_INDEX] * 3]


def test_sentence_layout_cuts_long_sentences_to_max_len():
    layout = SentenceLayout.from_sentences([[4] * 10, [5, 5]], TABLE, max_len=6)
    assert layout.tokens.shape == (2, 6)
    assert layout.lengths.tolist() == [5, 2]
    assert layout.tokens[0].tolist() == [1, 4, 4, 4, 4, 4]  # no room left for EOS
    rows = to_sentence_rows(layout, gather_labels(layout, [list(range(10)), [7, 8]]), fill=-1)
    assert rows.tolist() == [[0, 1, 2, 3, 4], [7, 8, -1, -1, -1]]


def test_packed_layout_maps_windows_back_to_sentences():
    sentences = [[4, 5], [6, 7, 8], [9]]
    layout = PackedLayout.from_sentences(sentences, TABLE, window=4)
    # stream: B 4 5 E B 6 7 8 E B 9 E  -> 3 windows of 4
    assert layout.tokens.tolist() == [[1, 4, 5, 2], [1, 6, 7, 8], [2, 1, 9, 2]]
    labels = gather_labels(layout, [[0, 1], [2, 3, 4], [5]])
    assert labels.tolist() == [[-100, 0, 1, -100], [-100, 2, 3, 4], [-100, -100, 5, -100]]


def test_label_count_mismatch_is_reported():
    layout = SentenceLayout.from_sentences([[4, 5, 6]], TABLE)
    with pytest.raises(ValueError, match="2 labels for 3"):
        gather_labels(layout, [[0, 1]])
    with pytest.raises(ValueError, match="empty sentence"):
        SentenceLayout.from_sentences([[]], TABLE)


def test_to_sentence_rows_keeps_trailing_feature_dims():
    layout = SentenceLayout.from_sentences([[4, 5], [6]], TABLE)
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    rows = to_sentence_rows(layout, x)
    assert torch.equal(rows[0, 0], x[0, 1]) and torch.equal(rows[0, 1], x[0, 2])
    assert torch.equal(rows[1, 0], x[1, 1]) and bool((rows[1, 1] == 0).all())
