"""The HF ``datasets`` export of biographies and QA, the trainer reading it, and the "bio" task registration."""

import json
import random

import pytest

from physlm.tasks.bio import ATTRIBUTES, BioConfig, BioTask, bio_token_table, build_world, tokenize
from physlm.tasks.bio.export import (
    TEST_SEED,
    bio_dataset,
    bio_features,
    qa_dataset,
    qa_features,
    save_bio_datasets,
    world_entries,
)
from physlm.tasks.bio.qa import qa_items
from physlm.training.tasks_registry import available_tasks, build_task

CONFIG = BioConfig(n_people=12, augmentation="multi2+permute", n_celebrities=3,
                   celebrity_augmentation="multiinf+permute", seed=4)


def test_features_are_exactly_as_declared():
    from datasets import Features, List, Value

    assert bio_features() == Features(
        {
            "person_id": Value("int32"), "group": Value("string"), "entry": Value("int32"), "text": Value("string"),
            "input_ids": List(Value("int32")), "attribute": List(Value("int8")), "in_name": List(Value("bool")),
            "sentence": List(Value("int8")), "value_start": List(Value("int32"), length=6),
            "value_end": List(Value("int32"), length=6), "probe_positions": List(Value("int32"), length=6),
        }
    )
    assert qa_features() == Features(
        {
            "person_id": Value("int32"), "attribute": Value("string"), "split": Value("string"),
            "text": Value("string"), "input_ids": List(Value("int32")), "answer_start": Value("int32"),
            "answer_end": Value("int32"),
        }
    )


def test_bio_rows_are_the_worlds_entries():
    world = build_world(CONFIG)
    ds = bio_dataset(world, entries_per_person=3)
    assert ds.features == bio_features()
    # main people: their 2 fixed entries; multi∞ celebrities: 3 fresh wordings each
    assert len(ds) == 12 * 2 + 3 * 3
    assert ds["person_id"] == [p for p in range(12) for _ in range(2)] + [p for p in range(12, 15) for _ in range(3)]
    assert set(ds["group"][:24]) == {"main"} and set(ds["group"][24:]) == {"celebrity"}
    table = bio_token_table()
    for row in ds:
        person = world.people[row["person_id"]]
        tokens = table.decode(row["input_ids"])
        assert tokenize(row["text"]) == tokens
        assert len(row["attribute"]) == len(row["in_name"]) == len(row["sentence"]) == len(tokens)
        for a, attr in enumerate(ATTRIBUTES):
            s, t = row["value_start"][a], row["value_end"][a]
            assert tokens[s:t] == tokenize(person.value(attr)) and set(row["attribute"][s:t]) == {a}
            assert row["probe_positions"][a] == s - 1
        if row["person_id"] < 12:
            assert row["text"] == world.entry(row["person_id"], row["entry"]).text
    # a config gives the same rows as its world; the same arguments, the same bytes
    again = bio_dataset(CONFIG, entries_per_person=3)
    assert again.data.equals(ds.data)


def test_redraws_are_new_wordings_of_the_same_facts():
    world = build_world(CONFIG)
    fixed = bio_dataset(world, entries_per_person=1)
    fresh = bio_dataset(world, seed=TEST_SEED)
    assert len(fresh) == 12 * 2 + 3  # as many as the fixed entries, one per multi∞ person
    assert not set(fresh["text"][:24]) & set(fixed["text"][:24])
    assert [tuple(r) for r in fresh["value_start"]] != [tuple(r) for r in fixed["value_start"][:27]]
    for row in fresh:
        person = world.people[row["person_id"]]
        tokens = bio_token_table().decode(row["input_ids"])
        assert all(
            tokens[row["value_start"][a] : row["value_end"][a]] == tokenize(person.value(attr))
            for a, attr in enumerate(ATTRIBUTES)
        )
    assert bio_dataset(world, seed=1)["text"] != fresh["text"]
    assert bio_dataset(world, entries_per_person=2, seed=TEST_SEED)["text"][:2] == fresh["text"][:2]


def test_bio_dataset_errors():
    with pytest.raises(ValueError, match="multiinf\\+permute writes a fresh entry .* pass entries_per_person"):
        bio_dataset(CONFIG)
    with pytest.raises(ValueError, match="entries_per_person only applies to re-drawn wordings"):
        list(world_entries(build_world(BioConfig(n_people=3)), entries_per_person=2))
    with pytest.raises(ValueError, match="entries_per_person must be >= 1"):
        bio_dataset(CONFIG, entries_per_person=0)
    with pytest.raises(TypeError, match="BioWorld"):  # ours, or the runtime type checker's in tests
        bio_dataset({"n_people": 3})
    with pytest.raises(ValueError, match="split must be"):
        qa_dataset(CONFIG, split="val")


def test_qa_rows():
    world = build_world(BioConfig(n_people=10, seed=2))
    ds = qa_dataset(world)
    assert ds.features == qa_features() and len(ds) == 60
    assert ds["split"] == ["train"] * 30 + ["test"] * 30
    assert sorted(set(ds["person_id"][:30])) == list(world.train_people)
    table = bio_token_table()
    for row in ds:
        item = qa_items(world.people[row["person_id"]])[ATTRIBUTES.index(row["attribute"])]
        assert table.decode(row["input_ids"]) == list(item.tokens) == tokenize(row["text"])
        assert (row["answer_start"], row["answer_end"]) == (item.answer_start, item.answer_end)
    assert qa_dataset(world, "test")["person_id"] == ds["person_id"][30:]


def test_saved_dataset_dicts_round_trip_and_feed_the_trainer(tmp_path):
    import datasets

    from physlm.training.data import DatasetDocuments

    config = BioConfig(n_people=8, augmentation="single+permute2", seed=1)
    out = save_bio_datasets(config, tmp_path / "export")
    assert BioConfig.from_json((out / "bio_config.json").read_text()) == config
    bio = datasets.load_from_disk(str(out / "bio"))
    qa = datasets.load_from_disk(str(out / "qa"))
    assert set(bio) == {"train", "test"} and set(qa) == {"train", "test"}
    assert all(split.features == bio_features() for split in bio.values())
    assert all(split.features == qa_features() for split in qa.values())
    assert bio["train"].data.equals(bio_dataset(config).data)
    assert len(bio["train"]) == 16 and len(bio["test"]) == 8  # one re-drawn wording per person
    assert not set(bio["test"]["text"]) & set(bio["train"]["text"])
    assert set(qa["train"]["split"]) == {"train"} and set(qa["test"]["split"]) == {"test"}
    assert json.loads(bio["train"].info.description)["bio_config"] == config.to_dict()

    table = bio_token_table()
    source = DatasetDocuments(out / "bio", table, seed=0)
    epoch = sorted(tuple(source.document("train", k)) for k in range(16))  # one epoch = every entry once
    assert epoch == sorted(tuple(ids) for ids in bio["train"]["input_ids"])
    assert tuple(source.document("eval", 0)) in {tuple(ids) for ids in bio["test"]["input_ids"]}
    qa_source = DatasetDocuments(out / "qa", table, seed=0)
    assert tuple(qa_source.document("train", 0)) in {tuple(ids) for ids in qa["train"]["input_ids"]}


def test_physlm_train_reads_the_export(tmp_path):
    """One tiny training step of ``physlm train --task bio --dataset <export>/bio``."""
    from physlm.experiments.cli import main
    from physlm.training.load import load_model

    save_bio_datasets(BioConfig(n_people=4, seed=0), tmp_path / "export")
    run = tmp_path / "run"
    assert main([
        "train", "--out", str(run), "--task", "bio", "--task-option", "n_people=4",
        "--dataset", str(tmp_path / "export" / "bio"), "--preset", "gpt_rot-tiny",
        "--model-option", "n_layers=1", "d_model=16", "n_heads=2", "--batch-size", "2", "--seq-len", "32",
        "--eval-batches", "1", "--steps", "1", "--device", "cpu",
    ]) == 0
    model = load_model(run)
    assert model.step == 1 and model.token_table == bio_token_table()


def test_bio_task_registered():
    assert "bio" in available_tasks()
    task = build_task("bio", n_people=100, augmentation="multi5+permute")
    assert isinstance(task, BioTask) and task.config == BioConfig(n_people=100, augmentation="multi5+permute")
    assert task.qa_ratio == 0.0 and len(task.world.people) == 100 and task.world.n_entries(0) == 5
    ids = task.sample_document(random.Random(0))
    assert ids and max(ids) < task.token_table.d_vocab
    mixed = build_task("bio", n_people=10, qa_ratio=0.5, n_celebrities=2)
    assert mixed.qa_ratio == 0.5 and mixed.world.train_people == (10, 11)
    with pytest.raises(ValueError, match=r"task 'bio' has no option\(s\) \['n_peple'\]; its options are \["
                       r"'augmentation', 'celebrity_augmentation', 'n_celebrities', 'n_people', 'qa_ratio', "):
        build_task("bio", n_peple=10)
    with pytest.raises(ValueError, match="unknown augmentation 'multi5\\+shuffle'"):
        build_task("bio", augmentation="multi5+shuffle")
    with pytest.raises(ValueError, match=r"qa_ratio must be in \[0, 1\), got 2"):
        build_task("bio", qa_ratio=2)  # an int, as --task-option qa_ratio=2 gives
    with pytest.raises(ValueError, match="qa_ratio must be a number in"):
        build_task("bio", qa_ratio="half")
    assert build_task("bio", n_people=4, qa_ratio=0).qa_ratio == 0.0
