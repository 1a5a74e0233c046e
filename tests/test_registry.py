"""The timm-style registry: decorator registration, wildcards, suggestions, failing plug-ins skipped."""

from __future__ import annotations

import sys

import pytest

from benchmark.errors import BenchError
from benchmark.registry import ARCHITECTURES, Registry


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry over a throwaway built-in package with one good and one broken plug-in module."""
    name = f"fake_plugins_{tmp_path.name}"  # a fresh module name per test: imports are cached
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from test_registry import REGISTRY\n\n@REGISTRY.register('unet-small')\ndef unet_small(**kw):\n    return kw\n"
    )
    (package / "broken.py").write_text("raise ImportError('needs a library that is not installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("architecture", name, "cryoet_bench.no_such_group")
    monkeypatch.setattr(sys.modules[__name__], "REGISTRY", registry, raising=False)
    return registry


def test_discovery_registers_good_modules_and_records_broken_ones(registry):
    assert registry.names() == ["unet-small"]
    assert registry.sources["unet-small"] == "cryoet-bench"
    assert registry.failures == {
        f"{registry.builtin_package}.broken": "ImportError: needs a library that is not installed"
    }


def test_names_accept_wildcards_and_get_suggests(registry):
    assert registry.names("unet-*") == ["unet-small"]
    assert registry.names("yolo*") == []
    with pytest.raises(BenchError, match="unknown architecture 'unet-smal' \\(did you mean unet-small\\?\\)"):
        registry.get("unet-smal")


def test_registering_two_factories_under_one_name_is_refused():
    registry = Registry("architecture", "architectures", "none")
    registry.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(lambda: 2)


def test_builtin_architectures_are_registered():
    assert "matched-filter" in ARCHITECTURES.names()
