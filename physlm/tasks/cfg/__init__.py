"""Part 1's synthetic context-free grammars: grammars, sampling with exact per-token labels, data sets.

``import physlm.tasks.cfg`` is light (numpy only); ``datasets`` and ``torch`` load on first use.
"""

from __future__ import annotations

from physlm.tasks.cfg.corrupt import corrupt_symbols, maybe_corrupt
from physlm.tasks.cfg.dataset import (
    CFGDataConfig,
    cfg_features,
    corrupt_dataset,
    export_cfg_dataset,
    generate_cfg_dataset,
    load_cfg_dataset,
)
from physlm.tasks.cfg.dp import count_parses, is_valid, log_prob, next_token_distribution, parse_tree
from physlm.tasks.cfg.grammar import Grammar, GrammarError
from physlm.tasks.cfg.grammar_io import grammar_to_text, official_ids, parse_grammar_text
from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR, list_presets, load_grammar, save_grammar
from physlm.tasks.cfg.random_grammar import random_grammar
from physlm.tasks.cfg.sample import CFGSample, ParseNode, official_label_rows, sample_sentence, sample_symbols
from physlm.tasks.cfg.tokens import CFGTask, CFGTaskConfig, cfg_token_table, ids_to_symbols, symbols_to_ids

__all__ = [
    "DEFAULT_GRAMMAR",
    "CFGDataConfig",
    "CFGSample",
    "CFGTask",
    "CFGTaskConfig",
    "Grammar",
    "GrammarError",
    "ParseNode",
    "cfg_features",
    "cfg_token_table",
    "corrupt_dataset",
    "corrupt_symbols",
    "count_parses",
    "export_cfg_dataset",
    "generate_cfg_dataset",
    "grammar_to_text",
    "ids_to_symbols",
    "is_valid",
    "list_presets",
    "load_cfg_dataset",
    "load_grammar",
    "log_prob",
    "maybe_corrupt",
    "next_token_distribution",
    "official_ids",
    "official_label_rows",
    "parse_grammar_text",
    "parse_tree",
    "random_grammar",
    "sample_sentence",
    "sample_symbols",
    "save_grammar",
    "symbols_to_ids",
]
