"""The README's plug-in example is the package the tests install and run, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLE = ROOT / "tests" / "plugins" / "example_plugin"


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in a language."""
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_readme_plugin_is_the_package_the_conformance_tests_install():
    assert (EXAMPLE / "cryoet_bench_example" / "__init__.py").read_text() in blocks("python")
    assert (EXAMPLE / "pyproject.toml").read_text() in blocks("toml")
