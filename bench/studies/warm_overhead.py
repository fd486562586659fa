"""What a warm ``make figures`` spends outside the notebooks' own cells, measured on this machine.

A warm run (every model and run cached) still starts, per notebook, a papermill process and a
kernel, imports what the notebooks import, and scrubs the executed notebook (``nmu.scrub``), after
one calibration (``nmu.cost``, the preflight). This times each of those steps (the median of
``--repeats`` calls), adds them up for the notebooks ``make figures`` executes, and says what that
leaves of a warm target for the cells themselves.

    python bench/studies/warm_overhead.py --target-s 120
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
IMPORTS = "import pandas as pd\nfrom nmu.plan import grid\nfrom nmu.report import start"
"""The first cell of every comparison notebook (sample_wise, hardest, class_wise...)."""


def figures_notebooks() -> list[str]:
    """The notebooks ``make figures`` executes: every template but the search."""
    return sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb") if p.stem != "search")


def seconds(cmd: list[str], repeats: int) -> float:
    """The median wall seconds of ``repeats`` calls of ``cmd`` (each must succeed)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(repeats: int, profile: str) -> dict[str, float]:
    """Seconds of each step outside the cells: ``kernel`` (papermill and a kernel, an empty notebook),
    ``imports`` (the notebooks' first cell, beyond ``kernel``), ``scrub`` and ``preflight``."""
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kernelspec = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4).metadata.kernelspec
        for name, cells in (("empty", []), ("imports", [nbformat.v4.new_code_cell(IMPORTS)])):
            nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec})
            nbformat.write(nb, folder / f"{name}.ipynb")
        run = [py, "-m", "papermill", "--log-level", "WARNING"]
        kernel = seconds([*run, str(folder / "empty.ipynb"), str(folder / "out.ipynb")], repeats)
        imports = seconds([*run, str(folder / "imports.ipynb"), str(folder / "out.ipynb")], repeats) - kernel
        scrub = seconds([py, "-m", "nmu.scrub", str(folder / "out.ipynb")], repeats)
    preflight = seconds([py, "-m", "nmu.cost", "--profile", profile, "--results", str(REPO / "results" / profile)],
                        repeats)
    return {"kernel": kernel, "imports": imports, "scrub": scrub, "preflight": preflight}


def report(steps: dict[str, float], notebooks: int, target_s: float) -> str:
    """The steps, their sum over ``notebooks`` notebooks, and what is left of ``target_s`` for cells."""
    each = steps["kernel"] + steps["imports"] + steps["scrub"]
    fixed = notebooks * each + steps["preflight"]
    lines = ["| step | seconds | per run |", "|---|---|---|"]
    lines += [f"| {name} | {steps[name]:.2f} | x{notebooks} |" for name in ("kernel", "imports", "scrub")]
    lines += [f"| preflight | {steps['preflight']:.2f} | x1 |", "",
              f"{notebooks} notebooks x {each:.1f} s + preflight {steps['preflight']:.1f} s = {fixed:.0f} s "
              f"outside the cells; of a {target_s:.0f} s warm target that leaves {target_s - fixed:.0f} s "
              "for the cells of every notebook."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="calls per step; the median counts (default 3)")
    ap.add_argument("--profile", default="quick", help="the preflight's profile (default quick)")
    ap.add_argument("--target-s", type=float, default=120.0, help="the warm target (default 120 s)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    print(report(measure(args.repeats, args.profile), len(figures_notebooks()), args.target_s))


if __name__ == "__main__":
    main()
