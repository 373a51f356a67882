"""The search: study files, samplers and pruners, the launcher and the command line."""

from hpo.search._launcher import LaunchResult, LaunchState, launch
from hpo.search._loader import load_spec, parse_spec
from hpo.search._samplers import build_pruner, build_sampler, grid_search_space
from hpo.search._space import space_distributions, suggest_params
from hpo.search._spec import (
    CategoricalParam,
    FloatParam,
    IntParam,
    ParamSpec,
    PrunerSpec,
    SamplerSpec,
    StudySpec,
    render_study_name,
)

__all__ = [
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "LaunchResult",
    "LaunchState",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "StudySpec",
    "build_pruner",
    "build_sampler",
    "grid_search_space",
    "launch",
    "load_spec",
    "parse_spec",
    "render_study_name",
    "space_distributions",
    "suggest_params",
]
