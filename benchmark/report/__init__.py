"""`bench report`: markdown tables, a machine-readable summary and PNG plots regenerated from a results folder, never
edited by hand."""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import BenchError
from benchmark.files import write_csv, write_figure, write_text
from benchmark.gpu_check import CHECK
from benchmark.report.document import Report
from benchmark.report.gpu import gpu_markdown
from benchmark.results import RESULTS_ROOT, ResultsStore

README_START = "<!-- bench-report:{suite}:start -->"
README_END = "<!-- bench-report:{suite}:end -->"


def suites_with_results(root: Path = RESULTS_ROOT) -> list[str]:
    """Names of the suites that have at least one results folder under `root`."""
    return sorted(p.name for p in root.glob("*") if any(p.glob("*_*/manifest.json")))


def build_report(store: ResultsStore, out: Path, readme: Path | None = None) -> list[Path]:
    """Write README.md, summary.csv and the plots for one results folder into `out` (and the summary into
    `readme`)."""
    if store.manifest["suite"]["name"] == CHECK:  # a gpu-check: its short report of speed and memory only
        write_text(out / "README.md", gpu_markdown(store))
        return [out / "README.md"]
    report = Report(store)
    written = []
    for name, figure in report.plots().items():
        write_figure(out / name, figure)
        written.append(out / name)
    write_csv(out / "summary.csv", report.summary())
    write_text(out / "README.md", report.markdown([p.name for p in written if p.suffix == ".png"]))
    written += [out / "summary.csv", out / "README.md"]
    if readme is not None:
        update_readme(readme, report, out)
        written.append(readme)
    return written


def update_readme(readme: Path, report: Report, out: Path) -> None:
    """Replace the block between the suite's markers in a README with the summary table and conditions."""
    suite = report.manifest["suite"]["name"]
    start, end = README_START.format(suite=suite), README_END.format(suite=suite)
    text = readme.read_text()
    if start not in text or end not in text:
        raise BenchError(f"{readme} has no '{start}' ... '{end}' block; add the two marker lines where the table goes")
    block = "\n".join([start, report.summary_table(), "", report.training_note(), "", *report.verdict_lines(), "",
                       *report.conditions(), "",
                       f"Full report: [{out}/README.md]({out}/README.md)", end])  # fmt: skip
    write_text(readme, text[: text.index(start)] + block + text[text.index(end) + len(end) :])
