"""``tuneforge run``, ``tuneforge quickstart`` and ``tuneforge nested-cv``: managed studies
from the command line, locally (embedded server, local processes) or on a team server.

Errors reach the one error path of :mod:`tuneforge.cli_errors` (one line each)."""

from __future__ import annotations

import shlex
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .cli_connect import check_url, load_spec
from .cli_errors import Interrupted, TrialError, one_line, remember
from .errors import Conflict, TuneforgeError
from .progress import ProgressBar, best_value, budget_done, resume_note, status_line

#: Spec fields a study can change after creation (``PATCH /studies/{id}``).
CHANGEABLE = ("max_trials", "max_active_trials", "max_failed_trials", "description", "metadata")


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


def objective_metric(spec: dict[str, Any]) -> str:
    return next(m["name"] for m in spec["metrics"] if m.get("role", "objective") == "objective")


def open_study_for(client: Any, spec: dict[str, Any]) -> Any:
    """Create the study of ``spec``, or reuse the identical one of that name.

    When the existing study differs only in what can be changed later (its
    budgets, description, metadata), those are updated and the study resumes:
    raising ``max_trials`` in the file and running again continues the study.
    Any other difference raises the server's ``Conflict`` (worded with what to do
    by :mod:`tuneforge.cli_errors`).
    """
    try:
        return client.create_study(spec, if_exists="return")
    except Conflict as exc:
        study_id = exc.details.get("study_id") if isinstance(exc.details, dict) else None
        study = None if study_id is None else _updated(client, spec, int(study_id))
        if study is None:
            raise
        return study


def _updated(client: Any, spec: dict[str, Any], study_id: int) -> Any:
    """The study ``study_id`` with the changeable fields of ``spec``, or ``None`` when the
    two differ in anything else (the server compares the rest)."""
    current = client.get_study(study_id).data
    probe = dict(spec)
    changes: dict[str, Any] = {}
    for key in CHANGEABLE:
        old = getattr(current, key)
        if spec.get(key) is not None and spec[key] != old:
            changes[key] = spec[key]
        if old is None:
            probe.pop(key, None)
        else:
            probe[key] = old
    try:
        study = client.create_study(probe, if_exists="return")
    except Conflict:
        return None
    if not changes:  # the file leaves out a field that was changed later: keep it
        return study
    shown = ", ".join(
        f"{key} {getattr(current, key)!r} -> {value!r}" for key, value in changes.items()
    )
    click.echo(f"updating study {current.name!r} (id {current.id}): {shown}", err=True)
    return study.update(**changes)


@contextmanager
def local_server(db_path: str, status: bool) -> Iterator[Any]:
    """A client on an embedded server over ``db_path``, with a status line while it starts
    (a cold start takes seconds) unless ``status`` is false."""
    import tuneforge

    with ExitStack() as stack:
        with status_line(status, f"starting a local tuneforge server on {db_path}"):
            client = stack.enter_context(tuneforge.local(path=db_path))
        yield client


def fail_leftovers(study: Any) -> None:
    """Fail (``interrupted``, no retry) the trials an interrupted local run left running.

    On Ctrl-C each worker fails the trials it holds, but a suggest the interrupt cut off
    can still be answered after that, leaving a trial ``active`` with nobody to run it;
    its lease (10 minutes by default) would hold a slot of ``max_trials`` that long.
    The embedded server lives in this command, so on a local run nothing else can be
    running the study's trials when it starts.
    """
    for state in ("active", "stopping"):
        for trial in list(study.trials(state=state, page_size=1000)):
            try:
                trial.fail("interrupted", retry=False)
            except Conflict:  # it finished meanwhile
                continue


def run_locally(study: Any, workers: int, progress: bool) -> None:
    """Run a managed study's trials in local processes, then its held-out evaluation.

    An error a trial raised (a missing data file, say) comes back as
    :class:`~tuneforge.cli_errors.TrialError`.
    """
    from tuneforge.core.objective import has_holdout
    from tuneforge.worker.objective import LocalObjective, StudyContext
    from tuneforge.worker.tasks import evaluate_best

    objective = study.data.objective
    if objective is None:
        raise click.ClickException("the study has no managed objective (objective: null)")
    metric = objective_metric(study.data.model_dump())
    try:
        local = LocalObjective(objective, metric, study=StudyContext.of(study))
        study.optimize(local, n_workers=workers, progress=progress)
    except TuneforgeError:
        raise
    except Exception as exc:
        raise TrialError(exc) from exc
    best = study.refresh().best()
    if has_holdout(objective) and best is not None and not _evaluated(study.data, best.number):
        study.store_evaluation(evaluate_best(study))


def _evaluated(data: Any, number: int) -> bool:
    """Whether trial ``number`` already has its held-out score (a rerun of a finished study)."""
    evaluation = data.evaluation or {}
    return evaluation.get("state") == "done" and evaluation.get("trial_number") == number


def follow(study: Any, timeout: float | None, progress: bool, announce: bool = True) -> None:
    """Watch a study the team server's workers run until it and its evaluation are done,
    with a bar over the whole budget (best value, ETA) unless ``progress`` is false;
    ``announce`` says "resuming ..." for a study that already has trials."""
    from tuneforge.core.objective import has_holdout

    deadline = None if timeout is None else time.monotonic() + timeout
    data = study.refresh().data
    bar = ProgressBar(
        progress,
        data.max_trials,
        f"study {data.name}",
        done=budget_done(data.trial_counts),
        best=best_value(data),
        status="waiting for a worker",
    )
    note = resume_note(data) if announce else None
    if note is not None:
        bar.note(note)
    with bar:
        while True:
            counts = data.trial_counts
            evaluation = data.evaluation or {}
            bar.update(budget_done(counts), best_value(data), _server_status(data))
            waiting = has_holdout(data.objective) and evaluation.get("state") not in (
                "done",
                "failed",
            )
            if data.state == "completed" and not waiting:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise click.ClickException(f"study {data.id} did not finish within {timeout} s")
            time.sleep(1.0)
            data = study.refresh().data


def _server_status(data: Any) -> str:
    counts = data.trial_counts
    if data.state == "completed":
        return "held-out evaluation"
    running = counts.get("active", 0) + counts.get("stopping", 0)
    if running:
        return f"{running} running"
    return "waiting for a worker" if data.state == "active" else data.state


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
        return "\n".join([*lines, _no_best(study, data), where])
    if data.completion_reason == "max_failed_trials":
        lines.append(f"the study ended: max_failed_trials ({data.max_failed_trials}) reached")
    lines.append(f"best configuration (trial {best.number}): {dict(best.params)}")
    lines.append(f"CV {metric}: {best.values[metric]:.4f}")
    evaluation = data.evaluation or {}
    if evaluation.get("state") == "done":
        lines.append(f"held-out test {metric}: {evaluation['test_score']:.4f} (evaluated once)")
    elif evaluation.get("state") == "failed":
        lines.append(f"held-out evaluation failed: {evaluation.get('error')}")
    lines.append(where)
    return "\n".join(lines)


def _no_best(study: Any, data: Any) -> str:
    """Why there is no best trial: how the study ended and what its trials said."""
    text = "no completed trial"
    if data.state == "completed":
        text += f"; the study ended: {data.completion_reason or 'completed'}"
    for state in ("infeasible", "failed"):
        first = next(iter(study.trials(state, page_size=1)), None)
        if first is None or not first.data.reason:
            continue
        if first.data.reason in (data.completion_reason or ""):  # said already (same_error)
            return text
        return f"{text}; trial {first.number} {state}: {one_line(first.data.reason, 300)}"
    return text


def rerun_command(spec_file: str, options: dict[str, Any]) -> str:
    """The ``tuneforge run`` command line that continues the same study."""
    words = ["tuneforge", "run", spec_file]
    for option, value in options.items():
        if value is not None:
            words += [option, str(value)]
    return shlex.join(words)


def interrupted(study: Any, command: str, server_url: str | None) -> Interrupted:
    """The one line after Ctrl-C: where the study stands and the command that resumes it."""
    try:
        data = None if study is None else study.refresh().data
    except Exception:  # the server is gone already: say what can still be said
        data = None
    if data is None:
        return Interrupted(f"interrupted; run it again with: {command}")
    budget = f" of {data.max_trials}" if data.max_trials is not None else ""
    done = f"{budget_done(data.trial_counts)}{budget} trials done"
    if server_url:
        return Interrupted(
            f"stopped following study {data.name!r} ({done}); it keeps running on "
            f"{server_url}; follow it again with: {command}"
        )
    return Interrupted(
        f"interrupted study {data.name!r}: {done}, running trials marked failed "
        f"(interrupted); resume with: {command}"
    )


#: ``--workers/-w``: the local worker processes of ``run``, ``quickstart`` and ``nested-cv``.
workers_option = click.option(
    "--workers",
    "-w",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Local worker processes.",
)


@click.command()
@click.argument("spec_file")
@click.option(
    "--server",
    "server_url",
    default=None,
    callback=check_url,
    metavar="URL",
    help="Submit to this team server instead.",
)
@workers_option
@click.option(
    "--db",
    "db_path",
    default="tuneforge.db",
    show_default=True,
    help="SQLite file of the embedded server (local runs).",
)
@click.option(
    "--rename",
    default=None,
    metavar="NEW",
    help="Run the study under this name instead of the file's `name:` (e.g. when a study "
    "of that name exists with a different spec).",
)
@click.option(
    "--timeout", default=None, type=float, help="Give up following after this many seconds."
)
@click.option("--no-progress", is_flag=True, help="No progress bar or status lines.")
def run(
    spec_file: str,
    server_url: str | None,
    workers: int,
    db_path: str,
    rename: str | None,
    timeout: float | None,
    no_progress: bool,
) -> None:
    """Run the managed study in SPEC_FILE (YAML or JSON) to the end and print the result.

    Running the same file again resumes the study (raise `max_trials` in the file
    to give it more trials). Ctrl-C stops it and prints the command that resumes.
    """
    import tuneforge

    spec = load_spec(spec_file)
    if rename:
        spec["name"] = rename
        remember("study_name", rename)
    options = {
        "--server": server_url,
        "--db": None if server_url or db_path == "tuneforge.db" else db_path,
        "--rename": rename,
        "--workers": None if server_url or workers == 2 else workers,
    }
    command = rerun_command(spec_file, options)
    study = None
    try:
        if server_url:
            remember("url", server_url)
            remember("url_option", "--server")
            remember("url_flag", f" --url {server_url}")
            with tuneforge.Client(server_url) as client:
                study = open_study_for(client, spec).run()
                try:
                    follow(study, timeout, not no_progress)
                except KeyboardInterrupt:
                    raise interrupted(study, command, server_url) from None
                click.echo(summary(study, f"stored on {server_url}"))
            return
        remember("db", db_path)
        with local_server(db_path, not no_progress) as client:
            study = open_study_for(client, spec)
            fail_leftovers(study)
            try:
                run_locally(study, workers, not no_progress)
            except KeyboardInterrupt:
                raise interrupted(study, command, None) from None
            where = f"stored in {Path(db_path).resolve()} (browse it: tuneforge serve --db sqlite:///{db_path})"
            click.echo(summary(study, where))
    except KeyboardInterrupt:
        raise interrupted(study, command, server_url) from None


@click.command()
@workers_option
@click.option("--trials", default=30, show_default=True, help="Trials to run.")
@click.option("--db", "db_path", default="tuneforge.db", show_default=True, help="SQLite file.")
@click.option("--no-progress", is_flag=True, help="No progress bar or status lines.")
def quickstart(workers: int, trials: int, db_path: str, no_progress: bool) -> None:
    """Tune an SVM on the digits dataset locally: no services needed."""

    spec = quickstart_spec(trials)
    click.echo(
        f"tuning sklearn.svm.SVC on digits: {trials} trials, 5-fold stratified CV, 20% held out, "
        f"{workers} local workers",
        err=True,
    )
    start = time.monotonic()
    remember("db", db_path)
    with local_server(db_path, not no_progress) as client:
        study = client.create_study(spec)
        where = (
            f"stored in {Path(db_path).resolve()}; browse it with "
            f"`tuneforge serve --db sqlite:///{db_path}`"
        )
        try:
            run_locally(study, workers, not no_progress)
        except KeyboardInterrupt:
            data = study.refresh().data
            raise Interrupted(
                f"interrupted after {budget_done(data.trial_counts)} of {trials} trials; "
                f"study {data.name!r} is {where}"
            ) from None
        click.echo(summary(study, where))
    click.echo(f"done in {time.monotonic() - start:.0f} s", err=True)


@click.command("nested-cv")
@click.argument("spec_file")
@click.option("--outer", default=5, show_default=True, help="Outer folds.")
@click.option("--seed", default=0, show_default=True, help="Seed of the outer split.")
@click.option(
    "--server",
    "server_url",
    default=None,
    callback=check_url,
    metavar="URL",
    help="Run on this team server's workers.",
)
@workers_option
@click.option("--db", "db_path", default="tuneforge.db", show_default=True, help="SQLite file.")
@click.option("--timeout", default=None, type=float, help="Give up after this many seconds.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def nested_cv(
    spec_file: str,
    outer: int,
    seed: int,
    server_url: str | None,
    workers: int,
    db_path: str,
    timeout: float | None,
    no_progress: bool,
) -> None:
    """Nested cross-validation: an inner study per outer fold, scored on that fold."""
    import tuneforge

    spec = load_spec(spec_file)
    if server_url:
        remember("url", server_url)
        remember("url_option", "--server")
        with tuneforge.Client(server_url) as client:
            client.start_nested_cv(spec, outer, seed=seed, run=True)
            for fold in client.nested_cv_summary(spec["name"])["folds"]:
                click.echo(f"outer fold {fold['index']}: study {fold['study_id']}", err=True)
                # the folds run side by side: a later one has trials already
                follow(client.get_study(fold["study_id"]), timeout, not no_progress, False)
            click.echo(nested_report(client.nested_cv_summary(spec["name"])))
        return
    remember("db", db_path)
    with local_server(db_path, not no_progress) as client:
        started = client.start_nested_cv(spec, outer, seed=seed, run=False)
        for fold in started["folds"]:
            click.echo(f"outer fold {fold['index']}: tuning study {fold['study_id']}", err=True)
            run_locally(client.get_study(fold["study_id"]), workers, not no_progress)
        click.echo(nested_report(client.nested_cv_summary(spec["name"])))


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
