"""Biographies and QA pairs with their per-token labels as HF ``datasets`` data sets with explicit Features.

:func:`bio_dataset` writes one row per biography entry, :func:`qa_dataset` one row per QA pair, and
:func:`save_bio_datasets` saves both as ``DatasetDict`` s with ``train`` and ``test`` splits, so the trainer's
``dataset=`` option reads either directory (``DatasetDocuments`` takes ``train`` for training and ``test`` for
the evaluation loss). Rows depend only on the config and the arguments: entries come from the world's fixed
wordings, and the re-drawn wordings of each person from its own :func:`export_rng` stream, which no other
part of physlm uses. Rows are in person order; the trainer reads them in a seeded permutation per epoch, so
a person's entries are spread over windows as :meth:`BioWorld.sample_entry` spreads them. ``datasets`` is
imported only inside these functions.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from physlm.tasks.bio.config import BioConfig, BioWorld, build_world
from physlm.tasks.bio.pools import ATTRIBUTES
from physlm.tasks.bio.qa import QAItem, qa_items
from physlm.tasks.bio.render import RenderedEntry, render_entry, sample_plan
from physlm.tasks.bio.tokenizer import bio_token_table, detokenize

if TYPE_CHECKING:
    import datasets  # imported on first use: it takes seconds

_CHUNK = 2048
"""rows per in-memory Arrow chunk: bounds the Python lists alive at once for large worlds"""
TEST_SEED = 0
"""``seed`` of the re-drawn wordings in the ``test`` split written by :func:`save_bio_datasets`"""


def bio_features() -> datasets.Features:
    """The explicit Features of a biography data set (one row per entry; n = its number of tokens)."""
    from datasets import Features, List, Value

    n_attr = len(ATTRIBUTES)
    return Features(
        {
            "person_id": Value("int32"),
            "group": Value("string"),  # main | celebrity
            "entry": Value("int32"),  # index of the entry among the person's rows
            "text": Value("string"),
            "input_ids": List(Value("int32")),  # (n,) bio token ids, without BOS/EOS
            "attribute": List(Value("int8")),  # (n,) ATTRIBUTES index of the value a token belongs to, or -1
            "in_name": List(Value("bool")),  # (n,) part of an occurrence of the full name
            "sentence": List(Value("int8")),  # (n,) sentence index in written order
            "value_start": List(Value("int32"), length=n_attr),  # first token of each value, ATTRIBUTES order
            "value_end": List(Value("int32"), length=n_attr),  # one past its last token
            "probe_positions": List(Value("int32"), length=n_attr),  # value_start - 1: the P-probe tokens
        }
    )


def qa_features() -> datasets.Features:
    """The explicit Features of a QA data set (one row per person and attribute)."""
    from datasets import Features, List, Value

    return Features(
        {
            "person_id": Value("int32"),
            "attribute": Value("string"),  # an ATTRIBUTES name
            "split": Value("string"),  # train (P_train) | test (P_test)
            "text": Value("string"),  # "What is the birth city of ...? Answer: Princeton, NJ."
            "input_ids": List(Value("int32")),  # question, Answer :, value, "." (without BOS/EOS)
            "answer_start": Value("int32"),  # first value token; input_ids[:answer_start] is the prompt
            "answer_end": Value("int32"),  # one past the last value token
        }
    )


def entry_record(world: BioWorld, entry: RenderedEntry, k: int) -> dict[str, Any]:
    """One rendered entry (the ``k``-th row of its person) as a row of :func:`bio_features`."""
    return {
        "person_id": entry.person_id,
        "group": world.group(entry.person_id),
        "entry": k,
        "text": entry.text,
        "input_ids": bio_token_table().encode(entry.tokens),
        "attribute": list(entry.attribute),
        "in_name": list(entry.in_name),
        "sentence": list(entry.sentence),
        "value_start": list(entry.value_start),
        "value_end": list(entry.value_end),
        "probe_positions": list(entry.probe_positions),
    }


def qa_record(item: QAItem, split: str) -> dict[str, Any]:
    """One QA pair as a row of :func:`qa_features`."""
    return {
        "person_id": item.person_id,
        "attribute": item.attribute,
        "split": split,
        "text": detokenize(item.tokens),
        "input_ids": bio_token_table().encode(item.tokens),
        "answer_start": item.answer_start,
        "answer_end": item.answer_end,
    }


def _world(source: BioWorld | BioConfig) -> BioWorld:
    if isinstance(source, BioWorld):
        return source
    if isinstance(source, BioConfig):
        return build_world(source)
    raise TypeError(f"expected a BioWorld or BioConfig, got {type(source).__name__}")


def export_rng(world: BioWorld, seed: int | str, person_id: int) -> random.Random:
    """The generator of the re-drawn wordings of one person (its own stream, so rows do not depend on
    which other people are exported)."""
    return random.Random(f"physlm/bio/{world.config.seed}/export/{seed}/{person_id}")


def world_entries(
    world: BioWorld, entries_per_person: int | None = None, seed: int | None = None
) -> Iterator[tuple[RenderedEntry, int]]:
    """``(entry, k)`` for every person in id order; see :func:`bio_dataset` for the two modes."""
    if entries_per_person is not None and entries_per_person < 1:
        raise ValueError(f"entries_per_person must be >= 1, got {entries_per_person}")
    has_fresh = any(plans is None for plans in world.plans)
    if seed is None and entries_per_person is not None and not has_fresh:
        raise ValueError(
            "entries_per_person only applies to re-drawn wordings: pass seed=..., or leave it out to export "
            "every person's fixed entries"
        )
    if seed is None and entries_per_person is None and has_fresh:
        names = sorted({a.name for a in world.augmentations if a.entries is None})
        raise ValueError(
            f"augmentation {', '.join(names)} writes a fresh entry at every exposure, so its people have no "
            "fixed entries: pass entries_per_person (how many wordings to write per person)"
        )
    for person_id, person in enumerate(world.people):
        plans = world.plans[person_id]
        if seed is None and plans is not None:
            for k, plan in enumerate(plans):
                yield render_entry(person, plan), k
            continue
        # A re-draw, or a multi∞ person: fresh wordings under the person's augmentation.
        rng = export_rng(world, "fixed" if seed is None else seed, person_id)
        count = entries_per_person or (1 if plans is None else len(plans))
        augmentation = world.augmentation_of(person_id)
        for k in range(count):
            yield render_entry(person, sample_plan(rng, augmentation)), k


def _dataset(rows: Iterator[dict[str, Any]], features: datasets.Features, description: str) -> datasets.Dataset:
    """Rows as an in-memory Arrow data set, built in chunks so that only one chunk is ever Python lists."""
    import datasets

    info = datasets.DatasetInfo(description=description, features=features)
    parts, chunk = [], []
    for row in rows:
        chunk.append(row)
        if len(chunk) == _CHUNK:
            parts.append(datasets.Dataset.from_list(chunk, features=features, info=info))
            chunk = []
    if chunk or not parts:
        parts.append(datasets.Dataset.from_list(chunk, features=features, info=info))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts, info=info)


def _description(world: BioWorld, **extra: Any) -> str:
    return json.dumps({"bio_config": world.config.to_dict(), **extra})


def bio_dataset(
    source: BioWorld | BioConfig, entries_per_person: int | None = None, seed: int | None = None
) -> datasets.Dataset:
    """Every biography entry of a world, with labels (columns: :func:`bio_features`), people in id order.

    ``seed=None``: each person's fixed entries, exactly what :class:`~physlm.tasks.bio.task.BioTask` trains
    on (rows of a person are its plans in order, ``entry`` = plan index). People written afresh at every
    exposure (multi∞) have no fixed entries; they get ``entries_per_person`` wordings (required then).
    ``seed=S``: a re-draw: every person gets ``entries_per_person`` (default: as many as it has fixed entries,
    1 for multi∞) new wordings under its augmentation, from :func:`export_rng`. A re-drawn wording draws its
    own templates, so for ``single+permuteP`` it is a paraphrase, not one more shuffle of the fixed wording.
    """
    world = _world(source)
    rows = (entry_record(world, e, k) for e, k in world_entries(world, entries_per_person, seed))
    return _dataset(rows, bio_features(), _description(world, entries_per_person=entries_per_person, seed=seed))


def qa_dataset(source: BioWorld | BioConfig, split: str | None = None) -> datasets.Dataset:
    """The six QA pairs of every P_train (``split="train"``) and/or P_test (``"test"``) person; ``None``
    gives both, train people first, each in id order (columns: :func:`qa_features`)."""
    world = _world(source)
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None (both), got {split!r}")
    groups = [("train", world.train_people), ("test", world.test_people)]

    def rows() -> Iterator[dict[str, Any]]:
        for name, ids in groups:
            if split in (None, name):
                for person_id in ids:
                    for item in qa_items(world.people[person_id]):
                        yield qa_record(item, name)

    return _dataset(rows(), qa_features(), _description(world, split=split))


def save_bio_datasets(
    config: BioConfig,
    out_dir: str | Path,
    entries_per_person: int | None = None,
    test_entries_per_person: int = 1,
) -> Path:
    """Write the world of ``config`` as two ``DatasetDict`` directories under ``out_dir`` and return it.

    - ``out_dir/bio``: ``train`` = every biography entry (:func:`bio_dataset` with ``seed=None``;
      ``entries_per_person`` is needed for multi∞ people only); ``test`` = a re-draw of
      ``test_entries_per_person`` new wordings per person (``seed=TEST_SEED``). The facts are the same, the
      wording is new, so the held-out loss of a run trained with ``dataset=out_dir/bio`` measures how well
      the facts were stored rather than how well the exact training sentences were memorised.
    - ``out_dir/qa``: ``train`` = the QA pairs of P_train, ``test`` = those of P_test (Part 3.1's QA
      finetune and its out-of-distribution evaluation).
    """
    import datasets

    out = Path(out_dir)
    world = build_world(config)
    bio = datasets.DatasetDict(
        {
            "train": bio_dataset(world, entries_per_person=entries_per_person),
            "test": bio_dataset(world, entries_per_person=test_entries_per_person, seed=TEST_SEED),
        }
    )
    qa = datasets.DatasetDict({"train": qa_dataset(world, "train"), "test": qa_dataset(world, "test")})
    out.mkdir(parents=True, exist_ok=True)
    bio.save_to_disk(str(out / "bio"))
    qa.save_to_disk(str(out / "qa"))
    (out / "bio_config.json").write_text(config.to_json())
    return out
