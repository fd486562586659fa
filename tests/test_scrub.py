"""Executed notebooks are committed without the generating machine's folders or frozen progress bars."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import committed, streams_run_together
from nmu.report import REPO
from nmu.scrub import WIDGET, scrub, scrub_notebook

MACHINE_PATH = re.compile(r"(^|[^\w.~-])/(home|work|tmp|Users|root|mnt|opt|var|scratch|private)/")
"""An absolute path of a typical Linux or macOS machine (``/work/...``, ``/home/...``)."""


def _output(text: str) -> dict:
    return {"name": "stderr", "output_type": "stream", "text": [text]}


def test_scrub_makes_paths_relative_drops_frozen_bars_and_keeps_the_rest(tmp_path):
    where = "/work/elsewhere/nmu"
    image = "iVBORw0KGgo/work/elsewhere/nmu/AAA="  # base64 is data, never a path: left alone
    cells = [{"cell_type": "code", "metadata": {}, "source": ["x"], "execution_count": 1, "outputs": [
        {"data": {WIDGET: {"model_id": "a"}, "text/plain": ["decode train:   0%|          | 0/50 [00:00<?, ?img/s]"]},
         "metadata": {}, "output_type": "display_data"},
        _output(f"{where}/nmu/unlearn.py:207: UserWarning: ssd\n"),
        _output("runs:  50%|#####     | 1/2\rruns: 100%|##########| 2/2 [00:01<00:00]\n"),
        {"data": {"text/plain": [f"outputs in {where}/results/quick/x"], "image/png": image},
         "metadata": {}, "output_type": "display_data"},
        {"ename": "E", "evalue": f"{Path.home()}/data missing", "output_type": "error",
         "traceback": [f"File {where}/nmu/data.py"]}]}]
    notebook = {"cells": cells, "metadata": {"widgets": {"state": {}}, "papermill": {"input_path": f"{where}/notebooks/x.ipynb"}},
                "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(notebook))
    scrub(path, [where])
    out = json.loads(path.read_text())
    outputs = out["cells"][0]["outputs"]
    assert len(outputs) == 3 and "widgets" not in out["metadata"]
    assert outputs[0]["text"] == ["nmu/unlearn.py:207: UserWarning: ssd\n",  # one stream: one output
                                  "runs: 100%|##########| 2/2 [00:01<00:00]\n"]  # the last frame: a summary
    assert outputs[1]["data"] == {"text/plain": ["outputs in results/quick/x"], "image/png": image}
    assert outputs[2]["evalue"] == "~/data missing" and outputs[2]["traceback"] == ["File nmu/data.py"]
    assert out["metadata"]["papermill"]["input_path"] == "notebooks/x.ipynb"


def test_a_bar_sent_frame_by_frame_keeps_its_last_frame_or_nothing():
    """ipykernel forwards a bar written to the process's stderr one frame per output: merged per stream,
    each bar reduced to its last frame, one that erased itself (tqdm's leave=False) gone. Notebooks an
    earlier scrub left with one output per frame, their carriage returns dropped, come out the same."""
    frames = ["\rdecode:   0%|          | 0/50", "\rdecode:  50%|#####     | 25/50", "\rdecode: 100%|##########| 50/50\n",
              "\rfit:  10%|#         | 1/10", "\rfit:  90%|######### | 9/10", "\r" + " " * 30 + "\r"]
    raw = [_output(f) for f in frames[:3]] + [{"name": "stdout", "output_type": "stream", "text": ["done\n"]}] + \
          [_output(f) for f in frames[3:]] + [_output("a warning\n")]
    earlier = [{**o, "text": [o["text"][0].replace("\r", "")]} for o in raw]
    for outputs in (raw, earlier):
        cell = {"cell_type": "code", "metadata": {}, "source": [], "outputs": outputs}
        out = scrub_notebook({"cells": [cell], "metadata": {}}, ["/nowhere"])["cells"][0]["outputs"]
        assert [(o["name"], o["text"]) for o in out] == [
            ("stderr", ["decode: 100%|##########| 50/50\n"]), ("stdout", ["done\n"]), ("stderr", ["a warning\n"])]
    erased = {"cell_type": "code", "metadata": {}, "source": [], "outputs": [_output(f) for f in frames[3:]]}
    assert scrub_notebook({"cells": [erased], "metadata": {}}, [])["cells"][0]["outputs"] == []


def test_committed_results_hold_no_machine_path_and_no_frozen_progress_bar():
    """Every committed executed notebook, table and manifest under results/ (not the GPU runs' logs, kept
    verbatim as the lent machine wrote them)."""
    texts = {str(p.relative_to(REPO)): p.read_text() for p in committed("results")
             if p.suffix in (".ipynb", ".md", ".csv", ".json", ".yaml")}
    assert len(texts) > 100
    leaks = [f"{name}: {m.group(0)!r}" for name, text in texts.items() for m in [MACHINE_PATH.search(text)] if m]
    assert leaks == []
    notebooks = {name: text for name, text in texts.items() if name.endswith(".ipynb")}
    assert [name for name, text in notebooks.items() if WIDGET in text] == []  # frozen widgets
    assert [name for name, text in notebooks.items() if streams_run_together(json.loads(text))] == []  # frames
