"""The one typed configuration (params.yaml) and the one list of runs.

* :func:`load_config` -> :class:`Config` (sections :class:`DataSection`,
  :class:`KdecaySection`, :class:`TrainOptions`, :class:`SweepSection`, :class:`SmokeSection`,
  one :class:`RowRecipe` per table row), validated once when loaded;
* :meth:`Config.runs` -> every :class:`Run` (dataset, row, method, k, seed, DVC stage, folder);
* :meth:`Config.spec` -> the :class:`RunSpec` of a run; :func:`build_schedule` its LR schedule.
"""

from kdecay.checks import ConfigError
from kdecay.config.claims import ClaimCell, ClaimsSection, StatsSection
from kdecay.config.loader import Config, load_config
from kdecay.config.recipes import Optimizer, RowRecipe
from kdecay.config.runs import (
    METHODS,
    TRAINING_STAGE,
    Run,
    RunSpec,
    build_schedule,
    method_dir,
    run_folder,
    schedule_of,
)
from kdecay.config.sections import (
    DEVICES,
    KDECAY_SCHEDULES,
    PRECISIONS,
    STEP_FORMS,
    DataSection,
    DataSource,
    KdecaySection,
    SmokeSection,
    SweepSection,
    TrainOptions,
)

__all__ = [
    "DEVICES",
    "KDECAY_SCHEDULES",
    "METHODS",
    "PRECISIONS",
    "STEP_FORMS",
    "TRAINING_STAGE",
    "ClaimCell",
    "ClaimsSection",
    "Config",
    "ConfigError",
    "DataSection",
    "DataSource",
    "KdecaySection",
    "Optimizer",
    "RowRecipe",
    "Run",
    "RunSpec",
    "SmokeSection",
    "StatsSection",
    "SweepSection",
    "TrainOptions",
    "build_schedule",
    "load_config",
    "method_dir",
    "run_folder",
    "schedule_of",
]
