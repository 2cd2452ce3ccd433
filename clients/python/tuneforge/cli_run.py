"""``tuneforge run``, ``tuneforge quickstart`` and ``tuneforge nested-cv``: managed studies
from the command line, locally (embedded server, local processes) or on a team server."""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .errors import TuneforgeError


def quickstart_spec(trials: int) -> dict[str, Any]:
    """The README's main job: an RBF SVM on the digits dataset."""
    return {
        "name": f"quickstart-{datetime.now():%Y%m%d-%H%M%S}",
        "description": "SVC on digits: 5-fold stratified CV, 20% held out, median stopping",
        "parameters": [
            {"name": "C", "type": "float", "low": 0.01, "high": 1000, "scale": "log"},
            {"name": "gamma", "type": "float", "low": 1e-5, "high": 0.1, "scale": "log"},
        ],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "algorithm": "auto",
        "early_stopping": {"rule": "median", "n_startup_trials": 5, "n_warmup_steps": 2},
        "max_trials": trials,
        "seed": 0,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.svm.SVC",
            "dataset": {"source": "sklearn", "name": "digits"},
            "cv": {"type": "stratified_kfold", "n_splits": 5, "shuffle": True, "seed": 0},
            "scoring": "accuracy",
            "test_size": 0.2,
        },
    }


def load_spec(path: str) -> dict[str, Any]:
    from ._core import read_spec_file

    try:
        return dict(read_spec_file(path))
    except FileNotFoundError:
        raise click.ClickException(f"no such spec file: {path}") from None
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None


def objective_metric(spec: dict[str, Any]) -> str:
    return next(m["name"] for m in spec["metrics"] if m.get("role", "objective") == "objective")


def run_locally(study: Any, workers: int, progress: bool) -> None:
    """Run a managed study's trials in local processes, then its held-out evaluation."""
    from tuneforge.core.objective import has_holdout
    from tuneforge.worker.objective import LocalObjective
    from tuneforge.worker.tasks import evaluate_best

    objective = study.data.objective
    if objective is None:
        raise click.ClickException("the study has no managed objective (objective: null)")
    metric = objective_metric(study.data.model_dump())
    study.optimize(LocalObjective(objective, metric), n_workers=workers, progress=progress)
    if has_holdout(objective) and study.refresh().best() is not None:
        study.store_evaluation(evaluate_best(study))


def follow(study: Any, timeout: float | None) -> None:
    """Watch a study the team server's workers run until it and its evaluation are done."""
    from tuneforge.core.objective import has_holdout

    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        data = study.refresh().data
        counts = data.trial_counts
        evaluation = data.evaluation or {}
        line = (
            f"{data.state}: {counts.get('completed', 0)} completed, {counts.get('pruned', 0)} pruned, "
            f"{counts.get('active', 0)} running of {data.max_trials}"
        )
        if line != last:
            click.echo(line, err=True)
            last = line
        waiting = has_holdout(data.objective) and evaluation.get("state") not in ("done", "failed")
        if data.state == "completed" and not waiting:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise click.ClickException(f"study {data.id} did not finish within {timeout} s")
        time.sleep(1.0)


def summary(study: Any, where: str) -> str:
    data = study.refresh().data
    best = study.best()
    metric = objective_metric(data.model_dump())
    counts = data.trial_counts
    lines = [
        f"study {data.name!r} (id {data.id}): {counts.get('completed', 0)} completed, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('infeasible', 0)} infeasible, "
        f"{counts.get('failed', 0)} failed",
    ]
    if best is None:
        return "\n".join([*lines, "no completed trial"])
    lines.append(f"best configuration (trial {best.number}): {dict(best.params)}")
    lines.append(f"CV {metric}: {best.values[metric]:.4f}")
    evaluation = data.evaluation or {}
    if evaluation.get("state") == "done":
        lines.append(f"held-out test {metric}: {evaluation['test_score']:.4f} (evaluated once)")
    elif evaluation.get("state") == "failed":
        lines.append(f"held-out evaluation failed: {evaluation.get('error')}")
    lines.append(where)
    return "\n".join(lines)


@click.command()
@click.argument("spec_file")
@click.option("--server", "server_url", default=None, help="Submit to this team server instead.")
@click.option("--workers", "-w", default=2, show_default=True, help="Local worker processes.")
@click.option(
    "--db",
    "db_path",
    default="tuneforge.db",
    show_default=True,
    help="SQLite file of the embedded server (local runs).",
)
@click.option(
    "--timeout", default=None, type=float, help="Give up following after this many seconds."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(
    spec_file: str,
    server_url: str | None,
    workers: int,
    db_path: str,
    timeout: float | None,
    no_progress: bool,
) -> None:
    """Run the managed study in SPEC_FILE (YAML or JSON) to the end and print the result."""
    import tuneforge

    spec = load_spec(spec_file)
    try:
        if server_url:
            with tuneforge.Client(server_url) as client:
                study = client.create_study(spec, if_exists="return").run()
                follow(study, timeout)
                click.echo(summary(study, f"stored on {server_url}"))
            return
        with tuneforge.local(path=db_path) as client:
            study = client.create_study(spec, if_exists="return")
            run_locally(study, workers, not no_progress)
            where = f"stored in {Path(db_path).resolve()} (browse it: tuneforge serve --db sqlite:///{db_path})"
            click.echo(summary(study, where))
    except TuneforgeError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--workers", "-w", default=2, show_default=True, help="Local worker processes.")
@click.option("--trials", default=30, show_default=True, help="Trials to run.")
@click.option("--db", "db_path", default="tuneforge.db", show_default=True, help="SQLite file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def quickstart(workers: int, trials: int, db_path: str, no_progress: bool) -> None:
    """Tune an SVM on the digits dataset locally: no services needed."""
    import tuneforge

    spec = quickstart_spec(trials)
    click.echo(
        f"tuning sklearn.svm.SVC on digits: {trials} trials, 5-fold stratified CV, 20% held out, "
        f"{workers} local workers",
        err=True,
    )
    start = time.monotonic()
    with tuneforge.local(path=db_path) as client:
        study = client.create_study(spec)
        run_locally(study, workers, not no_progress)
        where = (
            f"stored in {Path(db_path).resolve()}; browse it with "
            f"`tuneforge serve --db sqlite:///{db_path}`"
        )
        click.echo(summary(study, where))
    click.echo(f"done in {time.monotonic() - start:.0f} s", err=True)


@click.command("nested-cv")
@click.argument("spec_file")
@click.option("--outer", default=5, show_default=True, help="Outer folds.")
@click.option("--seed", default=0, show_default=True, help="Seed of the outer split.")
@click.option("--server", "server_url", default=None, help="Run on this team server's workers.")
@click.option("--workers", "-w", default=2, show_default=True, help="Local worker processes.")
@click.option("--db", "db_path", default="tuneforge.db", show_default=True, help="SQLite file.")
@click.option("--timeout", default=None, type=float, help="Give up after this many seconds.")
def nested_cv(
    spec_file: str,
    outer: int,
    seed: int,
    server_url: str | None,
    workers: int,
    db_path: str,
    timeout: float | None,
) -> None:
    """Nested cross-validation: an inner study per outer fold, scored on that fold."""
    import tuneforge

    spec = load_spec(spec_file)
    try:
        if server_url:
            with tuneforge.Client(server_url) as client:
                client.start_nested_cv(spec, outer, seed=seed, run=True)
                for fold in client.nested_cv_summary(spec["name"])["folds"]:
                    follow(client.get_study(fold["study_id"]), timeout)
                click.echo(nested_report(client.nested_cv_summary(spec["name"])))
            return
        with tuneforge.local(path=db_path) as client:
            started = client.start_nested_cv(spec, outer, seed=seed, run=False)
            for fold in started["folds"]:
                click.echo(f"outer fold {fold['index']}: tuning study {fold['study_id']}", err=True)
                run_locally(client.get_study(fold["study_id"]), workers, progress=False)
            click.echo(nested_report(client.nested_cv_summary(spec["name"])))
    except TuneforgeError as exc:
        raise click.ClickException(str(exc)) from None


def nested_report(result: dict[str, Any]) -> str:
    lines = [f"nested cross-validation {result['group']!r}: {result['outer_splits']} outer folds"]
    for fold in result["folds"]:
        score = fold["outer_score"]
        shown = f"{score:.4f}" if score is not None else "n/a"
        lines.append(f"  fold {fold['index']}: outer score {shown}, chosen {fold['best_params']}")
    scores = [f["outer_score"] for f in result["folds"] if f["outer_score"] is not None]
    if scores:
        std = statistics.pstdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"outer score: {statistics.fmean(scores):.4f} ± {std:.4f}")
    return "\n".join(lines)


def register(group: click.Group) -> None:
    for command in (run, quickstart, nested_cv):
        group.add_command(command)
