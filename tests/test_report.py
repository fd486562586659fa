"""Tables: full precision in CSV; readable Markdown (constant columns stated once, small values in %g)."""

from __future__ import annotations

import pandas as pd

from nmu.report import save_table


def test_save_table_csv_and_markdown(tmp_path):
    df = pd.DataFrame({"profile": ["quick", "quick"], "lr": [1e-4, 3e-3], "avg_gap": [2.5123, 10.0]})
    csv, md = save_table(df, tmp_path, "t")
    assert pd.read_csv(csv).equals(df)
    text = md.read_text()
    assert text.startswith("- profile: quick\n") and "| quick" not in text
    assert "0.0001" in text and "0.003" in text and "2.51" in text and "2.5123" not in text
