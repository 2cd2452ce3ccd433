"""Enumerations of the wire models, built from core's own registries and lists.

Each name a study may use (algorithms, early-stopping rules, cross-validation
types, ...) is read from core when the server starts, so registering a new
algorithm or rule in core shows up in the OpenAPI document without touching
this module. Fields typed with these enums are validated leniently (``LAX``):
a JSON string is accepted when it is one of the values, and the error names
them all (``parameters[0].type: Input should be 'float', 'int', ...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from ...core.algorithms import algorithm_names
from ...core.objective import CV_TYPES, PREPROCESSING, SKLEARN_DATASETS
from ...core.space import ParamType, Scale
from ...core.trials import Goal, MetricRole, StudyState, TrialState

__all__ = [
    "LAX",
    "AlgorithmName",
    "CvType",
    "Goal",
    "IfExists",
    "MetricRole",
    "ParamType",
    "Preprocessing",
    "Scale",
    "SklearnDataset",
    "StudyState",
    "TrialState",
    "string_enum",
]

#: Validate an enum field from its plain string value even inside strict models.
LAX: Any = Field(strict=False)


def string_enum(name: str, values: Iterable[str], doc: str) -> type[StrEnum]:
    """A string enum named ``name`` (its OpenAPI component name) with these values."""
    members = {value.upper(): value for value in values}
    enum_class = StrEnum(name, members)  # type: ignore[misc]
    enum_class.__doc__ = doc
    return enum_class


class IfExists(StrEnum):
    """What ``POST /studies`` does when a study of the same name exists."""

    RETURN = "return"


if TYPE_CHECKING:  # the values are only known at run time; type checkers see strings
    AlgorithmName = str
    CvType = str
    SklearnDataset = str
    Preprocessing = str
else:
    AlgorithmName = string_enum(
        "AlgorithmName", algorithm_names(), "A registered suggestion algorithm."
    )
    CvType = string_enum("CvType", CV_TYPES, "A cross-validation splitter.")
    SklearnDataset = string_enum(
        "SklearnDataset", SKLEARN_DATASETS, "A dataset bundled with scikit-learn."
    )
    Preprocessing = string_enum(
        "Preprocessing", PREPROCESSING, "A preprocessing step applied before the estimator."
    )

#: Annotated forms for fields: the enum, validated from its string value.
ParamTypeField = Annotated[ParamType, LAX]
ScaleField = Annotated[Scale, LAX]
GoalField = Annotated[Goal, LAX]
MetricRoleField = Annotated[MetricRole, LAX]
StudyStateField = Annotated[StudyState, LAX]
TrialStateField = Annotated[TrialState, LAX]
AlgorithmField = Annotated[AlgorithmName, LAX]
CvTypeField = Annotated[CvType, LAX]
SklearnDatasetField = Annotated[SklearnDataset, LAX]
PreprocessingField = Annotated[Preprocessing, LAX]
