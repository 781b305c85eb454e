"""What our recipes share: strict configs, validation by the task's metric, keep-best and early
stopping, atomic checkpoints, exact resume, metric logs and plots.

The recipes themselves (``recipes/`` in the repository, installed as ``torchtune_ext.recipes``)
stay single readable files derived from torchtune 0.6.1's; see ``recipes/README.md``.
"""

from torchtune_ext.training.atomic import (
    atomic_save,
    atomic_torch_save,
    atomic_write_text,
    publish_dir,
    recover_dir,
    staging_dir,
)
from torchtune_ext.training.checkpoints import WeightsWriter
from torchtune_ext.training.config_check import (
    REQUIRED,
    Component,
    ConfigError,
    Key,
    Section,
    check_config,
    strict_config,
)
from torchtune_ext.training.keep_best import BestTracker
from torchtune_ext.training.keys import COMMON_KEYS
from torchtune_ext.training.resume import (
    RESUME_STATE,
    GracefulStop,
    check_resumable,
    clear_previous_run,
    get_rng_state,
    load_resume_state,
    save_resume_state,
    set_rng_state,
    trainable_state_dict,
)
from torchtune_ext.training.run_log import MetricsLog, memory_stats, plot_metrics
from torchtune_ext.training.validation import (
    TaskValidation,
    ValidationResult,
    ValidationRunner,
    preserved_rng,
    setup_validation,
)

__all__ = [
    "BestTracker",
    "COMMON_KEYS",
    "Component",
    "ConfigError",
    "GracefulStop",
    "Key",
    "MetricsLog",
    "REQUIRED",
    "RESUME_STATE",
    "Section",
    "TaskValidation",
    "ValidationResult",
    "ValidationRunner",
    "WeightsWriter",
    "atomic_save",
    "atomic_torch_save",
    "atomic_write_text",
    "check_config",
    "check_resumable",
    "clear_previous_run",
    "get_rng_state",
    "load_resume_state",
    "memory_stats",
    "plot_metrics",
    "preserved_rng",
    "publish_dir",
    "recover_dir",
    "save_resume_state",
    "set_rng_state",
    "setup_validation",
    "staging_dir",
    "strict_config",
    "trainable_state_dict",
]
