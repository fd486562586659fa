"""An executed notebook made fit to commit: no folder of the machine that ran it, no frozen progress bars.

``make figures`` and ``make search`` run it on every notebook papermill writes. It rewrites outputs
only, never a number: paths under the checkout (``--root``, default this one) become relative to it,
the home folder becomes ``~``, a progress widget (tqdm in Jupyter, frozen at its first frame in a
saved notebook) is dropped, and a text progress bar keeps its last frame, a one-line summary.

    python -m nmu.scrub results/quick/sample_wise.ipynb [--root /where/it/ran]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from nmu.report import REPO
from nmu.storage import atomic_write

WIDGET = "application/vnd.jupyter.widget-view+json"
PROGRESS = re.compile(r"\d+%\|")
"""tqdm's bar: ``  0%|          | 0/50 [...]``."""


def relative(text: str, roots: list[str]) -> str:
    """``text`` with every path under one of ``roots`` relative to it, and the home folder as ``~``."""
    for root in sorted({r.rstrip("/") for r in roots}, key=len, reverse=True):
        text = text.replace(root + "/", "").replace(root, ".")
    return text.replace(str(Path.home()).rstrip("/") + "/", "~/")


def last_frames(text: str) -> str:
    """Each line of ``text`` redrawn with carriage returns reduced to its last frame."""
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in text.split("\n"))


def _is_progress_widget(output: dict[str, Any]) -> bool:
    data = output.get("data", {})
    return WIDGET in data and bool(PROGRESS.search("".join(data.get("text/plain", ""))))


def _strings(value: Any, change) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _strings(v, change) for k, v in value.items()}
    return value


def _scrub_output(output: dict[str, Any], change) -> dict[str, Any]:
    out = {k: _strings(v, change) if k in ("text", "traceback", "evalue") else v for k, v in output.items()}
    if "data" in out:  # text only: an image's base64 stays as it is
        out["data"] = {mime: _strings(v, change) if mime.startswith("text/") else v for mime, v in out["data"].items()}
    return out


def scrub_notebook(notebook: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    """``notebook`` (nbformat JSON) with its outputs and papermill's paths scrubbed (see the module)."""
    change = lambda text: relative(text, roots)  # noqa: E731
    for cell in notebook.get("cells", []):
        if "outputs" not in cell:
            continue
        kept = []
        for output in cell["outputs"]:
            if _is_progress_widget(output):
                continue
            if output.get("output_type") == "stream":
                text = last_frames("".join(output.get("text", "")))
                output = {**output, "text": text.splitlines(keepends=True)}
            kept.append(_scrub_output(output, change))
        cell["outputs"] = kept
    metadata = notebook.get("metadata", {})
    metadata.pop("widgets", None)
    if "papermill" in metadata:
        metadata["papermill"] = _strings(metadata["papermill"], change)
    return notebook


def scrub(path: str | Path, roots: list[str] | None = None) -> None:
    """Scrub the executed notebook at ``path`` in place (atomically); ``roots``: the checkouts it may
    name (default this one)."""
    path = Path(path)
    notebook = scrub_notebook(json.loads(path.read_text()), roots or [str(REPO)])
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Scrub executed notebooks: no machine paths, no frozen progress bars.")
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--root", action="append", help="a checkout whose paths to make relative (default this one)")
    args = ap.parse_args(argv)
    for path in args.notebooks:
        scrub(path, args.root)


if __name__ == "__main__":
    main()
