"""Turns the JSON of ../shared/bench/peers.py into the Markdown tables of RESULTS.md.

Usage: python benches/results.py benches/peers.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

FIGURES = [
    ("read_full_s", "read full (s)"),
    ("write_full_s", "write full (s)"),
    ("read_each_chunk_s", "read each chunk (s)"),
    ("point_read_us", "point read (µs)"),
]


def table(rows: list[dict[str, object]]) -> str:
    by_case: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        by_case[str(row["case"])].append(row)
    out = []
    for case, case_rows in by_case.items():
        out.append(f"**{case}**\n")
        out.append("| implementation | " + " | ".join(name for _, name in FIGURES) + " |")
        out.append("|---|" + "---:|" * len(FIGURES))
        peers = [r for r in case_rows if r["impl"] not in ("codec-limit", "oxzarr")]
        for row in case_rows:
            if "error" in row:
                out.append(f"| {row['impl']} | error: {row['error']} |")
                continue
            cells = []
            for key, _ in FIGURES:
                value = float(row[key])  # type: ignore[arg-type]
                cell = f"{value:.4g}"
                best = min(
                    (float(p[key]) for p in peers if key in p),  # type: ignore[arg-type]
                    default=None,
                )
                if row["impl"] == "oxzarr" and best:
                    cell += f" ({best / value:.2f}x)"
                cells.append(cell)
            out.append(f"| {row['impl']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
