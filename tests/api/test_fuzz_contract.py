"""schemathesis over every operation of the OpenAPI document, against the real app.

The app runs in-process (ASGI) on its own temporary SQLite file, in open mode (no
keys), with two studies and a few trials created first so that generated path
parameters reach existing resources most of the time (:func:`aim_at_seeded`).
Two tests:

- every operation alone, with schema-valid requests (``positive``) and, where the
  operation takes parameters or a body, schema-invalid ones (``negative``);
- stateful scenarios along the links schemathesis infers from the document (ids
  from one response fed into the next request), each from the same seeded database.

Strings are UTF-8 text without NUL, the text every string field takes (NUL and
unpaired surrogates are refused with a 422 by ``api/text_guard.py``, a rule JSON
Schema cannot state for every string). Generation is deterministic
(``derandomize``, a fixed seed) and bounded (:data:`MAX_EXAMPLES` per operation and
mode, :data:`STATEFUL_EXAMPLES` scenarios), so a failure is reproduced by the next
run, and its report ends with the request as a ``curl`` command. Run with ``-s`` to
see how each operation answered.

Checks on every response:

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``: the status is declared for the operation;
- ``content_type_conformance`` and ``response_headers_conformance``;
- ``response_schema_conformance``: the body matches the declared schema;
- ``positive_data_acceptance`` for schema-valid requests: the answer is 2xx, or one of
  :data:`LEGITIMATE_REJECTIONS`, which depend on the state of the server and not on
  the request's shape: 404 (the id or name does not exist, or belongs to another
  project) and 409 (the study or trial is not in a state that allows the verb; a name
  already taken). 401 and 403 cannot occur in open mode and are not allowed. 422 is
  not allowed either, except for the rules listed in :data:`SEMANTIC_RULES`: rules
  JSON Schema cannot state (one field compared with another, or with the study a
  request names). Each is matched by the field the error names and the rule its
  message states, so any other 422 to a schema-valid request fails the test.

And in the per-operation test, a request answered 4xx stores nothing: every row of
:data:`STATE_TABLES` is the same before and after it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, text

from tuneforge.api.app import create_app
from tuneforge.api.db.migrate import upgrade
from tuneforge.api.settings import Settings

#: Examples per operation (positive and negative each); ~25 operations.
MAX_EXAMPLES = 60
SEED = 20261202
#: Statuses a schema-valid request may get besides 2xx (see the module docstring).
LEGITIMATE_REJECTIONS = ("404", "409")
#: The fields of a study spec with rules that involve other fields (the rules of a single
#: name, its length and blanks, are declared: they are not in this list).
SPEC_FIELDS = (
    r"parameters\[\d+\]\.(?:low|high|step|scale|values|condition|grid_points|type).*"
    r"|parameters\[\d+\]\.name|metrics\[\d+\]\.(?:name|threshold|role)"
    r"|algorithm(?:_options.*)?|early_stopping.*|objective.*|fidelity.*|hypervolume_reference.*"
)
#: The messages of those fields' own rules (a length, a blank name): never semantic.
OWN_RULES = r"^(?!.*(?:characters|non-empty string))"
#: 422s to schema-valid requests that JSON Schema cannot rule out: (operation id, the
#: field the error names (regex), the rule its message states (regex)); why in comments.
#: A 422 from the request models' own validation (``details.errors``) never matches.
SEMANTIC_RULES: tuple[tuple[str, str, str], ...] = (
    # a study spec: which fields a parameter takes depends on its type; bounds, steps,
    # scales and conditions are compared with each other; an objective among the metrics;
    # options that depend on the algorithm, rule or estimator; fidelity min < max
    ("createStudy", SPEC_FIELDS, OWN_RULES),
    ("createStudy", r"metrics", r"must be an objective"),
    # warm_start names studies of the caller's project: which exist, the database decides
    ("createStudy", r"warm_start\[\d+\]", r"no study .* in this project"),
    ("startNestedCv", r"warm_start\[\d+\]", r"no study .* in this project"),
    ("startNestedCv", rf"study\.(?:{SPEC_FIELDS})", OWN_RULES),
    ("startNestedCv", r"study\.metrics", r"must be an objective"),
    # a nested cross-validation needs the (optional) objective, a sklearn one
    ("startNestedCv", r"study\.objective", r"needs a managed sklearn objective"),
    # the study a request names decides: its parameters and metrics, its objective
    ("createTrial", r"params\..*", r"unknown parameter|missing value|must be"),
    ("createTrial", r"values(\..*)?", r""),
    ("reportMeasurement", r"values\..*", r"unknown metric"),
    # held-back measurements: their steps increase and stay below the report's
    ("reportMeasurement", r"earlier\[\d+\]\.values\..*", r"unknown metric"),
    ("reportMeasurement", r"earlier\[\d+\]\.step", r"must be (?:below|greater than)"),
    ("completeTrial", r"values\..*", r"unknown metric|missing|objective"),
    ("runStudy", r"objective", r"no managed objective"),
    ("getImportance", r"objective", r"unknown metric"),
    ("getHypervolume", r"metrics", r"one objective"),
    ("evaluateStudy", r"objective", r"no managed objective|no test set"),
    # values are needed unless infeasible; a stored evaluation is a result or a failure
    ("completeTrial", r"values", r"required unless infeasible"),
    ("storeEvaluation", r"trial_number|params|test_score|cv_score|error", r"is required"),
    # a page token is opaque: only one this server issued is valid
    ("listStudies", r"page_token", r"not a page token this server issued"),
    ("listTrials", r"page_token", r"not a page token this server issued"),
    ("listAudit", r"page_token", r"not a page token this server issued"),
    ("listDatasets", r"page_token", r"not a page token this server issued"),
    # an upload's body must be a table (CSV or Parquet) that has the columns it names
    ("uploadDataset", r"body", r"the uploaded file|no columns|no data rows"),
    ("uploadDataset", r"target|groups", r"no column .* in the file|must differ from target"),
    ("uploadDataset", r"format", r"but the body is"),
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

#: Seeded studies: ``study_id`` values drawn by schemathesis are folded onto these and
#: one id that does not exist, so most requests reach a real study.
SEEDED = {"study_ids": (1, 2), "missing": 3, "trial_numbers": (0, 1, 2, 3)}


def seed(session: Any) -> None:
    """Two active studies (random search and TPE), trials in several states."""
    for name, algorithm in (("fuzz-a", "random"), ("fuzz-b", "tpe")):
        spec = {
            "name": name,
            "parameters": [
                {"name": "x", "type": "float", "low": 0, "high": 1},
                {"name": "k", "type": "categorical", "values": ["a", "b"]},
            ],
            "metrics": [{"name": "loss", "goal": "minimize"}],
            "algorithm": algorithm,
        }
        r = session.post("/api/v1/studies", json=spec)
        assert r.status_code == 201, r.text
        study = r.json()["id"]
        r = session.post(f"/api/v1/studies/{study}/trials/suggest", json={"count": 3})
        assert r.status_code == 200, r.text
        trials = r.json()["trials"]
        done = session.post(
            f"/api/v1/studies/{study}/trials/{trials[0]['number']}/complete",
            json={"values": {"loss": 0.5}},
        )
        assert done.status_code == 200, done.text


#: (operation, mode, status) -> answers: printed at the end of the module (``-s``).
STATUSES: Counter[tuple[str, str, int]] = Counter()
#: (operation, field) -> schema-valid requests refused by a rule of SEMANTIC_RULES.
ALLOWED: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def status_summary() -> Iterator[None]:
    """Print how each operation answered: whether the fuzzing reached past validation."""
    yield
    for (label, mode, status), n in sorted(STATUSES.items()):
        print(f"fuzz: {label} {mode} {status} x{n}")
    for (label, field), n in sorted(ALLOWED.items()):
        print(f"fuzz: {label} positive 422 on {field} (a semantic rule) x{n}")


def fuzz_config() -> Any:
    """Fixed seed, deterministic generation, the legitimate rejections."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # the text every string field takes (api/text_guard.py): UTF-8, no NUL
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "codec": "utf-8",
                "allow-x00": False,
            },
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", *LEGITIMATE_REJECTIONS]}
            },
        }
    )


def negatable(parameter: dict[str, Any]) -> bool:
    """Whether some value breaks the parameter's schema (any text is a valid plain string)."""
    rules = set(parameter["schema"]) - {"title", "description"}
    return rules != {"type"} or parameter["schema"]["type"] != "string"


def cases() -> list[tuple[str, GenerationMode]]:
    """Every operation of the document ("METHOD /path"), with schema-valid requests, and
    with schema-invalid ones where it takes parameters or a body; touches no database."""
    doc = create_app(Settings(db_url="sqlite://")).openapi()  # type: ignore[call-arg]
    out = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            out.append((label, GenerationMode.POSITIVE))
            if operation.get("requestBody") or any(map(negatable, operation.get("parameters", ()))):
                out.append((label, GenerationMode.NEGATIVE))
    return out


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    """The schema of a fresh app on its own SQLite file, seeded (:func:`seed`)."""
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    upgrade(url)
    app = create_app(Settings(db_url=url, reconcile_interval_seconds=0))  # type: ignore[call-arg]
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config())
    loaded.hook("map_path_parameters")(aim_at_seeded)
    loaded.reseed = lambda: reseed(app, url)
    loaded.stored = lambda: stored(url)
    loaded.reseed()
    yield loaded
    schemathesis.python.asgi.shutdown_lifespans()


#: What a request may change (the audit log records refused requests too).
STATE_TABLES = (
    "projects", "studies", "trials", "measurements", "dispatches", "api_keys", "datasets",
)  # fmt: skip


def stored(url: str) -> list[list[tuple[Any, ...]]]:
    """Every row of :data:`STATE_TABLES`: a refused request must leave them as they were."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [
            sorted(map(tuple, conn.execute(text(f"SELECT * FROM {table}"))), key=repr)
            for table in STATE_TABLES
        ]
    engine.dispose()
    return rows


def reseed(app: Any, url: str) -> None:
    """Empty the database (ids start at 1 again) and :func:`seed` it."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ("measurements", "trials", "audit_log", "api_keys", "studies", "datasets"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("DELETE FROM projects WHERE name <> 'default'"))
        if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
            conn.execute(text("DELETE FROM sqlite_sequence"))
    engine.dispose()
    with schemathesis.python.asgi.get_client(app) as session:
        seed(session)


def aim_at_seeded(ctx: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """``map_path_parameters``: fold drawn ids onto the seeded resources (and one unknown)."""
    if not path_parameters:
        return path_parameters
    ids = (*SEEDED["study_ids"], SEEDED["missing"])
    out = dict(path_parameters)
    if isinstance(out.get("study_id"), int) and out["study_id"] >= 0:
        out["study_id"] = ids[out["study_id"] % len(ids)]
    if isinstance(out.get("number"), int) and out["number"] >= 0:
        numbers = SEEDED["trial_numbers"]
        out["number"] = numbers[out["number"] % len(numbers)]
    return out


def semantic_rejection(case: Any, response: Any) -> bool:
    """A 422 naming a rule of :data:`SEMANTIC_RULES` for this operation."""
    if response.status_code != 422:
        return False
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    details = error.get("details") or {}
    if "errors" in details:  # the request models' own validation: the schema's rules
        return False
    field = str(details.get("field", ""))
    message = str(error.get("message", ""))
    return any(
        op == case.operation.definition.raw.get("operationId")
        and re.fullmatch(field_rule, field, re.DOTALL)
        and re.search(rule, message, re.DOTALL)
        for op, field_rule, rule in SEMANTIC_RULES
    )


def schema_valid_requests_accepted(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, except the 422s of :data:`SEMANTIC_RULES`."""
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and semantic_rejection(case, response):
        field = (response.json()["error"].get("details") or {}).get("field")
        field = re.sub(r"\[\d+\]", "[i]", str(field))
        field = re.sub(r"^(params|values)\..*", r"\1.<name>", field, flags=re.DOTALL)
        ALLOWED[(case.operation.label, field)] += 1
        return None
    return positive_data_acceptance(ctx, response, case)


@pytest.mark.parametrize(("label", "mode"), cases(), ids=lambda v: str(getattr(v, "value", v)))
def test_every_operation_holds_its_contract(api: Any, label: str, mode: GenerationMode) -> None:
    """Each operation, schema-valid and schema-invalid requests: see the module docstring."""
    operation = api.find_operation_by_label(label)
    assert operation is not None, label

    @given(operation.as_strategy(mode, hooks=api.hooks))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        before = api.stored()
        response = case.call_and_validate(checks=[*CHECKS, schema_valid_requests_accepted])
        if response.status_code >= 400:
            assert api.stored() == before, f"{label} stored data while answering {response}"
        STATUSES[(label, mode.value, response.status_code)] += 1

    run()


#: Stateful runs: scenarios and steps per scenario.
STATEFUL_EXAMPLES = 40
STATEFUL_STEPS = 8


def test_linked_operations_hold_the_contract(api: Any) -> None:
    """Sequences of calls along the links schemathesis infers from the document (a study's
    ``id`` from createStudy, listStudies, getStudy and updateStudy feeds every route under
    ``/studies/{study_id}``; a new key's ``id`` feeds revokeKey), with the same checks."""
    machine = api.as_state_machine()

    class Scenario(machine):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            api.reseed()  # every scenario starts from the same database

        def validate_response(self, response: Any, case: Any, *_: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                checks=[*CHECKS, schema_valid_requests_accepted],
                transport_kwargs=kwargs or None,
            )
            STATUSES[(f"stateful {case.operation.label}", "linked", response.status_code)] += 1

    Scenario.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
    )
