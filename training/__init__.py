"""Models built and trained natively as TransformerLens HookedTransformers."""

from training.model import build_model, set_fast_path
from training.model_config import MODEL_PRESETS, ModelConfig, model_preset

__all__ = ["MODEL_PRESETS", "ModelConfig", "build_model", "model_preset", "set_fast_path"]

# Training, checkpoints and loading (training.trainer, training.checkpoint, training.load).
from training.checkpoint import CheckpointError  # noqa: E402
from training.load import LoadedModel, load_model  # noqa: E402
from training.tasks_registry import build_task  # noqa: E402
from training.train_config import TrainConfig  # noqa: E402
from training.trainer import Trainer, TrainSummary  # noqa: E402

__all__ += [
    "CheckpointError", "LoadedModel", "TrainConfig", "TrainSummary", "Trainer", "build_task", "load_model"
]
