"""Tasks by name for the trainer and the CLI: ``build_task("cfg", grammar="cfg3b")``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from physlm.tasks.base import Task
from physlm.tasks.bio import BioConfig, BioTask
from physlm.tasks.cfg.tokens import CFGTask, CFGTaskConfig
from physlm.tasks.igsm import IGSMConfig, IGSMTask
from physlm.tasks.igsm import preset as igsm_preset

TaskFactory = Callable[..., Task]

_REGISTRY: dict[str, TaskFactory] = {}


def register_task(name: str, factory: TaskFactory, replace: bool = False) -> None:
    """Make ``build_task(name, **options)`` call ``factory(**options)``."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"task {name!r} is already registered")
    _REGISTRY[name] = factory


def available_tasks() -> list[str]:
    """Names ``build_task`` accepts."""
    return sorted(_REGISTRY)


def build_task(task_name: str, **options: Any) -> Task:
    """The named task built with ``options`` (fields of its config class, plus task-specific shortcuts)."""
    if task_name not in _REGISTRY:
        raise ValueError(f"unknown task {task_name!r}; choose one of {', '.join(available_tasks())}")
    task = _REGISTRY[task_name](**options)
    if not isinstance(task, Task):
        raise TypeError(f"task factory for {task_name!r} returned {type(task).__name__}, which is not a Task")
    return task


def task_record(task_name: str, task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """What checkpoints and run directories store about a task: its name, build options and config."""
    config = getattr(task, "config", None)
    return {
        "name": task_name,
        "options": dict(options),
        "config": config.to_dict() if hasattr(config, "to_dict") else None,
    }


def _make_config(
    cls: type, options: dict[str, Any], task_name: str, base: Any = None, extra: tuple[str, ...] = ()
) -> Any:
    # extra: options the factory consumed itself; named in the error so the list of options is complete
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"task {task_name!r} has no option(s) {unknown}; its options are {sorted(names | set(extra))}"
        )
    return base.replace(**options) if base is not None else cls(**options)


def _build_cfg(**options: Any) -> Task:
    """A CFG task; options are CFGTaskConfig fields (``grammar``, ``corrupt_rate``, ``flip_fraction``)."""
    if options.get("grammar") is None:
        options.pop("grammar", None)
    return CFGTask(_make_config(CFGTaskConfig, options, "cfg"))


def _build_igsm(**options: Any) -> Task:
    """An iGSM task: ``preset`` (med/hard/small/tiny), ``max_tokens`` (drop longer problems), IGSMConfig
    fields."""
    name = options.pop("preset", None)
    max_tokens = options.pop("max_tokens", None)
    base = igsm_preset(name) if name is not None else None
    return IGSMTask(_make_config(IGSMConfig, options, "igsm", base), max_tokens=max_tokens)


def _build_bio(**options: Any) -> Task:
    """A bio task: BioConfig fields (``n_people``, ``augmentation``, ``n_celebrities``, ...) and ``qa_ratio``
    (share of QA documents of P_train people, Part 3.1's mixed training; 0 = BIO pretraining only)."""
    qa_ratio = options.pop("qa_ratio", 0.0)
    # --task-option qa_ratio=1 arrives as the int 1 (JSON), so accept any real number here
    if isinstance(qa_ratio, bool) or not isinstance(qa_ratio, (int, float)):
        raise ValueError(f"task 'bio' option qa_ratio must be a number in [0, 1), got {qa_ratio!r}")
    return BioTask(_make_config(BioConfig, options, "bio", extra=("qa_ratio",)), qa_ratio=float(qa_ratio))


register_task("bio", _build_bio)
register_task("cfg", _build_cfg)
register_task("igsm", _build_igsm)
