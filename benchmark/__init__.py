"""cryoet-bench: a benchmark harness for cryo-ET particle-picking architectures."""

__version__ = "0.1.0"
