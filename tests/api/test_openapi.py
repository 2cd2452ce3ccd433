"""The OpenAPI document: ids, error bodies, enums, typed specs, examples, offline docs,
and a client generated from it (openapi-python-client) driving a study on a live server."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer
from tuneforge.api.schemas.spec import STOPPING_MODELS, CrossValidation, SklearnObjective
from tuneforge.core import objective as core_objective
from tuneforge.core.algorithms import algorithm_names
from tuneforge.core.space import ParamType, Scale
from tuneforge.core.stopping import get_rule, rule_names
from tuneforge.core.trials import Goal, MetricRole, StudyState, TrialState

API = "/api/v1"
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
MAIN_IDS = {
    "createStudy",
    "listStudies",
    "getStudy",
    "updateStudy",
    "deleteStudy",
    "runStudy",
    "evaluateStudy",
    "storeEvaluation",
    "getBest",
    "getImportance",
    "getHypervolume",
    "getWarmStart",
    "suggestTrials",
    "createTrial",
    "listTrials",
    "getTrial",
    "reportMeasurement",
    "heartbeat",
    "completeTrial",
    "failTrial",
    "stopTrial",
    "saveCheckpoint",
    "loadCheckpoint",
    "startNestedCv",
    "getNestedCv",
    "listKeys",
    "createKey",
    "revokeKey",
    "listAudit",
    "uploadDataset",
    "listDatasets",
    "getDataset",
    "downloadDataset",
    "deleteDataset",
    "healthz",
    "readyz",
    "metrics",
}
ERROR_BODY = "#/components/schemas/ErrorBody"


@pytest.fixture
def sqlite_client(sqlite_url: str) -> Iterator[TestClient]:
    from tests.conftest import make_client

    with make_client(sqlite_url, reconcile_interval_seconds=0) as c:
        yield c


@pytest.fixture
def doc(sqlite_client: TestClient) -> dict[str, Any]:
    r = sqlite_client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][name])


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(doc)


def test_every_operation_has_a_unique_camel_case_id(doc: dict[str, Any]) -> None:
    ids = [op.get("operationId", "") for _, _, op in operations(doc)]
    assert all(CAMEL.match(i) for i in ids), ids
    assert len(ids) == len(set(ids))
    assert set(ids) == MAIN_IDS


def test_every_error_status_declares_the_real_error_body(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(doc)
    for path, method, op in operations(doc):
        responses = op["responses"]
        errors = {s: r for s, r in responses.items() if s.startswith(("4", "5"))}
        if path == "/readyz":
            assert set(errors) == {"503"}
            continue
        for status, response in errors.items():
            media = response["content"]["application/json"]
            assert media["schema"] == {"$ref": ERROR_BODY}, (path, method, status)
            assert set(media["example"]["error"]) == {"code", "message", "details"}
        if path.startswith(API):
            assert {"401", "403", "429", "503"} <= set(errors), (path, method)
            assert op["security"] == [{"apiKey": []}, {}], (path, method)
        if "{study_id}" in path or "{number}" in path or "{group}" in path:
            assert "404" in errors, (path, method)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= set(errors), (path, method)
    detail = schema(doc, "ErrorDetail")
    assert set(detail["required"]) == {"code", "message", "details"}


def test_conflicts_are_declared_where_the_services_raise_them(doc: dict[str, Any]) -> None:
    conflicting = {
        "createStudy",
        "createTrial",
        "runStudy",
        "evaluateStudy",
        "reportMeasurement",
        "heartbeat",
        "completeTrial",
        "failTrial",
        "stopTrial",
        "saveCheckpoint",  # a trial that is no longer running or paused
        "startNestedCv",
        "updateStudy",  # a state change the study cannot make (completed -> paused)
        "createKey",  # open mode: the first key comes from `tuneforge keys create`
        "getImportance",  # too few completed trials yet
        "storeEvaluation",  # the held-out rows were scored already
        "uploadDataset",  # the name is taken
        "deleteDataset",  # an unfinished study trains on it
    }
    declared = {op["operationId"] for _, _, op in operations(doc) if "409" in op["responses"]}
    assert declared == conflicting


def test_delete_declares_204_without_a_body(doc: dict[str, Any]) -> None:
    op = doc["paths"][f"{API}/studies/{{study_id}}"]["delete"]
    assert "content" not in op["responses"]["204"]


def test_enums_come_from_core(doc: dict[str, Any]) -> None:
    expected = {
        "ParamType": [t.value for t in ParamType],
        "Scale": [s.value for s in Scale],
        "Goal": [g.value for g in Goal],
        "MetricRole": [r.value for r in MetricRole],
        "TrialState": [s.value for s in TrialState],
        "StudyState": [s.value for s in StudyState],
        "AlgorithmName": algorithm_names(),
        "CvType": list(core_objective.CV_TYPES),
        "Preprocessing": list(core_objective.PREPROCESSING),
        "SklearnDataset": list(core_objective.SKLEARN_DATASETS),
        "IfExists": ["return"],
    }
    for name, values in expected.items():
        assert schema(doc, name)["enum"] == values, name
    refs = {
        ("ParameterSpec", "type"): "ParamType",
        ("MetricSpec", "goal"): "Goal",
        ("MetricSpec", "role"): "MetricRole",
        ("StudyCreate", "algorithm"): "AlgorithmName",
        ("StudyPublic", "state"): "StudyState",
        ("TrialPublic", "state"): "TrialState",
        ("SuggestOut", "study_state"): "StudyState",
        ("MeasureOut", "trial_state"): "TrialState",
    }
    for (model, field), enum in refs.items():
        assert f"#/components/schemas/{enum}" in json.dumps(schema(doc, model)["properties"][field])
    trial_create_state = schema(doc, "TrialCreate")["properties"]["state"]
    assert trial_create_state["enum"] == ["requested", "completed"]


def _discriminator(prop: dict[str, Any]) -> dict[str, Any]:
    for option in prop.get("anyOf", [prop]):
        if "discriminator" in option:
            return dict(option["discriminator"])
    raise AssertionError(f"no discriminator in {prop}")


def test_objective_and_early_stopping_are_typed_unions(doc: dict[str, Any]) -> None:
    props = schema(doc, "StudyCreate")["properties"]
    objective = _discriminator(props["objective"])
    assert objective["propertyName"] == "kind"
    assert set(objective["mapping"]) == {"sklearn", "python"}
    stopping = _discriminator(props["early_stopping"])
    assert stopping["propertyName"] == "rule"
    assert set(stopping["mapping"]) == set(rule_names())
    median = schema(doc, "EarlyStoppingMedian")["properties"]
    assert median["n_warmup_steps"]["anyOf"][0] == {"type": "integer"}
    assert median["use_best_so_far"]["anyOf"][0] == {"type": "boolean"}
    dataset = _discriminator(schema(doc, "SklearnObjective")["properties"]["dataset"])
    assert set(dataset["mapping"]) == set(core_objective.DATASET_SOURCES)
    fidelity = schema(doc, "FidelitySpec")
    assert set(fidelity["required"]) == {"name", "min", "max"}


def test_wire_models_cover_what_core_accepts() -> None:
    """Fails when core learns a new key or option the wire models do not type yet."""
    assert set(SklearnObjective.model_fields) == core_objective._SKLEARN_KEYS
    assert set(CrossValidation.model_fields) == core_objective._CV_KEYS
    for name in rule_names():
        options = set(STOPPING_MODELS[name].model_fields) - {"rule"}
        assert options == set(get_rule(name).default_options()), name


def test_main_operations_carry_examples_the_server_accepts(
    doc: dict[str, Any], sqlite_client: TestClient
) -> None:
    by_id = {op["operationId"]: (path, op) for path, _, op in operations(doc)}

    def examples(op_id: str) -> list[Any]:
        media = by_id[op_id][1]["requestBody"]["content"]["application/json"]
        assert media.get("examples"), op_id
        return [e["value"] for e in media["examples"].values()]

    created = [sqlite_client.post(f"{API}/studies", json=e) for e in examples("createStudy")]
    assert [r.status_code for r in created] == [201] * len(created), [r.text for r in created]
    sid = created[0].json()["id"]
    for body in examples("suggestTrials"):
        r = sqlite_client.post(f"{API}/studies/{sid}/trials/suggest", json=body)
        assert r.status_code == 200 and r.json()["trials"], r.text
    n = r.json()["trials"][0]["number"]
    for body in examples("reportMeasurement"):
        r = sqlite_client.post(f"{API}/studies/{sid}/trials/{n}/measurements", json=body)
        assert r.status_code == 200, r.text
    for i, body in enumerate(examples("completeTrial")):
        number = n if i == 0 else _new_trial(sqlite_client, sid)
        r = sqlite_client.post(f"{API}/studies/{sid}/trials/{number}/complete", json=body)
        assert r.status_code == 200, r.text


def _new_trial(client: TestClient, sid: int) -> int:
    r = client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": "other"})
    return int(r.json()["trials"][0]["number"])


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_this_server_serves(
    sqlite_client: TestClient, page: str
) -> None:
    r = sqlite_client.get(page)
    assert r.status_code == 200
    html = r.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    parser = _Links()
    parser.feed(html)
    scripts = [u for u in parser.urls if u.endswith(".js")]
    assert scripts, html
    assert "/openapi.json" in html
    for url in parser.urls:
        assert url.startswith("/"), url
        asset = sqlite_client.get(url)
        assert asset.status_code == 200 and asset.content, url


# ---- a generated client --------------------------------------------------------------


def _generate_client(doc_path: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    config = out.parent / "generator.yaml"
    config.write_text("post_hooks: []\npackage_name_override: tuneforge_generated\n")
    cmd = [
        str(Path(sys.executable).with_name("openapi-python-client")),
        "generate",
        "--path",
        str(doc_path),
        "--meta",
        "none",
        "--output-path",
        str(out),
        "--config",
        str(config),
        "--fail-on-warning",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[Any, LiveServer]]:
    server = LiveServer(f"sqlite:///{tmp_path / 'live.db'}", "--migrate").start()
    try:
        doc_path = tmp_path / "openapi.json"
        doc_path.write_text(httpx.get(f"{server.url}/openapi.json", timeout=10).text)
        _generate_client(doc_path, tmp_path / "gen" / "tuneforge_generated")
        sys.path.insert(0, str(tmp_path / "gen"))
        try:
            yield importlib.import_module("tuneforge_generated"), server
        finally:
            sys.path.remove(str(tmp_path / "gen"))
            for name in [m for m in sys.modules if m.split(".")[0] == "tuneforge_generated"]:
                del sys.modules[name]
    finally:
        server.stop()


def test_a_generated_client_drives_a_study(generated: tuple[Any, LiveServer]) -> None:
    pkg, server = generated
    m = importlib.import_module("tuneforge_generated.models")

    def op(name: str) -> Any:
        """The module the generator wrote for an operation (named after its id)."""
        return importlib.import_module(f"tuneforge_generated.api.{name}")

    client = pkg.Client(base_url=server.url, raise_on_unexpected_status=True)

    spec = m.StudyCreate(
        name="generated",
        parameters=[
            m.ParameterSpec(name="x", type_=m.ParamType.FLOAT, low=-2.0, high=2.0),
            m.ParameterSpec(name="k", type_=m.ParamType.CATEGORICAL, values=["a", "b"]),
        ],
        metrics=[m.MetricSpec(name="score", goal=m.Goal.MAXIMIZE)],
        algorithm=m.AlgorithmName.RANDOM,
        early_stopping=m.EarlyStoppingMedian(rule="median", n_warmup_steps=1),
        max_trials=3,
    )
    create = op("studies.create_study")
    made = create.sync_detailed(client=client, body=spec)
    assert made.status_code == 201
    study = made.parsed
    assert isinstance(study, m.StudyPublic) and study.state == m.StudyState.ACTIVE
    assert isinstance(study.early_stopping, m.EarlyStoppingMedian)
    assert (
        study.early_stopping.n_warmup_steps == 1 and study.parameters[0].type_ == m.ParamType.FLOAT
    )

    suggest = op("trials.suggest_trials")
    measure = op("trials.report_measurement")
    complete = op("trials.complete_trial")
    scores = {}
    for _ in range(3):
        out = suggest.sync(study.id, client=client, body=m.SuggestIn(count=1, client_id="gen"))
        assert isinstance(out, m.SuggestOut) and len(out.trials) == 1
        trial = out.trials[0]
        assert trial.state == m.TrialState.ACTIVE
        score = -abs(float(trial.params["x"]))
        reply = measure.sync(
            study.id,
            trial.number,
            client=client,
            body=m.MeasurementIn(step=1, values=m.MeasurementInValues.from_dict({"score": score})),
        )
        assert isinstance(reply, m.MeasureOut) and reply.trial_state == m.TrialState.ACTIVE
        done = complete.sync(
            study.id,
            trial.number,
            client=client,
            body=m.CompleteIn(values=m.CompleteInValuesType0.from_dict({"score": score})),
        )
        assert isinstance(done, m.TrialPublic) and done.state == m.TrialState.COMPLETED
        scores[trial.number] = score
    final = suggest.sync(study.id, client=client, body=m.SuggestIn(count=1, client_id="gen"))
    assert final.trials == [] and final.study_state == m.StudyState.COMPLETED

    best = op("studies.get_best").sync(study.id, client=client)
    assert isinstance(best, m.BestOut)
    assert best.trials[0].number == max(scores, key=lambda k: scores[k])

    missing = op("studies.get_study").sync_detailed(999999, client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, m.ErrorBody)
    assert missing.parsed.error.code == "not_found"
    assert "999999" in missing.parsed.error.message

    bad = m.StudyCreate(
        name="bad",
        parameters=[m.ParameterSpec(name="x", type_=m.ParamType.FLOAT, low=3.0, high=1.0)],
        metrics=[m.MetricSpec(name="score")],
    )
    invalid = create.sync_detailed(client=client, body=bad)
    assert invalid.status_code == 422 and isinstance(invalid.parsed, m.ErrorBody)
    assert invalid.parsed.error.message.startswith("parameters[0].high")
    assert invalid.parsed.error.details.to_dict()["field"] == "parameters[0].high"

    again = create.sync_detailed(client=client, body=spec)
    assert again.status_code == 409 and isinstance(again.parsed, m.ErrorBody)
    returned = create.sync_detailed(client=client, body=spec, if_exists=m.IfExists.RETURN)
    assert returned.status_code == 200 and returned.parsed.id == study.id
