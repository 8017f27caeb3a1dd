#!/usr/bin/env python3
"""How well per-crop signals from `fer-model explain --csv` tell aligned faces
from other crops: distributions and ROC AUC, standard library only.

    scripts/attention_auc.py faces.csv shift=shift.csv zoom_out=zoom.csv ...

The first CSV holds the aligned faces (the positives); every NAME=FILE after it
is a set of crops that are not (negatives). For each signal it prints the
mean and quartiles per set and the AUC of face against each set: the chance
that a random face scores above a random crop of that set (ties count half),
so 0.5 is no separation and 1.0 (or 0.0, the other way round) is perfect.

Signals: center_share and confidence as written by fer-model, and a few other
summaries of the map (the a_R_C columns) for comparison:
  map_mean      the map's mean (how open the gate is overall)
  border_share  share of the map's total on the outermost ring of cells
  center_contrast  mean of the central cells over the mean of the others
  peak_offset   distance of the largest cell from the grid's centre, in cells
"""
import csv
import math
import sys


def read(path):
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            cells = sorted((k for k in row if k.startswith("a_")),
                           key=lambda k: tuple(int(x) for x in k[2:].split("_")))
            side = int(round(math.sqrt(len(cells))))
            values = [float(row[k]) for k in cells]
            rows.append((row, values, side))
    return rows


def central(i, n):
    # model/core/attention_quality.cc: cell centre 16 i in the middle half of 16 n.
    return 4 * i >= n and 4 * i < 3 * n


def signals(row, values, side):
    total = sum(values) or 1.0
    inner = [v for k, v in enumerate(values) if central(k // side, side) and central(k % side, side)]
    outer = [v for k, v in enumerate(values)
             if not (central(k // side, side) and central(k % side, side))]
    ring = [v for k, v in enumerate(values)
            if k // side in (0, side - 1) or k % side in (0, side - 1)]
    peak = max(range(len(values)), key=values.__getitem__)
    mid = (side - 1) / 2
    return {
        "center_share": float(row["center_share"]),
        "confidence": float(row["confidence"]),
        "map_mean": total / len(values),
        "border_share": sum(ring) / total,
        "center_contrast": (sum(inner) / len(inner)) / (sum(outer) / len(outer) or 1.0),
        "peak_offset": math.hypot(peak // side - mid, peak % side - mid),
    }


def auc(positives, negatives):
    """Mann-Whitney U / (n m), ties counted half."""
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n, m = len(positives), len(negatives)
    return (rank_sum - n * (n + 1) / 2) / (n * m)


def quartiles(values):
    s = sorted(values)

    def q(p):
        x = p * (len(s) - 1)
        lo = int(math.floor(x))
        return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (x - lo)
    return sum(s) / len(s), q(0.25), q(0.5), q(0.75)


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__)
    sets = [("faces", argv[1])] + [tuple(a.split("=", 1)) for a in argv[2:]]
    scored = {name: [signals(*r) for r in read(path)] for name, path in sets}
    names = list(scored["faces"][0])
    print("set sizes: " + ", ".join(f"{n} {len(v)}" for n, v in scored.items()))
    for signal in names:
        print(f"\n{signal}")
        print(f"  {'set':<12} {'mean':>8} {'q1':>8} {'median':>8} {'q3':>8} {'AUC face>set':>13}")
        faces = [s[signal] for s in scored["faces"]]
        for name, rows in scored.items():
            values = [s[signal] for s in rows]
            stats = " ".join(f"{x:8.4f}" for x in quartiles(values))
            a = "" if name == "faces" else f"{auc(faces, values):13.3f}"
            print(f"  {name:<12} {stats} {a}")


if __name__ == "__main__":
    main(sys.argv)
