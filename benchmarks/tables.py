"""The one way the benchmarks print a result: a titled markdown table, numbers right-aligned."""

from __future__ import annotations


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:,.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}\n")
    for i, r in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
