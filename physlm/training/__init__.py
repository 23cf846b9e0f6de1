"""Models built and trained natively as TransformerLens HookedTransformers."""

from physlm.training.model import build_model, set_fast_path
from physlm.training.model_config import MODEL_PRESETS, ModelConfig, model_preset

__all__ = ["MODEL_PRESETS", "ModelConfig", "build_model", "model_preset", "set_fast_path"]

# Training, checkpoints and loading (physlm.training.trainer, physlm.training.checkpoint, physlm.training.load).
from physlm.training.checkpoint import CheckpointError  # noqa: E402
from physlm.training.load import LoadedModel, load_model  # noqa: E402
from physlm.training.tasks_registry import build_task  # noqa: E402
from physlm.training.train_config import TrainConfig  # noqa: E402
from physlm.training.trainer import Trainer, TrainSummary  # noqa: E402

__all__ += [
    "CheckpointError", "LoadedModel", "TrainConfig", "TrainSummary", "Trainer", "build_task", "load_model"
]
