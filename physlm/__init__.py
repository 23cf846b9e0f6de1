"""physlm core: configs, run directories and provenance shared by every stage.

The stages themselves are the top-level packages ``tasks``, ``training``, ``probing``,
``analysis`` and ``experiments``.
"""

__version__ = "0.1.0"

from physlm.config import Config, config_from_dict, load_config  # noqa: E402
from physlm.rundir import RunDir, RunDirExistsError  # noqa: E402

__all__ = ["Config", "config_from_dict", "load_config", "RunDir", "RunDirExistsError", "__version__"]
