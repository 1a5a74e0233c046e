"""The numbers of the learning curves, from the stored curves table only: per row and fraction of its epoch bound,
the val competition score and the training seconds spent by then, and what they say about time to accuracy. Nothing
here formats; `benchmark.report.document` and `benchmark.report.plots` render these numbers."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.results import JOB

END = 1_000_000  # the place of a row's last curve point (the end of its training), after any other


def curve_runs(curves: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The curve points of the rows in `order` (others: ablation variants, rows without a result, are left out),
    each job's points by fraction, the rows in `order`."""
    found = curves[curves["architecture"].isin(order)].astype({"fraction": float, "train_seconds": float,
                                                                "val_score": float})  # fmt: skip
    rank = found["architecture"].map({row: i for i, row in enumerate(order)})
    return found.assign(rank=rank).sort_values(["rank", *JOB[1:], "fraction"]).drop(columns="rank")


def curve_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Per row and fraction (in the order of `runs`): its epochs, the mean training seconds and val score over its
    jobs, the score's std over them (0 for one job), how many jobs reached the fraction, and its place among the row's
    points (`place`: 0, 1, ... before the row's last point, END for the last, the end of its training)."""
    points = runs.groupby(["architecture", "fraction"], sort=False).agg(
        epoch=("epoch", "max"),
        seconds=("train_seconds", "mean"),
        score=("val_score", "mean"),
        spread=("val_score", "std"),
        jobs=("val_score", "size"),
    )
    points = points.fillna({"spread": 0.0}).reset_index()
    place = points.groupby("architecture", sort=False).cumcount()
    last = place == points.groupby("architecture", sort=False)["fraction"].transform("size") - 1
    return points.assign(place=place.where(~last, END))


@dataclass(frozen=True)
class Pace:
    """What the curves say: the highest val score every row reaches (`target`, the lowest of their best mean
    scores) and the training seconds each first reached it in, the order at each row's last point, and per row the
    gain of val score per training second over its last step (absent for a row of one point)."""

    target: float
    seconds_to_target: dict[str, float]
    final_order: list[str]
    final_score: dict[str, float]
    last_gain: dict[str, float]

    @classmethod
    def of(cls, points: pd.DataFrame) -> Pace:
        """The pace of the rows of `points` (from `curve_points`)."""
        rows = list(dict.fromkeys(points["architecture"]))
        by_row = {row: points[points["architecture"] == row] for row in rows}
        target = min(found["score"].max() for found in by_row.values())
        reached = {row: float(found.loc[found["score"] >= target, "seconds"].iloc[0]) for row, found in by_row.items()}
        final = {row: float(found["score"].iloc[-1]) for row, found in by_row.items()}
        gains = {row: _last_gain(found) for row, found in by_row.items() if len(found) > 1}
        return cls(target, reached, sorted(rows, key=lambda row: -final[row]), final, gains)

    @property
    def fastest(self) -> str:
        """The row that reached the target in the fewest training seconds."""
        return min(self.seconds_to_target, key=self.seconds_to_target.__getitem__)

    def closing(self) -> list[tuple[str, str, float]]:
        """The pairs a longer budget could reorder: (lower, upper, seconds) where the row lower at the end still
        gained more val score per training second over its last step than the row above it, and the training
        seconds more it would take to pass it if both kept those rates; soonest first."""
        order, gain = self.final_order, self.last_gain
        pairs = []
        for i, high in enumerate(order):
            for low in order[i + 1 :]:
                faster = gain.get(low, 0.0) - max(gain.get(high, 0.0), 0.0)
                if faster > 0:
                    pairs.append((low, high, (self.final_score[high] - self.final_score[low]) / faster))
        return sorted(pairs, key=lambda pair: pair[2])


def _last_gain(found: pd.DataFrame) -> float:
    """The change of mean val score per training second between a row's last two points."""
    before, last = found.iloc[-2], found.iloc[-1]
    seconds = last["seconds"] - before["seconds"]
    return float((last["score"] - before["score"]) / seconds) if seconds > 0 else 0.0
