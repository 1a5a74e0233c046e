"""timm-style registries: a decorator on a plain factory, discovery of built-ins and entry points."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from benchmark.errors import BenchError
from benchmark.files import SAFE_NAME

BUILTIN_SOURCE = "cryoet-bench"


@dataclass
class Registry:
    """Named factories of one kind, with where each came from and which plug-ins failed to import."""

    kind: str
    builtin_package: str
    entry_point_group: str
    factories: dict[str, Callable[..., Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)  # the module whose import registered each name
    failures: dict[str, str] = field(default_factory=dict)
    _discovered: bool = False
    _loading: tuple[str, str] = (BUILTIN_SOURCE, "")

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register a factory (a class or a function) under `name`."""

        if not SAFE_NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be letters, digits, '.', '_' and '-' (it names folders)")

        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self.factories and self.factories[name] is not factory:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self.factories[name] = factory
            self.sources[name], self.modules[name] = self._loading
            return factory

        return decorate

    def discover(self) -> None:
        """Import the built-in plug-in modules and the entry points; a failing import is recorded, not fatal."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.builtin_package)
        for module in pkgutil.iter_modules(package.__path__, f"{self.builtin_package}."):
            if not module.ispkg:  # a subpackage holds parts (architectures.parts), not plug-ins
                self._load(module.name, BUILTIN_SOURCE, module.name)
        for point in entry_points(group=self.entry_point_group):
            self._load(point.name, point.dist.name if point.dist is not None else point.value, point.module)

    def load(self, name: str, module: str) -> Callable[..., Any]:
        """The factory of `name`, importing only `module` (which registered it) rather than every plug-in."""
        if name not in self.factories and module:
            self._load(module, self.sources.get(name, module), module)
        return self.get(name)

    def _load(self, label: str, source: str, module: str) -> None:
        """Import one plug-in module, attributing what it registers to `source`."""
        self._loading = (source, module)
        try:
            importlib.import_module(module)
        except Exception as err:  # a broken plug-in must not take the others down
            self.failures[label] = f"{type(err).__name__}: {err}"
        finally:
            self._loading = (BUILTIN_SOURCE, "")

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard pattern, sorted."""
        self.discover()
        return sorted(n for n in self.factories if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str) -> Callable[..., Any]:
        """The factory of `name` (discovering every plug-in when it is not yet known), or a one-line error suggesting
        close names."""
        if name not in self.factories:
            self.discover()
        if name not in self.factories:
            close = difflib.get_close_matches(name, list(self.factories), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            failed = "".join(f"; plug-in '{plugin}' failed to import ({why})" for plugin, why in self.failures.items())
            raise BenchError(f"unknown {self.kind} '{name}'{hint}; `bench list` shows the registered ones{failed}")
        return self.factories[name]


ARCHITECTURES = Registry("architecture", "architectures", "cryoet_bench.architectures")
POSTPROCESSING = Registry("post-processing step", "benchmark.postprocessing", "cryoet_bench.postprocessing")

register = ARCHITECTURES.register
register_postprocess = POSTPROCESSING.register
