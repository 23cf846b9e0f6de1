"""Token framing and packing have one owner (TokenTable.frame, physlm.tasks.packing.pack), and every consumer
(the trainer's batches, probing's layouts, the attention windows) gives the same bytes as before it moved there."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import torch

from physlm.tasks import packing
from physlm.tasks.base import TokenTable
from physlm.tasks.packing import Piece, framed_documents, pack

# <pad> = 0, <bos> = 1, <eos> = 2, <mask> = 3, then ids 4..9
TABLE = TokenTable("toy", ("<pad>", "<bos>", "<eos>", "<mask>", *"abcdef"))


def test_frame_puts_bos_and_eos_around_a_document():
    assert TABLE.frame([4, 5, 6]) == [1, 4, 5, 6, 2]
    assert TABLE.frame([]) == [1, 2]
    assert TABLE.frame(np.array([7, 8]), close=False) == [1, 7, 8]
    assert all(type(i) is int for i in TABLE.frame(np.array([7, 8])))


def test_pack_cuts_the_framed_stream_into_windows():
    docs = [[4, 5], [6, 7, 8], [9]]
    windows = list(pack(docs, TABLE, 4))
    # stream: B 4 5 E B 6 7 8 E B 9 E -> 3 windows of 4
    assert [w.tokens for w in windows] == [[1, 4, 5, 2], [1, 6, 7, 8], [2, 1, 9, 2]]
    assert windows[0].pieces == (Piece(0, 0, 4),)
    assert windows[2].pieces == (Piece(1, 4, 5), Piece(2, 0, 3))
    assert [(w.next_doc, w.next_offset) for w in windows] == [(1, 0), (1, 4), (3, 0)]
    # a tail that does not fill a window is left out; n_windows stops early
    assert [w.tokens for w in pack(docs, TABLE, 5)] == [[1, 4, 5, 2, 1], [6, 7, 8, 2, 1]]
    assert len(list(pack(docs, TABLE, 4, n_windows=2))) == 2
    assert list(pack([[4]], TABLE, 4)) == []
    with pytest.raises(ValueError, match="window must be positive"):
        list(pack(docs, TABLE, 0))


def test_pack_drops_long_documents_but_keeps_their_index():
    docs = [[4, 5], [6] * 9, [7, 8]]
    windows = list(pack(docs, TABLE, 4, drop_long=True))
    assert [w.tokens for w in windows] == [[1, 4, 5, 2], [1, 7, 8, 2]]
    assert windows[1].pieces == (Piece(2, 0, 4),)
    kept = list(pack(docs, TABLE, 4))
    assert kept[1].tokens == [1, 6, 6, 6]  # without drop_long the long one is cut across windows


def test_pack_resumes_exactly_from_any_window():
    rng = random.Random(0)
    docs = [[rng.randrange(4, 10) for _ in range(rng.randrange(1, 12))] for _ in range(60)]
    for drop_long in (False, True):
        full = list(pack(docs, TABLE, 7, drop_long=drop_long))
        for i, w in enumerate(full[:-1]):
            rest = pack(docs[w.next_doc :], TABLE, 7, drop_long=drop_long, start_doc=w.next_doc, offset=w.next_offset)
            assert list(rest) == full[i + 1 :]


def test_too_many_dropped_documents_in_a_row_are_an_error(monkeypatch):
    monkeypatch.setattr(packing, "MAX_CONSECUTIVE_DROPS", 3)
    assert [k for k, _ in framed_documents([[4] * 9, [4] * 9, [4], [4] * 9], TABLE, max_len=4)] == [2]
    with pytest.raises(ValueError, match="3 documents in a row"):
        list(framed_documents([[4] * 9] * 3 + [[4]], TABLE, max_len=4))


# -- byte-identical to the hand-written packers the one owner replaced (digests computed before the move) ----------
def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


TRAINER_DIGESTS = {
    "packed": (dict(seq_len=64), ["e773211e54d9b17f", "ab1ba43dcf4dcbd9", "04aefb47c1da24b4"],
               {"0": [5, 16], "1": [5, 6], "2": [5, 12], "3": [6, 4]}),
    "packed_drop": (dict(seq_len=40, drop_long_documents=True),
                    ["a709326a633d66b5", "4e2a188bdcedf7ac", "d2c6e2354af2f507"],
                    {"0": [3, 22], "1": [6, 23], "2": [4, 11], "3": [3, 30]}),
    "padded": (dict(seq_len=40, layout="padded"), ["e226bc2f25f8a521", "2f2dbfd0e96f1b7e", "29e7f6be5f041f5c"],
               {"0": [3, 0], "1": [5, 0], "2": [4, 0], "3": [3, 0]}),
    "packed_lanes": (dict(seq_len=64, lanes=[1, 3]), ["99602f3583c0e4dd", "3eb3e54f2bfa4ad3", "74228039c4750cb6"],
                     {"1": [5, 6], "3": [6, 4]}),
}


@pytest.mark.parametrize("name", sorted(TRAINER_DIGESTS))
def test_trainer_batches_are_unchanged(name):
    from physlm.tasks.cfg import CFGTask
    from physlm.training.data import BatchStream, TaskDocuments

    kwargs, digests, state = TRAINER_DIGESTS[name]
    stream = BatchStream(TaskDocuments(CFGTask(), seed=0), "train", 4, **kwargs)  # the demo grammar
    batches = [next(stream) for _ in range(3)]
    assert [_digest(b.tokens, b.loss_mask) for b in batches] == digests
    assert stream.state_dict()["lanes"] == state
    resumed = BatchStream(TaskDocuments(CFGTask(), seed=0), "train", 4, **kwargs)
    first = next(resumed)
    resumed.load_state_dict(stream.state_dict())
    assert torch.equal(first.tokens, batches[0].tokens)
    again = BatchStream(TaskDocuments(CFGTask(), seed=0), "train", 4, **kwargs)
    for _ in range(3):
        next(again)
    assert torch.equal(next(resumed).tokens, next(again).tokens)


def test_probing_layouts_and_probe_data_are_unchanged():
    from physlm.probing.align import PackedLayout, SentenceLayout
    from physlm.probing.cfg_data import sample_probe_data
    from physlm.tasks.cfg import cfg_token_table, load_grammar, sample_sentence, symbols_to_ids

    grammar = load_grammar("cfg_demo")
    table = cfg_token_table(grammar)
    sentences = [symbols_to_ids(sample_sentence(grammar, random.Random(f"ref/{k}")).symbols) for k in range(12)]
    packed = PackedLayout.from_sentences(sentences, table, window=50)
    assert _digest(packed.tokens, packed.sentence_index, packed.token_index, packed.lengths) == "3199e2d9ad7bdc6f"
    rows = SentenceLayout.from_sentences(sentences, table, max_len=30)
    assert _digest(rows.tokens, rows.sentence_index, rows.token_index, rows.lengths) == "e111d9ad7e5aa05d"
    data = sample_probe_data(grammar, 16, 0, 40, table)
    labels = [data.ancestor[k] for k in sorted(data.ancestor)] + [data.end[k] for k in sorted(data.end)]
    assert _digest(data.layout.tokens, data.tokens, data.mask, data.end_level, *labels) == "fc258f243a42ae5e"
    at_end, classes, balanced = data.target_labels("ancestor_at_end", 2)
    assert torch.equal(at_end[data.end[2] == 1], data.ancestor[2][data.end[2] == 1]) and not balanced
    assert bool((at_end[data.end[2] != 1] == -100).all()) and classes == grammar.sizes[1]
    with pytest.raises(ValueError, match="unknown probe target"):
        data.target_labels("parent", 2)
    from physlm.probing import cfg_recipe

    assert cfg_recipe.sample_probe_data is sample_probe_data  # the recipe module still exports the data names


def test_attention_windows_are_unchanged():
    from physlm.analysis.layout import fresh_sentences, window_batches
    from physlm.tasks.cfg import cfg_token_table, load_grammar

    grammar = load_grammar("cfg_demo")
    batches = list(window_batches(fresh_sentences(grammar, 0), cfg_token_table(grammar), 5, 128, 2))
    digests = [_digest(w.tokens, w.sentence_id, w.is_terminal, w.end_level, w.ancestor_index) for w in batches]
    assert digests == ["2d2a7eb1207ed121", "43ec10935a8796e7", "228e52cbe01ce093"]
