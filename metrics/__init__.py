"""Scoring particle picks: the CZII competition metric."""

from metrics.fbeta import BETA, DISTANCE_MULTIPLIER, MetricResult, count_matches, f_beta, score_picks

__all__ = ["BETA", "DISTANCE_MULTIPLIER", "MetricResult", "count_matches", "f_beta", "score_picks"]
