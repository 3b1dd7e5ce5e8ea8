"""Draws benches/results.png from the JSON of ../shared/bench/peers.py.

Usage: python benches/plot.py benches/peers.json benches/results.png

One panel per figure (full read, full write, read of each chunk, point read), one group of
bars per case, one bar per implementation: shorter is faster. The dashed mark over each
group is the codec-limit (the codec or copy alone, all cores).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FIGURES = [
    ("read_full_s", "read the whole array (s)"),
    ("write_full_s", "write the whole array (s)"),
    ("read_each_chunk_s", "read each chunk, one call each (s)"),
    ("point_read_us", "read one element (µs)"),
]
COLORS = {
    "oxzarr": "#d62728",
    "zarr-python+zarrs": "#1f77b4",
    "tensorstore": "#2ca02c",
    "zarrista": "#9467bd",
    "zarr-python": "#7f7f7f",
}


def main(src: str, dst: str) -> None:
    with open(src) as f:
        rows = [r for r in json.load(f) if "error" not in r]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    impls = [i for i in COLORS if any(r["impl"] == i for r in rows)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    width = 0.8 / len(impls)
    for ax, (key, title) in zip(axes.flat, FIGURES, strict=True):
        for j, impl in enumerate(impls):
            values = []
            for case in cases:
                match = [r for r in rows if r["case"] == case and r["impl"] == impl]
                values.append(match[0][key] if match else 0)
            xs = [i + (j - (len(impls) - 1) / 2) * width for i in range(len(cases))]
            ax.bar(xs, values, width, label=impl, color=COLORS[impl])
        for i, case in enumerate(cases):
            limit = [r for r in rows if r["case"] == case and r["impl"] == "codec-limit"]
            if limit:
                ax.hlines(limit[0][key], i - 0.45, i + 0.45, colors="black", linestyles="dashed")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels(cases, rotation=15, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(
        "oxzarr and its peers on 256 MiB of uint16 (shorter is faster; dashed: codec limit)"
    )
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
