"""Typed parts of a study spec: parameters, metrics, fidelity, objective, early stopping.

The same models describe the ``POST /studies`` body and the spec echoed in a
Study, so a generated client gets one class per shape. They type the shape;
core (``core/study.py``, ``core/objective.py``, ``core/stopping``) still
checks every rule (bounds, allowed estimators, rule options) and names the
field. Optional fields that core leaves out of the normalized spec are left
out of responses too (``absent``).

The objective and early-stopping objects are tagged unions (``kind`` and
``rule``). :func:`tagged` checks the tag first, so an unknown one is reported
on the tag itself (``objective.kind: Input should be 'sklearn' or 'python'``)
and errors inside the chosen model carry plain paths (``objective.cv.n_splits``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from ...core.space import MAX_CHOICES
from ...core.space import MAX_NAME_LENGTH as MAX_PARAMETER_NAME
from ...core.stopping import get_rule, rule_names
from ...core.study import MAX_LEASE_SECONDS, MAX_RETRIES_LIMIT, MAX_STUDY_ID, MAX_WARM_START
from ...core.study import MAX_NAME_LENGTH as MAX_STUDY_NAME
from ...core.trials import Goal, MetricRole
from .common import NOT_BLANK, TRIMMED, JsonInt, WireModel, declared
from .enums import (
    CvTypeField,
    GoalField,
    MetricRoleField,
    ParamTypeField,
    PreprocessingField,
    ScaleField,
    SklearnDatasetField,
)


def _is_none(value: Any) -> bool:
    return value is None


def absent(**kwargs: Any) -> Any:
    """An optional field that is left out of responses when it has no value."""
    return Field(default=None, exclude_if=_is_none, **kwargs)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "Input should be a number")
    return value


#: A JSON number kept as given (an integer stays an integer in the response).
Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]


class OpenModel(BaseModel):
    """Strict about types; unknown keys pass on to core, whose error lists the allowed ones.

    The schema still says ``additionalProperties: false``: the server rejects them.
    """

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        use_enum_values=True,
        json_schema_extra={"additionalProperties": False},
    )


def tagged(key: str, members: Mapping[str, type[BaseModel]]) -> Any:
    """Validate a tagged object by its ``key`` first, then as the member that tag names."""
    choices = tuple(members)
    tag_model = create_model(
        f"_{key}_tag",
        __config__=ConfigDict(strict=False),
        **{key: (Literal[choices], ...)},  # type: ignore[call-overload]
    )

    def pick(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        tag_model.model_validate({key: value.get(key)})
        return members[str(value[key])].model_validate(value)

    return BeforeValidator(pick)


# ---- parameters, metrics, budgets ---------------------------------------------------


class ConditionSpec(WireModel):
    """The parameter exists only when ``parent`` takes one of ``values``."""

    parent: str
    values: list[Any]


class ParameterSpec(WireModel):
    """One parameter: float / int with low, high, scale, step; discrete / categorical with values."""

    name: str = declared(minLength=1, maxLength=MAX_PARAMETER_NAME, pattern=TRIMMED)
    type: ParamTypeField
    low: Number | None = absent(description="float / int: lower bound")
    high: Number | None = absent(description="float / int: upper bound (> low)")
    scale: ScaleField | None = absent(description="float / int: linear (default) or log")
    step: Number | None = absent(description="float / int: grid step (not with log)")
    values: list[Any] | None = absent(
        description="discrete: numbers; categorical: strings, numbers or booleans",
        json_schema_extra={"minItems": 1, "maxItems": MAX_CHOICES},
    )
    condition: ConditionSpec | None = absent()
    grid_points: JsonInt | None = absent(description="points per float axis for the grid algorithm")


class MetricSpec(WireModel):
    """A metric trials report: an objective, a constraint (with threshold) or tracked."""

    name: str = declared(minLength=1, maxLength=128, pattern=NOT_BLANK)
    goal: GoalField = Goal.MAXIMIZE
    role: MetricRoleField = MetricRole.OBJECTIVE
    threshold: float | None = absent(description="constraints only: the feasible bound")


class RetriesSpec(WireModel):
    """Lease length and how often a failed trial is retried."""

    max_retries: JsonInt = declared(2, minimum=0, maximum=MAX_RETRIES_LIMIT)
    lease_seconds: float = declared(600, minimum=0.1, maximum=MAX_LEASE_SECONDS)


class FidelitySpec(WireModel):
    """The resource a trial's steps count (epochs, samples); needed by some stopping rules.
    With a managed sklearn objective, what the workers train by: n_estimators, max_iter,
    n_samples, sample_percent or folds, in whole numbers (docs/early-stopping.md)."""

    name: str
    min: Number
    max: Number


#: A ``warm_start`` entry: an earlier study of the same project, by id or by name.
WarmStartRef = Annotated[
    JsonInt | str,
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_STUDY_ID},
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_STUDY_NAME,
                    "pattern": NOT_BLANK,
                },
            ]
        }
    ),
]


def hypervolume_reference_field() -> Any:
    """``hypervolume_reference``: the reference point of a multi-objective study."""
    return absent(
        description="the hypervolume's reference point: a number for each objective of a "
        "study with several (GET .../hypervolume infers one when absent; "
        "docs/multi-objective.md)",
    )


def warm_start_field() -> Any:
    """``warm_start``: earlier studies whose completed trials the algorithm sees first."""
    return absent(
        description="earlier studies of this project (ids or names; stored as ids) whose "
        "completed trials the algorithm sees as prior history (docs/analysis.md)",
        json_schema_extra={"maxItems": MAX_WARM_START},
    )


# ---- managed objective ----------------------------------------------------------------


class OuterFold(OpenModel):
    """Nested CV: tune on outer fold ``index``'s training rows, test on the rest."""

    n_splits: JsonInt | None = absent()
    index: JsonInt
    seed: JsonInt | None = absent()


class CrossValidation(OpenModel):
    """The splitter scoring each trial; which fields apply depends on ``type``."""

    type: CvTypeField | None = absent(description="default kfold")
    n_splits: JsonInt | None = absent()
    n_repeats: JsonInt | None = absent()
    shuffle: bool | None = absent()
    seed: JsonInt | None = absent()
    test_size: float | None = absent()
    gap: JsonInt | None = absent()
    max_train_size: JsonInt | None = absent()


class BundledDataset(OpenModel):
    """A dataset shipped with scikit-learn."""

    source: Literal["sklearn"]
    name: SklearnDatasetField


class FileDataset(OpenModel):
    """A CSV or Parquet file readable by the workers."""

    source: Literal["csv", "parquet"]
    path: str
    target: str
    groups: str | None = absent(description="column of group labels (group_kfold)")
    features: list[str] | None = absent(description="feature columns (default: all but target)")


class UploadedDataset(OpenModel):
    """A dataset uploaded with ``POST /datasets``, named by ``id`` or ``name``; the server
    fills in its fingerprint, format and default target and groups."""

    source: Literal["uploaded"]
    id: JsonInt | None = absent()
    name: str | None = absent()
    sha256: str | None = absent(description="the fingerprint (filled in by the server)")
    format: str | None = absent(description="csv or parquet (filled in by the server)")
    target: str | None = absent(description="default: the dataset's target")
    groups: str | None = absent(description="default: the dataset's groups column")
    features: list[str] | None = absent(description="feature columns (default: all but target)")


Dataset = Annotated[
    BundledDataset | FileDataset | UploadedDataset,
    Field(discriminator="source"),
    tagged(
        "source",
        {
            "sklearn": BundledDataset,
            "csv": FileDataset,
            "parquet": FileDataset,
            "uploaded": UploadedDataset,
        },
    ),
]


class ColumnBranch(OpenModel):
    """How one kind of column is prepared (each field null: that part is left out)."""

    impute: str | None = absent(
        description="numeric: mean, median, most_frequent, constant; "
        "categorical: most_frequent, constant"
    )
    scale: str | None = absent(description="numeric: standard, min_max, robust, max_abs")
    encode: str | None = absent(description="categorical: onehot (default) or ordinal")


class PipelineColumns(OpenModel):
    """A ColumnTransformer (the step ``columns``): numeric and categorical columns by kind."""

    numeric: ColumnBranch | None = absent()
    categorical: ColumnBranch | None = absent()


class PipelineStep(OpenModel):
    """A named step: an allowed transformer, or (last) a classifier or regressor."""

    name: str
    estimator: str = Field(description="dotted class path, e.g. sklearn.decomposition.PCA")
    params: dict[str, Any] | None = absent(description="constructor options")


class PipelineSpec(OpenModel):
    """A scikit-learn Pipeline; tuned parameters are named ``step__param``."""

    columns: PipelineColumns | None = absent()
    steps: list[PipelineStep] = Field(json_schema_extra={"minItems": 1, "maxItems": 10})


class SklearnObjective(OpenModel):
    """Train an allow-listed estimator with cross-validation on a dataset (on the workers)."""

    kind: Literal["sklearn"]
    estimator: str | None = absent(
        description="dotted class path, e.g. sklearn.svm.SVC (or give pipeline)"
    )
    fixed_params: dict[str, Any] | None = absent()
    pipeline: PipelineSpec | None = absent(description="instead of estimator")
    dataset: Dataset
    cv: CrossValidation | None = absent()
    scoring: str | list[str] | dict[str, str] | None = Field(
        default=None,
        description="a scikit-learn scorer name; a list (the first scores the objective, "
        "the others tracked metrics named like them); or metric name -> scorer name",
    )
    test_size: float | None = Field(default=None, description="rows held out for evaluate")
    preprocessing: list[PreprocessingField] | None = absent()
    seed: JsonInt | None = absent()
    outer_fold: OuterFold | None = None


class PythonObjective(OpenModel):
    """Call ``package.module:function(params, reporter)`` installed on the workers."""

    kind: Literal["python"]
    callable: str = Field(description="package.module:function")
    options: dict[str, Any] | None = absent()


Objective = Annotated[
    SklearnObjective | PythonObjective,
    Field(discriminator="kind"),
    tagged("kind", {"sklearn": SklearnObjective, "python": PythonObjective}),
]


# ---- early stopping -------------------------------------------------------------------


def stopping_model(rule: str) -> type[BaseModel]:
    """The options object of one registered rule, typed from the rule's own options model
    (core/options.py). Every option may be left out (the rule's default applies); core
    checks ranges and cross-field rules and names the field when one is broken."""
    cls = get_rule(rule)
    fields: dict[str, Any] = {"rule": (Literal[rule], ...)}
    for key, info in cls.options_model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        text = f"default {default!r}"
        annotation = JsonInt if info.annotation is int else info.annotation
        fields[key] = (
            cast(Any, annotation) | None,
            Field(
                default=None,
                description=f"{info.description}; {text}" if info.description else text,
            ),
        )
    name = "EarlyStopping" + "".join(part.title() for part in rule.split("_"))
    doc = (cls.__doc__ or f"The {rule!r} rule.").strip().splitlines()[0]
    return create_model(name, __base__=OpenModel, __doc__=doc, **fields)


STOPPING_MODELS: dict[str, type[BaseModel]] = {name: stopping_model(name) for name in rule_names()}


def _union(models: list[type[BaseModel]]) -> Any:
    return models[0] if len(models) == 1 else Union[tuple(models)]  # noqa: UP007


if TYPE_CHECKING:
    EarlyStopping = Any
else:
    EarlyStopping = Annotated[
        _union(list(STOPPING_MODELS.values())),
        *((Field(discriminator="rule"),) if len(STOPPING_MODELS) > 1 else ()),
        tagged("rule", STOPPING_MODELS),
    ]

__all__ = [
    "BundledDataset",
    "ColumnBranch",
    "ConditionSpec",
    "CrossValidation",
    "Dataset",
    "EarlyStopping",
    "FidelitySpec",
    "FileDataset",
    "MetricSpec",
    "Number",
    "Objective",
    "OuterFold",
    "ParameterSpec",
    "PipelineColumns",
    "PipelineSpec",
    "PipelineStep",
    "PythonObjective",
    "RetriesSpec",
    "SklearnObjective",
    "UploadedDataset",
    "WarmStartRef",
    "hypervolume_reference_field",
    "warm_start_field",
]
