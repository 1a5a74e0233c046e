"""The copick data layer: runs, tomograms, ground-truth picks and prediction write-back, all through copick."""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import json
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import copick
import numpy as np
import pandas as pd
import pydantic
import zarr
from copick.util.ome import get_voxel_size_from_zarr

from benchmark.conventions import CZII_VOXEL_SIZE, DEFAULT_TOMO_TYPE, GROUND_TRUTH, VOXEL_TOLERANCE
from benchmark.coords import XYZ, inside_volume
from benchmark.errors import BenchError, BenchWarning
from benchmark.particles import Metric, ParticleTable

PORTAL_URL = "https://graphql.cryoetdataportal.czscience.com/graphql"
PORTAL_TIMEOUT = 5.0  # seconds to wait for the portal to answer before saying it cannot be reached


@dataclass
class ReadClock:
    """Seconds spent in `Tomogram.read`, so the runner can split a prediction's time into reading and the model."""

    seconds: float = 0.0


@dataclass(frozen=True)
class Tomogram:
    """A lazily read tomogram pyramid; level 0 is full resolution, arrays are (z, y, x)."""

    run: str
    tomo_type: str
    voxel_size: float
    levels: tuple[zarr.Array, ...]
    reads: ReadClock = field(default_factory=ReadClock, compare=False, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape (z, y, x) of the full-resolution level."""
        return tuple(self.levels[0].shape)

    def level_voxel_size(self, level: int) -> float:
        """Voxel size in Å of a pyramid level (each level halves the resolution, rounding odd sizes up)."""
        return self.voxel_size * 2**level

    def read(self, level: int = 0, region: tuple[slice, slice, slice] | None = None) -> np.ndarray:
        """Read a level (or a (z, y, x) region of it) as float32, refusing non-finite values and damaged chunks."""
        if not 0 <= level < len(self.levels):
            raise BenchError(f"{self.run}/{self.tomo_type} has pyramid levels 0-{len(self.levels) - 1}, not {level}")
        started = time.perf_counter()
        try:
            array = np.asarray(self.levels[level][region or ...], dtype=np.float32)
        except DECODE_ERRORS:
            self.check(level)  # names the chunk that cannot be decoded
            raise
        finite = np.isfinite(array).all()
        self.reads.seconds += time.perf_counter() - started
        if not finite:
            self.check(level)  # names the chunk
            raise BenchError(f"{self.name(level)} contains NaN or infinite values; repair or regenerate the volume")
        return array

    def check(self, level: int) -> None:
        """Read a level chunk by chunk (never the whole volume at once): every chunk decodes and is finite."""
        array = self.levels[level]
        for index in chunk_indices(array):
            try:
                block = array.get_block_selection(index)
            except DECODE_ERRORS as err:
                reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise BenchError(
                    f"{self.name(level)}: zarr chunk {chunk_path(array, index)} cannot be decoded "
                    f"({type(err).__name__}: {reason}); re-download or regenerate the volume"
                ) from None
            if not np.isfinite(block).all():
                raise BenchError(
                    f"{self.name(level)}: zarr chunk {chunk_path(array, index)} contains NaN or infinite values; "
                    "repair or regenerate the volume"
                )

    def name(self, level: int) -> str:
        """How errors name one level of this tomogram."""
        return f"tomogram {self.run}/{self.tomo_type} level {level}"


def _suggest(name: str, choices: list[str]) -> str:
    """A ' (did you mean ...?)' hint for a mistyped name, or ''."""
    close = difflib.get_close_matches(name, choices, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _open_root(config: Path):
    """Open a copick root, turning every way a config can be wrong into a BenchError."""
    if not config.is_file():
        raise BenchError(
            f"copick config '{config}' not found; pass --data with the path to a copick JSON config "
            "(or create one with: bench data synth --preset demo --out DIR)"
        )
    try:
        text = config.read_text()
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise BenchError(f"copick config '{config}' is not valid JSON ({reason}); fix the file") from None
    if isinstance(data, dict) and data.get("config_type") == "cryoet_data_portal":
        _require_portal(config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _copick_root(text, data)
    except (pydantic.ValidationError, ValueError, TypeError, KeyError, RecursionError) as err:
        raise BenchError(
            f"copick config '{config}' is malformed: {_parse_reason(err)}; see copick's config format"
        ) from None


def _require_portal(config: Path) -> None:
    """Refuse within PORTAL_TIMEOUT a CryoET Data Portal config where the portal cannot be reached (copick would retry
    for most of a minute, then fail with a traceback)."""
    url = urlsplit(_portal_url())
    why = unreachable(url.hostname, url.port or 443, PORTAL_TIMEOUT)
    if why:
        raise BenchError(
            f"copick config '{config}' reads the CryoET Data Portal, which needs network access, and {url.hostname} "
            f"cannot be reached from here ({why}); run where it can, or download the data and use a filesystem "
            "copick config"
        )


def _portal_url() -> str:
    """The endpoint copick's portal client uses (the client has no public name for it), else its known value."""
    try:
        from cryoet_data_portal import _client

        return _client.DEFAULT_URL
    except (ImportError, AttributeError):
        return PORTAL_URL


def unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to host:port fails, the name lookup included, within `timeout` seconds (a lookup can
    block far longer than a connection's own timeout); None when it succeeds."""
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or str(err))

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _copick_root(text: str, data: object):
    """copick's root for a config: a filesystem project through copick's filesystem classes directly, as
    `copick.from_string` (copick 1.x) does for it, which spares every process the half second that function spends
    importing the Data Portal client; other config types through it."""
    if not isinstance(data, dict) or data.get("config_type") != "filesystem":
        return copick.from_string(text)
    from copick.impl.filesystem import CopickConfigFSSpec, CopickRootFSSpec

    return CopickRootFSSpec(CopickConfigFSSpec(**data))


class Project:
    """A copick project opened for benchmarking: its particles (with a suite's metric settings), runs, tomograms and
    picks."""

    def __init__(self, config: str | Path, metric: Metric | None = None):
        self.config = Path(config)
        self.root = _open_root(self.config)
        self.particles = ParticleTable.from_copick(self.root)
        if metric is not None:
            self.particles = self.particles.with_metric(metric)

    def overlay_folder(self) -> Path | None:
        """The local folder of the project's overlay root, where picks are written (None when it is not local)."""
        root = str(self.root.config.overlay_root or "")
        return Path(root.removeprefix("local://")) if root.startswith(("local://", "/")) else None

    @cached_property
    def run_names(self) -> list[str]:
        """Names of all runs, sorted."""
        names = sorted(run.name for run in self.root.runs)
        if not names:
            raise BenchError(
                f"copick project '{self.config}' has no runs; check overlay_root/static_root in the config"
            )
        return names

    def run(self, name: str):
        """The copick run of that name."""
        if name not in self.run_names:
            raise BenchError(
                f"run '{name}' is not in copick project '{self.config}'{_suggest(name, self.run_names)}; "
                f"runs: {', '.join(self.run_names)}"
            )
        return self.root.get_run(name)

    def voxel_spacing(self, run: str, voxel_size: float, tolerance: float = VOXEL_TOLERANCE):
        """The copick voxel spacing of a run closest to voxel_size, within a relative tolerance."""
        spacings = self.run(run).voxel_spacings
        if not spacings:
            raise BenchError(
                f"run '{run}' has no tomograms: none were found under static_root {self.root.config.static_root} "
                f"or overlay_root {self.root.config.overlay_root}; check them in {self.config}"
            )
        matches = [vs for vs in spacings if abs(vs.voxel_size - voxel_size) <= tolerance * voxel_size]
        if not matches:
            have = ", ".join(f"{vs.voxel_size:g}" for vs in spacings) or "none"
            raise BenchError(
                f"run '{run}' has no voxel spacing within {tolerance:.0%} of {voxel_size:g} Å (it has: {have}); "
                "pass the voxel size the data were reconstructed at"
            )
        return min(matches, key=lambda vs: abs(vs.voxel_size - voxel_size))

    def tomogram(
        self,
        run: str,
        tomo_type: str = DEFAULT_TOMO_TYPE,
        voxel_size: float = CZII_VOXEL_SIZE,
        tolerance: float = VOXEL_TOLERANCE,
    ) -> Tomogram:
        """Open a tomogram lazily; its voxel size is the OME-Zarr scale when present, else copick's."""
        spacing = self.voxel_spacing(run, voxel_size, tolerance)
        found = spacing.get_tomograms(tomo_type)
        if not found:
            types = sorted({t.tomo_type for t in spacing.tomograms})
            raise BenchError(
                f"run '{run}' has no '{tomo_type}' tomogram at {spacing.voxel_size:g} Å"
                f"{_suggest(tomo_type, types)}; available types: {', '.join(types) or 'none'}"
            )
        return open_tomogram(found[0], run, spacing.voxel_size)

    def ground_truth(
        self,
        run: str,
        user_id: str = GROUND_TRUTH[0],
        session_id: str = GROUND_TRUTH[1],
        shape_check: Tomogram | None = None,
    ) -> pd.DataFrame:
        """Picks of a user and session (wildcards allowed: the Data Portal gives each annotation a session id)
        as a table of Å (x, y, z); warns about picks outside the volume."""
        frames = []
        for picks in self.run(run).get_picks(user_id=user_id):
            if not fnmatch.fnmatchcase(picks.session_id, session_id):
                continue
            self.particles.check_names([picks.pickable_object_name], f"picks file {_picks_location(picks)}")
            xyz = _load_positions(picks)
            frame = pd.DataFrame(xyz, columns=XYZ)
            frame.insert(0, "particle_type", picks.pickable_object_name)
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["particle_type", *XYZ])
        table.insert(0, "experiment", run)
        table = table.astype({c: float for c in XYZ})
        if shape_check is not None:
            outside = ~inside_volume(table[XYZ].to_numpy(), shape_check.shape, shape_check.voxel_size)
            if outside.any():
                warnings.warn(
                    f"{run}: {int(outside.sum())} of {len(table)} picks of {user_id}/{session_id} lie outside "
                    f"the {'x'.join(map(str, shape_check.shape))} volume; they are kept and count as misses",
                    BenchWarning,
                    stacklevel=2,
                )
        return table

    def require_ground_truth(self, run: str, user_id: str, session_id: str) -> None:
        """Refuse a run without a single pick of the ground-truth (user, session), naming the pairs it has."""
        if self.ground_truth(run, user_id, session_id).empty:
            raise BenchError(self._no_ground_truth(run, user_id, session_id))

    def _no_ground_truth(self, run: str, user_id: str, session_id: str) -> str:
        """What to say of a run without ground truth of (user, session): who its picks are by, and the fix."""
        pairs = sorted({f"{p.user_id}/{p.session_id}" for p in self.run(run).get_picks()})
        return (
            f"run '{run}' has no ground-truth picks of {user_id}/{session_id}; its picks files are by "
            f"{', '.join(pairs) or 'nobody'}; set data.user_id and data.session_id in the suite "
            "(bench data info --user-id U --session-id S shows the counts)"
        )

    def solution(self, runs: list[str], user_id: str = GROUND_TRUTH[0], session_id: str = GROUND_TRUTH[1]):
        """Ground truth of several runs in the competition's solution layout."""
        return pd.concat([self.ground_truth(run, user_id, session_id) for run in runs], ignore_index=True)

    def write_picks(
        self, run: str, picks: pd.DataFrame, architecture: str, session_id: str, user_id: str | None = None
    ) -> None:
        """Store predictions as copick picks of `user_id` (default `bench-<architecture>`), one picks file per
        particle type (replacing any there); session "0" is refused."""
        if str(session_id) == "0":
            raise BenchError("session id '0' is reserved for ground truth by copick tools; use another one")
        self.particles.check_names(picks["particle_type"].unique(), "the predictions")
        copick_run = self.run(run)
        for particle in self.particles:
            rows = picks[picks["particle_type"] == particle.name]
            target = copick_run.new_picks(
                particle.name, session_id=str(session_id), user_id=user_id or f"bench-{architecture}", exist_ok=True
            )
            scores = rows["score"].to_numpy(float) if "score" in rows else None
            target.from_numpy(rows[XYZ].to_numpy(float).reshape(-1, 3), scores=scores)

    def describe(self, ground_truth: tuple[str, str] = GROUND_TRUTH) -> list[dict]:
        """Per run: voxel spacings with their tomograms (type, shape, levels) and ground-truth counts."""
        described = []
        for name in self.run_names:
            run = self.run(name)
            spacings = []
            for spacing in sorted(run.voxel_spacings, key=lambda vs: vs.voxel_size):
                tomograms = [
                    open_tomogram(t, name, spacing.voxel_size)
                    for t in sorted(spacing.tomograms, key=lambda t: t.tomo_type)
                ]
                spacings.append(
                    {
                        "copick_voxel_size": spacing.voxel_size,
                        "tomograms": [
                            {
                                "type": t.tomo_type,
                                "voxel_size": t.voxel_size,
                                "shape": list(t.shape),
                                "levels": len(t.levels),
                            }
                            for t in tomograms
                        ],
                    }
                )
            truth = self.ground_truth(name, *ground_truth)
            if truth.empty:
                warnings.warn(self._no_ground_truth(name, *ground_truth), BenchWarning, stacklevel=2)
            counts = truth["particle_type"].value_counts()
            described.append(
                {
                    "run": name,
                    "voxel_spacings": spacings,
                    "ground_truth": {p: int(counts.get(p, 0)) for p in self.particles.names},
                }
            )
        return described


def open_tomogram(copick_tomogram, run: str, copick_voxel_size: float) -> Tomogram:
    """Wrap a copick tomogram's OME-Zarr pyramid without reading voxels; refuse metadata that does not parse, a
    scale that contradicts copick's voxel spacing, levels that are missing, not 3D, empty, not real numbers, or
    missing chunks (zarr would read them as zeros)."""
    name = f"tomogram {run}/{copick_tomogram.tomo_type}"
    store = copick_tomogram.zarr()
    try:
        group = zarr.open_group(store, mode="r")
        multiscales = group.attrs.asdict().get("multiscales")
    except zarr.errors.GroupNotFoundError:
        raise BenchError(
            f"{name}: {_location(store)} is not a zarr group (no .zgroup); re-download or regenerate the volume"
        ) from None
    except METADATA_ERRORS as err:
        raise BenchError(_unreadable_metadata(name, store, err)) from None
    try:
        paths = [d["path"] for d in multiscales[0]["datasets"]]
        voxel_size = get_voxel_size_from_zarr(group)
    except (KeyError, IndexError, TypeError, ValueError):  # no (usable) OME-Zarr multiscales: every array, in order
        paths = sorted(group.array_keys(), key=lambda k: int(k) if k.isdigit() else k)
        voxel_size = copick_voxel_size
    if not paths:
        raise BenchError(f"{name} holds no arrays; regenerate it")
    if abs(voxel_size - copick_voxel_size) > VOXEL_TOLERANCE * copick_voxel_size:
        raise BenchError(
            f"{name}: its OME-Zarr scale says {voxel_size:g} Å per voxel but it sits in copick's "
            f"{copick_voxel_size:g} Å voxel spacing (more than {VOXEL_TOLERANCE:.0%} apart); fix the scale in its "
            ".zattrs or move it to the voxel spacing it was reconstructed at"
        )
    levels = tuple(_level(group, str(path), level, name, store) for level, path in enumerate(paths))
    return Tomogram(run, copick_tomogram.tomo_type, float(voxel_size), levels)


#: what zarr (and the json module under it) raises for metadata that is not JSON, is nested too deep to parse, or is
#: JSON but not zarr's (a list, a shape of words)
METADATA_ERRORS = (
    ValueError, TypeError, AttributeError, UnicodeDecodeError, RecursionError, zarr.errors.MetadataError,
)  # fmt: skip


def _level(group: zarr.Group, path: str, level: int, name: str, store) -> zarr.Array:
    """One pyramid level, checked: present, readable metadata, a 3D volume of real numbers with every chunk."""
    where = f"{name} level {level}"
    try:
        array = group[path]
        if isinstance(array, zarr.Array):  # metadata that parses as JSON but is not zarr's fails here
            _ = array.shape, array.dtype, array.cdata_shape
    except KeyError:
        raise BenchError(
            f"{where}: its OME-Zarr multiscales names array '{path}', which is not in {_location(store)}; "
            "re-download or regenerate the volume (or fix the multiscales in its .zattrs)"
        ) from None
    except METADATA_ERRORS as err:
        raise BenchError(_unreadable_metadata(name, store, err)) from None
    if not isinstance(array, zarr.Array) or array.ndim != 3 or 0 in array.shape:
        shape = "x".join(map(str, array.shape)) if isinstance(array, zarr.Array) else "a group"
        raise BenchError(
            f"{where} is {shape}, not a 3D (z, y, x) volume with voxels; a tomogram level is one 3D array: "
            "regenerate the volume"
        )
    if array.dtype.kind not in "iuf":
        raise BenchError(
            f"{where} holds {array.dtype} values; tomograms are real numbers (integer or float): convert the volume"
        )
    missing = [i for i in chunk_indices(array) if _chunk_key(array, i) not in array.store]
    if missing:
        raise BenchError(
            f"{where} is missing {len(missing)} of {array.nchunks} zarr chunks (first: "
            f"{chunk_path(array, missing[0])}), which would read as zeros; re-download or regenerate the volume"
        )
    return array


def _location(store) -> str:
    """Where a zarr store lives: its folder, or its type."""
    return str(getattr(store, "path", None) or type(store).__name__)


def _unreadable_metadata(name: str, store, err: BaseException) -> str:
    """What to say of zarr metadata that cannot be parsed, naming the first damaged metadata file when the store is
    a local folder."""
    root = Path(_location(store))
    if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)):
        damaged = [path for path in sorted(root.rglob(".z*")) if path.is_file() and not _is_json(path)]
        which = f"zarr metadata file {damaged[0]}" if damaged else f"its zarr metadata in {root}"
        reason = "nested too deeply" if isinstance(err, RecursionError) else "not JSON"
    else:
        which, reason = f"its zarr metadata in {root}", f"not what zarr expects: {_parse_reason(err)}"
    return f"{name}: {which} cannot be read ({reason}); re-download or regenerate the volume"


def _is_json(path: Path) -> bool:
    """Whether a file parses as JSON."""
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return True


DECODE_ERRORS = (RuntimeError, ValueError, OSError)  # what a truncated or corrupt chunk raises from its codec


def chunk_indices(array: zarr.Array) -> itertools.product:
    """The (z, y, x) indices of every chunk of an array."""
    return itertools.product(*map(range, array.cdata_shape))


def _chunk_key(array: zarr.Array, index: tuple[int, ...]) -> str:
    """The store key of one chunk (zarr 2's own naming, separators included)."""
    return array._chunk_key(index)


def chunk_path(array: zarr.Array, index: tuple[int, ...]) -> str:
    """Where one chunk lives: its file for a directory store, else its key."""
    root = getattr(array.store, "path", None) or getattr(array.store, "root", None)
    key = _chunk_key(array, index)
    return str(Path(root) / key) if root else key


def _picks_location(picks) -> str:
    """A human-readable location of a copick picks record."""
    return getattr(picks, "path", f"{picks.user_id}_{picks.session_id}_{picks.pickable_object_name}")


def _load_positions(picks) -> np.ndarray:
    """Å positions of a picks record, with copick's read and parse errors and non-finite coordinates turned into a
    BenchError."""
    where = f"picks file {_picks_location(picks)}"
    try:
        xyz = np.asarray(picks.full_positions(), dtype=float).reshape(-1, 3)
    except OSError as err:
        raise BenchError(f"{where} cannot be read ({err.strerror or err}); fix or remove it") from None
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as err:
        raise BenchError(f"{where} is not valid copick picks JSON ({_parse_reason(err)}); fix or remove it") from None
    bad = int((~np.isfinite(xyz).all(axis=1)).sum())
    if bad:
        raise BenchError(f"{where} has {bad} pick(s) with a NaN or infinite coordinate; fix or remove them")
    return xyz


def _parse_reason(err: BaseException) -> str:
    """Why a JSON file did not parse into what copick expects, in a few words."""
    if isinstance(err, pydantic.ValidationError):
        first = err.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first["loc"] else first["msg"]
    if isinstance(err, RecursionError):
        return "nested too deeply"
    if isinstance(err, TypeError):
        return f"a field has the wrong type: {err}"
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
