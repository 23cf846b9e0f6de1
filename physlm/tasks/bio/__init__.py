"""Synthetic biographies (Parts 3.1-3.3): people with fixed facts, bioS entries under every augmentation,
QA pairs, and exact per-token labels."""

from physlm.tasks.bio.augmentation import PAPER_AUGMENTATIONS, Augmentation, parse_augmentation
from physlm.tasks.bio.config import BioConfig, BioWorld, build_world
from physlm.tasks.bio.people import Person, n_classes, sample_people
from physlm.tasks.bio.pools import ATTRIBUTES, load_pools
from physlm.tasks.bio.qa import QAItem, qa_item, qa_items
from physlm.tasks.bio.render import EntryPlan, RenderedEntry, render_entry
from physlm.tasks.bio.task import BioTask
from physlm.tasks.bio.tokenizer import bio_token_table, detokenize, encode_text, tokenize

__all__ = [
    "ATTRIBUTES",
    "PAPER_AUGMENTATIONS",
    "Augmentation",
    "BioConfig",
    "BioTask",
    "BioWorld",
    "EntryPlan",
    "Person",
    "QAItem",
    "RenderedEntry",
    "bio_token_table",
    "build_world",
    "detokenize",
    "encode_text",
    "load_pools",
    "n_classes",
    "parse_augmentation",
    "qa_item",
    "qa_items",
    "render_entry",
    "sample_people",
    "tokenize",
]
