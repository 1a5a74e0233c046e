"""Post-processing steps: registered by name, composed per architecture in suite files, fitted before they apply.

A step is a plain function ``step(picks, tomogram, particles, **params) -> picks`` (nothing to learn), or a `Step`
subclass, which may fit parameters on the train runs (and tune them on the val runs' candidates) before it is applied.
Either returns new picks with the columns it was given.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pydantic

from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Sample
from benchmark.particles import ParticleTable
from benchmark.registry import POSTPROCESSING
from metrics.thresholds import tune_thresholds


@dataclass(frozen=True)
class StepData:
    """What a step may fit on: the train and val runs (tomograms and ground truth) and the val runs' candidates as
    they reach the step (column `experiment` names the run)."""

    train: Sequence[Sample]
    val: Sequence[Sample]
    val_candidates: pd.DataFrame

    def tuned(self, candidates: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
        """Each type's score threshold tuned on val for these val candidates, with its val F4."""
        truth = pd.concat([sample.picks for sample in self.val], ignore_index=True)
        return tune_thresholds(truth, candidates, particles)

    def val_score(self, candidates: pd.DataFrame, particles: ParticleTable) -> float:
        """The competition score of val candidates with each type's threshold tuned on val: what a step tunes by."""
        tuned = self.tuned(candidates, particles).set_index("particle_type")["f4"]
        weights = {p.name: p.weight for p in particles}
        return sum(weights[name] * f4 for name, f4 in tuned.items()) / sum(weights.values())


class Step:
    """A post-processing step with state: built from the particle table and the suite's parameters, fitted once per
    job, then applied to each tomogram's candidates. Subclass, take the parameters as keyword arguments, register."""

    def __init__(self, particles: ParticleTable) -> None:
        self.particles = particles

    def fit(self, data: StepData) -> None:
        """Learn from the train runs (and tune on val); the default learns nothing."""

    def fitted(self) -> dict[str, Any]:
        """What the fit chose, stored with the results (nothing by default)."""
        return {}

    def restore(self, fitted: dict[str, Any]) -> None:
        """Take back what `fitted` returned, so that a saved job's steps apply without fitting again (`bench
        predict`); a step that fitted anything must override this (the default refuses, rather than apply the
        step unfitted)."""
        if fitted:
            raise BenchError(
                f"post-processing step {type(self).__name__} fitted {', '.join(sorted(fitted))} but has no restore() "
                "to take them back, so a saved job's steps cannot be applied without fitting again; add one"
            )

    def __call__(self, picks: pd.DataFrame, tomogram: Tomogram) -> pd.DataFrame:
        """The tomogram's candidates after the step."""
        raise NotImplementedError


class FunctionStep(Step):
    """A plain function step: nothing to fit."""

    def __init__(self, particles: ParticleTable, function: Callable[..., pd.DataFrame], params: dict[str, Any]):
        super().__init__(particles)
        self.function, self.params = function, params

    def __call__(self, picks: pd.DataFrame, tomogram: Tomogram) -> pd.DataFrame:
        return self.function(picks, tomogram, self.particles, **self.params)


@dataclass
class Pipeline:
    """A suite's list of steps, built and fitted in order, applied in order."""

    steps: list[Step]

    @classmethod
    def build(cls, entries: Sequence[dict[str, Any]], particles: ParticleTable) -> Pipeline:
        """Build each entry ({"step": name, **params}), naming a parameter the step does not take."""
        return cls([build_step(entry, particles) for entry in entries])

    def fit(self, data: StepData) -> None:
        """Fit each step on the val candidates as the steps before it leave them."""
        candidates = data.val_candidates
        for index, step in enumerate(self.steps):
            step.fit(replace(data, val_candidates=candidates))
            if index + 1 < len(self.steps):
                candidates = apply_by_run(step, candidates, data.val)

    def __call__(self, picks: pd.DataFrame, tomogram: Tomogram) -> pd.DataFrame:
        """Apply every step to one tomogram's candidates."""
        for step in self.steps:
            picks = step(picks, tomogram)
        return picks


def build_step(entry: dict[str, Any], particles: ParticleTable) -> Step:
    """One registered step with its parameters (a function is wrapped as a `FunctionStep`)."""
    factory = POSTPROCESSING.get(entry["step"])
    params = {key: value for key, value in entry.items() if key != "step"}
    is_class = isinstance(factory, type) and issubclass(factory, Step)
    signature = list(inspect.signature(factory).parameters.values())[1 if is_class else 3 :]
    takes = [p.name for p in signature if p.kind is not p.VAR_KEYWORD]
    any_name = any(p.kind is p.VAR_KEYWORD for p in signature)
    unknown = [] if any_name else sorted(set(params) - set(takes))
    if unknown:
        accepted = ", ".join(takes) or "none"
        raise BenchError(
            f"post-processing step '{entry['step']}' has no parameter '{unknown[0]}' (it takes: {accepted}); "
            "fix the suite file"
        )
    check_types(entry["step"], factory.__init__ if is_class else factory, params)
    return factory(particles, **params) if is_class else FunctionStep(particles, factory, params)


def check_types(step: str, function: Callable[..., Any], params: dict[str, Any]) -> None:
    """Refuse a parameter whose value does not have its annotated type (strictly: "far" is not a float, nor true an
    int; a list may stand for a tuple), so a suite's typo fails before anything runs rather than after training.
    Annotations that do not resolve (a third-party step's) are not checked."""
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError):
        return
    for name, value in params.items():
        if name not in hints:
            continue
        try:
            _validate(hints[name], value)
        except pydantic.ValidationError as err:
            hint = hints[name]
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("collections.abc.", "")
            raise BenchError(
                f"post-processing step '{step}': parameter '{name}' is {value!r}, not {expected} "
                f"({err.errors()[0]['msg']}); fix the suite file"
            ) from None
        except pydantic.PydanticSchemaGenerationError:  # an annotation pydantic cannot check
            continue


def _validate(hint: Any, value: Any) -> None:
    """Check a value against an annotation strictly, except that a YAML list may stand for a tuple."""
    adapter = pydantic.TypeAdapter(hint)
    try:
        adapter.validate_python(value, strict=True)
    except pydantic.ValidationError:
        if not isinstance(value, list):
            raise
        adapter.validate_python(tuple(value), strict=True)


def apply_by_run(step: Callable[[pd.DataFrame, Tomogram], pd.DataFrame], candidates, samples) -> pd.DataFrame:
    """Apply a step (or pipeline) to candidates of several runs, tomogram by tomogram, keeping `experiment`."""
    parts = [
        step(candidates[candidates["experiment"] == s.run].reset_index(drop=True), s.tomogram).assign(experiment=s.run)
        for s in samples
    ]
    return pd.concat(parts, ignore_index=True) if parts else candidates
