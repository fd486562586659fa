"""An executed notebook made fit to commit: no folder of the machine that ran it, no frozen progress bars.

``make figures`` and ``make search`` run it on every notebook papermill writes. It rewrites outputs
only, never a number: paths under the checkout (``--root``, default this one) become relative to it,
the home folder becomes ``~``, a progress widget (tqdm in Jupyter, frozen at its first frame in a
saved notebook) is dropped, and a text progress bar keeps its last frame, a one-line summary (none
where the bar erased itself). The kernel sends a bar's frames as many stream outputs (ipykernel
forwards even what nmu writes to the process's own stderr); they are merged first, as Jupyter shows them.

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


CONTROL = re.compile(r"(\r|\n|\x1b\[A)")
"""What tqdm moves the cursor with: to the line's start, to the next line, one line up (nested bars)."""


def last_frames(text: str) -> str:
    """``text`` as a terminal shows it once written (what is written at a line's start replaces the
    line, as tqdm's frames do): each bar at its last frame, lines redrawn blank (a bar that erased
    itself) left out."""
    lines, drawn, row, col = [""], [False], 0, 0
    redrawn = "\r" in text  # blank lines are erased bars only where something was redrawn
    for piece in CONTROL.split(text):
        if piece == "\r":
            col = 0
        elif piece == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
                drawn.append(False)
        elif piece == "\x1b[A":
            row = max(row - 1, 0)
        elif piece:
            lines[row] = piece if col == 0 else lines[row][:col] + piece  # a bar redraws its whole line
            col += len(piece)
            drawn[row] |= redrawn
    erased = [d and not line.strip() for line, d in zip(lines, drawn)]
    kept = [line for line, gone in zip(lines, erased) if not gone]
    return "\n".join(kept + ([""] if erased[-1] else []))  # an erased last line: the newline before it stays


def merged_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``outputs`` with each run of stream outputs of one stream (stdout, stderr) as one output. A
    progress frame that ends a piece is redrawn by the next piece (the carriage return a scrub before
    this merge dropped is put back)."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        last = merged[-1] if merged else {}
        if output.get("output_type") == "stream" and last.get("output_type") == "stream" \
                and last.get("name") == output.get("name"):
            before = "".join(last.get("text", ""))
            redraw = "\r" if PROGRESS.search(before.rsplit("\n", 1)[-1]) else ""
            merged[-1] = {**last, "text": before + redraw + "".join(output.get("text", ""))}
        else:
            merged.append(output)
    return merged


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
        for output in merged_streams([o for o in cell["outputs"] if not _is_progress_widget(o)]):
            if output.get("output_type") == "stream":
                text = last_frames("".join(output.get("text", "")))
                if not text:
                    continue
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
