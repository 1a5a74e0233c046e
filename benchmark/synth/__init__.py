"""The embedded dataset: synthetic CZII-like copick projects from procedural particles and cryo-ET physics."""

from benchmark.synth.presets import PRESETS, Preset
from benchmark.synth.project import generate

__all__ = ["PRESETS", "Preset", "generate"]
