#!/usr/bin/python3
"""Draws the worker tracks of a weft trace (WEFT_TRACE=path.json) to a PNG.

    scripts/trace_render.py TRACE.json OUT.png [--from US] [--to US] [--width IN]

For a machine without a browser (ui.perfetto.dev opens the JSON as it is).
One row per worker: task run slices coloured by task name, idle periods in
light grey, parks as small ticks under the row, steals as triangles, wakes
and spawns as thin arrows from the waker's row to the woken task's next
run, and the monitor's actions as red marks on a row of their own. Needs
Debian's python3-matplotlib (scripts/deps.sh installs it).
"""
import json
import sys
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def colour(name):
    h = zlib.crc32(name.encode()) & 0xFFFFFF
    return ((h >> 16 & 255) / 400 + 0.2, (h >> 8 & 255) / 400 + 0.2, (h & 255) / 400 + 0.2)


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    src, out = argv[1], argv[2]
    opt = {argv[i]: float(argv[i + 1]) for i in range(3, len(argv) - 1, 2)}
    lo, hi = opt.get("--from", float("-inf")), opt.get("--to", float("inf"))
    with open(src) as f:
        doc = json.load(f)
    evs = doc["traceEvents"]
    workers = int(doc.get("otherData", {}).get("workers", 1))
    mon_row = workers
    names = {}
    for e in evs:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e["args"]["name"]
    row = lambda tid: tid if tid < workers else mon_row  # noqa: E731
    fig, ax = plt.subplots(figsize=(opt.get("--width", 14), 1.0 + 0.6 * (workers + 1)))
    starts = {}  # flow id -> (ts, row)
    legend = {}
    tmax = 0
    for e in evs:
        ph = e.get("ph")
        if ph == "M" or "ts" not in e:
            continue
        ts = e["ts"]
        end = ts + e.get("dur", 0)
        if end < lo or ts > hi:
            continue
        tmax = max(tmax, end)
        r = row(e["tid"])
        if ph == "X":
            if e.get("cat") == "idle":
                ax.barh(r, e["dur"], left=ts, height=0.5, color="0.88", linewidth=0)
            else:
                n = e["name"].rsplit(" #", 1)[0]
                c = colour(n)
                bar = ax.barh(r, max(e["dur"], 0.05), left=ts, height=0.7, color=c, linewidth=0)
                if n not in legend and len(legend) < 12:
                    legend[n] = bar
        elif ph == "i":
            cat = e.get("cat")
            if cat == "park":
                ax.plot([ts, ts], [r + 0.36, r + 0.46], color="0.3", linewidth=0.6)
            elif cat == "steal":
                ax.plot(ts, r - 0.42, marker="v", color="tab:orange", markersize=4)
            elif cat == "monitor":
                ax.plot(ts, r, marker="x", color="red", markersize=6)
        elif ph == "s":
            starts[e["id"]] = (ts, r)
        elif ph == "f" and e["id"] in starts:
            t0, r0 = starts.pop(e["id"])
            if r0 != r:
                ax.annotate("", xy=(ts, r), xytext=(t0, r0),
                            arrowprops=dict(arrowstyle="->", color="0.4", linewidth=0.4))
    ax.set_yticks(range(workers + 1))
    ax.set_yticklabels([names.get(i, "worker %d" % i) for i in range(workers)] + ["monitor"])
    ax.invert_yaxis()
    ax.set_xlabel("time (us since the first event)")
    if lo != float("-inf") or hi != float("inf"):
        ax.set_xlim(max(lo, 0), min(hi, tmax))
    if legend:
        ax.legend(legend.values(), legend.keys(), loc="upper right", fontsize=7, ncol=4)
    dropped = doc.get("otherData", {}).get("dropped_events", 0)
    ax.set_title("weft trace: %s%s" % (src.rsplit("/", 1)[-1],
                                        " (%d events dropped)" % dropped if dropped else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
