"""`bench tune`: the same tuning effort for every architecture, on val only.

Each entry with a search space (its plug-in's `search_space`, or the suite's `tune:` for its label, which replaces
it) gets the same number of trials in an Optuna study of its own: TPE proposes a config, the entry trains it for its
epoch bound (the calibrated one: the spaces hold settings a step's cost does not depend on, so every trial gets the
compute of the entry's row) on the train runs with the suite's first seed, and the trial's value is the val competition
score at thresholds tuned on val. The learning-curve points report to a median pruner, which stops a trial below the
median of the earlier ones at the same point, from half of the bound on. Test runs are never opened.

The studies live in `study.db` (SQLite) in the tuning folder, so a stopped tuning resumes: an interrupted trial is
marked failed and made again. The sampler is seeded per trial from the suite's seed, the label and the number of
trials finished, so the same command on the same data makes the same trials and the same choice, resumed or not.
The folder also holds `tuning.json` (what ran), `trials.csv` (every trial) and `tuned.yaml`: the suite with each
entry's best config, and its ensembles' members equal to the entry updated alike.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.evaluation import post_process, predict_picks
from benchmark.files import write_csv, write_json
from benchmark.interface import Tracker
from benchmark.job import fit_timed, load_samples, seeded_model
from benchmark.learning_curve import LearningCurve, curve_epochs, predicts_mid_fit, val_score
from benchmark.registry import ARCHITECTURES
from benchmark.results import utc_now
from benchmark.suite import SPLIT_FOLD, ArchitectureSpec, Suite
from metrics.resources import synchronizer

STUDY = "study.db"
RECORD = "tuning.json"
TRIALS = "trials.csv"
TUNED = "tuned.yaml"
PRUNING_POINTS = (0.25, 0.5, 0.75)  # where a trial reports to the pruner when the suite measures no curve


def search_space(spec: ArchitectureSpec, suite: Suite) -> dict[str, dict[str, Any]]:
    """An entry's search space: the suite's for its label, else its plug-in's."""
    return suite.tune.get(spec.label) or dict(getattr(ARCHITECTURES.get(spec.name), "search_space", {}))


def suggest(trial: optuna.Trial, name: str, space: dict[str, Any]) -> Any:
    """A value of one option: one of its choices, an integer (both bounds integers) or a float."""
    if "choices" in space:
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in space["choices"]]))
    if type(space["low"]) is int and type(space["high"]) is int:
        return trial.suggest_int(name, space["low"], space["high"], step=space.get("step", 1))
    return trial.suggest_float(name, space["low"], space["high"], log=space.get("log", False))


def sampler_for(seed: int, label: str, finished: int, trials: int) -> optuna.samplers.TPESampler:
    """TPE seeded by the suite's seed, the entry and the trials finished: a resumed study proposes what an
    uninterrupted one would. A third of the trials (at least two) sample at random before TPE models them."""
    seed = (seed * 1_000_003 + zlib.crc32(label.encode()) + finished) % 2**32
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, trials // 3))


class Tuning:
    """One tuning folder: its studies, what ran, and the tuned suite."""

    def __init__(self, folder: Path, suite: Suite, trials: int, device: str):
        self.folder, self.suite, self.trials, self.device = folder, suite, trials, device
        self.storage = f"sqlite:///{(folder / STUDY).resolve()}"
        self.seed = suite.seeds[0]

    def study(self, label: str, finished: int, bound: int | None = None) -> optuna.Study:
        """The entry's study, its sampler seeded for the next trial; its pruner judges a trial from half of the
        epoch bound on (a network from scratch scores near zero early, whatever it becomes)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            study_name=label,
            storage=self.storage,
            direction="maximize",
            sampler=sampler_for(self.seed, label, finished, self.trials),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=math.ceil((bound or 0) / 2)),
            load_if_exists=True,
        )

    def tune(self, specs: list[ArchitectureSpec], project: Project, echo: Callable[[str], None]) -> None:
        """Run every entry's missing trials, then write the trials table and the tuned suite."""
        samples = {name: load_samples(project, getattr(self.suite.folds[SPLIT_FOLD], name), self.suite.data)
                   for name in ("train", "val")}  # fmt: skip
        for spec in specs:
            space = search_space(spec, self.suite)
            study = self.study(spec.label, 0)
            for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # interrupted: made again below
            while (finished := len(_finished(study))) < self.trials:
                study = self.study(spec.label, finished, self.suite.budget_for(spec).epochs)
                trial = study.ask()
                self.run_trial(study, trial, spec, space, project, samples)
                echo(_progress(spec.label, study, self.trials))
        self.write(specs)

    def run_trial(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        spec: ArchitectureSpec,
        space: dict[str, dict],
        project: Project,
        samples: dict,
    ) -> None:
        """Train one proposed config and tell the study its val score, or that it was pruned or failed."""
        config = {**spec.config, **{name: suggest(trial, name, s) for name, s in space.items()}}
        trial_spec = replace(spec, config=config)
        try:
            value, tracker = self.objective(trial, trial_spec, project, samples)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        except BenchError as err:  # a config the plug-in refuses, or a failed fit: counted, not retried
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        trial.set_user_attr("train_seconds", tracker.train_seconds)
        study.tell(trial, value)

    def objective(
        self, trial: optuna.Trial, spec: ArchitectureSpec, project: Project, samples: dict
    ) -> tuple[float, Tracker]:
        """Fit on train for the entry's epoch bound, reporting the learning curve to the pruner; the val score."""
        model = seeded_model(spec, self.suite, project, self.device, self.seed)
        budget = self.suite.budget_for(spec)
        sync = synchronizer(self.device)
        tracker = Tracker(budget, sync)
        curve = LearningCurve(model, spec, project, samples, tracker, sync)

        def report(epochs: int) -> None:
            curve(epochs)
            trial.report(curve.rows[-1]["val_score"], epochs)
            trial.set_user_attr("curve", [(r["epoch"], r["val_score"]) for r in curve.rows])
            if trial.should_prune():
                raise optuna.TrialPruned(f"val {curve.rows[-1]['val_score']:.3f} after {epochs} epochs")

        if predicts_mid_fit(model):
            tracker.curve_epochs = curve_epochs(self.suite.learning_curve or PRUNING_POINTS, budget.epochs)
            tracker.at_curve_point = report
        with tempfile.TemporaryDirectory() as work:
            model.workdir = Path(work)
            fit_timed(model, samples, tracker, f"{spec.label} trial {trial.number}")
            found = [predict_picks(model, spec, sample, project, sync)[0] for sample in samples["val"]]
        processed = post_process(spec.postprocess, {"val": pd.concat(found)}, samples, project)
        return val_score(processed.candidates["val"], samples["val"], project), tracker

    def write(self, specs: list[ArchitectureSpec]) -> None:
        """trials.csv, and tuned.yaml: the suite file with each entry's best config."""
        rows, best = [], {}
        for spec in specs:
            study = self.study(spec.label, 0)
            for trial in study.get_trials(deepcopy=False):
                rows.append({"architecture": spec.label, "trial": trial.number, "state": trial.state.name,
                             "val_score": trial.value, "params": json.dumps(trial.params, sort_keys=True),
                             "pruned_at": trial.last_step if trial.state.name == "PRUNED" else None,
                             "train_seconds": trial.user_attrs.get("train_seconds"),
                             "seconds": _seconds(trial), "error": trial.user_attrs.get("error")})  # fmt: skip
            complete = [t for t in _finished(study) if t.value is not None and t.state.name == "COMPLETE"]
            if complete:
                chosen = max(complete, key=lambda t: (t.value, -t.number))
                best[spec.label] = (chosen, _decoded(chosen.params, search_space(spec, self.suite)))
        write_csv(self.folder / TRIALS, pd.DataFrame(rows))
        self.write_suite(specs, best)

    def write_suite(self, specs: list[ArchitectureSpec], best: dict[str, tuple]) -> None:
        """The suite file as written, with the chosen configs and a provenance header."""
        raw = yaml.safe_load(self.suite.path.read_text())
        originals = {spec.label: (spec.name, spec.config) for spec in specs}
        header = [f"# Tuned by `bench tune --suite {self.suite.name} --trials {self.trials}` into {self.folder}:",
                  f"# {self.trials} trials per architecture on val (TPE, median pruner on the learning curve), seed "
                  f"{self.seed}; test runs never read. Chosen (val competition score):"]  # fmt: skip
        for entry in raw["architectures"]:
            label = entry.get("label", entry["name"])
            if label in best:
                trial, params = best[label]
                entry["config"] = {**(entry.get("config") or {}), **params}
                header.append(f"#   {label}: val {trial.value:.3f}, trial {trial.number}: {json.dumps(params)}")
            for member in (entry.get("config") or {}).get("members", []):
                for tuned, (name, config) in originals.items():
                    if tuned in best and member.get("name") == name and (member.get("config") or {}) == config:
                        member["config"] = {**config, **best[tuned][1]}
        text = "\n".join(header) + "\n" + yaml.safe_dump(raw, sort_keys=False, width=120)
        (self.folder / TUNED).write_text(text)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards the study's number: complete, pruned, or failed by the plug-in (not the
    interrupted ones, which are made again)."""
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return [
        t for t in study.get_trials(deepcopy=False, states=done) if t.state.name != "FAIL" or "error" in t.user_attrs
    ]


def _decoded(params: dict[str, Any], space: dict[str, dict]) -> dict[str, Any]:
    """A trial's params as config values (choices were suggested as JSON text)."""
    return {name: json.loads(value) if "choices" in space.get(name, {}) else value for name, value in params.items()}


def _seconds(trial: optuna.trial.FrozenTrial) -> float | None:
    """How long a trial ran, start to end."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _progress(label: str, study: optuna.Study, trials: int) -> str:
    """One line: trials done of the entry and its best so far."""
    done = _finished(study)
    last = done[-1]
    values = [t.value for t in done if t.state.name == "COMPLETE" and t.value is not None]
    outcome = f"val {last.value:.3f}" if last.state.name == "COMPLETE" else last.state.name.lower()
    best = f", best val {max(values):.3f}" if values else ""
    return f"tune: {label}: trial {len(done)}/{trials} {outcome}{best}"


def start(suite: Suite, trials: int, pattern: str | None, root: Path, device: str, short_sha: str | None) -> Tuning:
    """A new tuning folder: results/<suite>-tune/<UTC time>_<sha>, with what it runs recorded."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = root / f"{suite.name}-tune" / f"{stamp}_{short_sha or 'nogit'}"
    folder.mkdir(parents=True, exist_ok=False)
    record = {"suite": suite.name, "suite_path": str(suite.path), "trials": trials, "arch": pattern,
              "device": device, "seed": suite.seeds[0], "started": utc_now()}  # fmt: skip
    write_json(folder / RECORD, record)
    return Tuning(folder, suite, trials, device)


def resume_tuning(folder: Path, suite: Suite) -> Tuning:
    """An existing tuning folder, continued with the settings it was started with."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BenchError(f"'{folder}' is not a tuning folder ({err}); pass one that bench tune made") from None
    if record["suite"] != suite.name:
        raise BenchError(f"'{folder}' tuned suite {record['suite']}, not {suite.name}; pass --suite {record['suite']}")
    return Tuning(folder, suite, record["trials"], record["device"])
