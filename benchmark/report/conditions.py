"""The report's statement of conditions: data, split, budget, runs, metric, launch, device and code, as bullet lines
from the manifest."""

from __future__ import annotations

from pathlib import Path


def conditions(manifest: dict, split: str, runs: int, weights: dict[str, float], hard: list[str]) -> list[str]:
    """Bullet lines stating the data, split, budget, seeds, metric, device and code of the run."""
    data, environment = manifest["data"], manifest["environment"]
    git = environment["git"]
    if data.get("synthetic"):
        source = f"synthetic preset `{data['preset']}` (seed {data['seed']})"
    else:
        source = f"`{data['config']}`"
    budget = manifest["budget"]
    bounds = ", ".join(f"{arch} {bound or '-'}" for arch, bound in manifest["epoch_bounds"].items())
    folds = [name for name in manifest["folds"] if name != "ts"]
    scored = "val (a selection suite: test never read)" if split == "val" else "test (reported)"
    said = ", ".join(f"{name} {weight:g}" for name, weight in weights.items())
    return [
        f"- Data: {source}; tomogram type `{data['tomo_type']}`, voxel size {data['voxel_size']} Å",
        f"- Split: train {', '.join(manifest['split']['train'])}; val {', '.join(manifest['split']['val'])} "
        f"(score thresholds tuned here, pooled over its runs, then frozen); test "
        f"{', '.join(manifest['split']['test'])}; scored: {scored}"
        + (f"; plus {len(folds)} folds ({', '.join(folds)}: see the manifest)" if folds else ""),
        f"- Budget: every fit capped at {budget['minutes']:g} min of wall clock from the call of `fit` to its "
        f"return (stopped at +{budget['grace_minutes']:g} min); epoch bounds: {bounds}{calibrated_bounds(manifest)}",
        f"- Runs: seeds {', '.join(map(str, manifest['seeds']))} x {len(manifest['folds'])} fold(s)"
        + ("" if runs > 1 else "; a single training run: its interval covers test-set sampling only"),
        f"- Metric: F-beta (beta 4) per particle type, the competition score weighting them {said} (divided by "
        f"{sum(weights.values()):g}); hard types: {', '.join(hard) or 'none'}",
        *_launches(manifest.get("launches", [])),
        f"- Device: {device(manifest)}; {cpu_kernels(manifest)}; torch {environment['libraries']['torch']} with "
        f"{environment.get('num_threads')} threads; {_compute(manifest.get('compute'))}; commit {git['short']}"
        f"{' (uncommitted changes)' if git['dirty'] else ''}; run {manifest['created']}",
    ]


def device(manifest: dict) -> str:
    """The device the jobs ran on, as they recorded it (on a cluster, the nodes'), else as the run recorded it."""
    names = [
        (job.get("environment") or {}).get("device_name") for job in manifest["jobs"].values() if job["status"] == "ok"
    ]
    return " / ".join(dict.fromkeys(filter(None, names))) or manifest["environment"]["device_name"]


def cpu_kernels(manifest: dict) -> str:
    """The CPU kernels torch ran, as the jobs (else the run) recorded them: its CPU capability and the CPU's flags
    that change speed and rounding."""
    environments = [job.get("environment") or {} for job in manifest["jobs"].values() if job["status"] == "ok"] or [
        manifest["environment"]
    ]
    said = [
        f"torch CPU capability {env.get('cpu_capability') or '?'} (flags {' '.join(flags) or 'none'})"
        for env in environments
        if (flags := env.get("cpu_flags")) is not None
    ]
    return " / ".join(dict.fromkeys(said)) or "CPU kernels not recorded"


def calibrated_bounds(manifest: dict) -> str:
    """Where the epoch bounds came from, when a calibration gave them."""
    record = manifest.get("calibration")
    if not record:
        return ""
    machine = (record.get("machine") or {}).get("device_name", "an unrecorded machine")
    return (f", the learned single-model rows' derived from {record['train_seconds']:g} s of training each on the "
            f"reference machine ({machine}, calibrated {str(record.get('measured'))[:10]} at commit "
            f"{record.get('git')}: `{Path(record['file']).name}`)")  # fmt: skip


def _launches(launches: list[dict]) -> list[str]:
    """A bullet line on how the jobs were launched, when any run launched more than one at a time or not as child
    processes (the default states nothing)."""
    said = [
        f"{launch['launcher']} launcher, {launch['jobs']} job(s) at once"
        + ("; jobs shared the cores, each with the threads of a job alone" if launch["slots"][0]["shared"] else "")
        for launch in launches
    ]
    if all(launch["launcher"] == "process" and launch["jobs"] == 1 for launch in launches):
        return []
    return [f"- Launch: {'; then '.join(dict.fromkeys(said))} (see the manifest's `launches`)"]


def _compute(compute: dict | None) -> str:
    """The manifest's compute settings in words (older manifests have none)."""
    if not compute:
        return "compute settings not recorded"
    kernels = "deterministic kernels" if compute["deterministic"] else "non-deterministic kernels"
    return f"{compute['precision']} precision, {kernels}" + (", cudnn autotuner" if compute["cudnn_benchmark"] else "")
