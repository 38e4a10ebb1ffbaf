#!/usr/bin/env python3
"""Checks a weft trace (WEFT_TRACE=path.json) for consistency.

    scripts/trace_check.py TRACE.json [--expect-name NAME ...] [--allow-drops]

Checks: the file is JSON with a traceEvents list of well-formed events;
no two slices (task runs and idle periods) overlap on one worker track;
every park of a task is followed by a wake of it before its next run (or
the trace ends first); every spawn has one flow start, and one flow end at
the start of a run slice of the spawned task, not before the spawn; every
wake likewise; dropped_events is 0 unless --allow-drops. Exit 0 if all
hold, 1 with the failures listed otherwise.
"""
import json
import sys
from collections import defaultdict

EPS = 0.0015  # us: timestamps are printed with 3 decimals


def main(argv):
    args = argv[1:]
    if not args:
        print(__doc__)
        return 2
    path = args[0]
    expect = [args[i + 1] for i, a in enumerate(args) if a == "--expect-name"]
    allow_drops = "--allow-drops" in args
    errors = []

    def err(msg):
        if len(errors) < 50:
            errors.append(msg)

    with open(path) as f:
        doc = json.load(f)
    evs = doc.get("traceEvents")
    if not isinstance(evs, list) or not evs:
        print("no traceEvents list")
        return 1
    other = doc.get("otherData", {})
    if not allow_drops and other.get("dropped_events", -1) != 0:
        err("dropped_events is %r" % other.get("dropped_events"))

    slices = defaultdict(list)  # tid -> [(ts, end, ev)]
    runs = defaultdict(list)  # task -> [(ts, end, tid)]
    parks, wakes, spawns = [], defaultdict(list), []
    flow_s, flow_f = defaultdict(list), defaultdict(list)
    names = set()
    for e in evs:
        if not isinstance(e, dict) or "ph" not in e or "pid" not in e:
            err("malformed event %r" % (e,))
            continue
        ph = e["ph"]
        if ph == "M":
            continue
        if "ts" not in e or "tid" not in e or not isinstance(e["ts"], (int, float)):
            err("event without ts/tid: %r" % (e,))
            continue
        if ph == "X":
            d = e.get("dur")
            if not isinstance(d, (int, float)) or d < 0:
                err("slice with bad dur: %r" % (e,))
                continue
            slices[e["tid"]].append((e["ts"], e["ts"] + d, e))
            if e.get("cat") == "run":
                t = e["args"]["task"]
                runs[t].append((e["ts"], e["ts"] + d, e["tid"]))
                names.add(e["name"].rsplit(" #", 1)[0])
        elif ph == "i":
            cat = e.get("cat")
            a = e.get("args", {})
            if cat == "park":
                if not a.get("reason"):
                    err("park without a reason: %r" % (e,))
                parks.append((e["ts"], a["task"]))
            elif cat == "wake":
                wakes[a["task"]].append(e["ts"])
                spawns.append(("wake", e["ts"], a["task"], a["flow"]))
            elif cat == "spawn":
                spawns.append(("spawn", e["ts"], a["task"], a["flow"]))
            elif cat == "steal":
                if "victim" not in a:
                    err("steal without a victim: %r" % (e,))
        elif ph == "s":
            flow_s[e["id"]].append(e)
        elif ph == "f":
            flow_f[e["id"]].append(e)
        else:
            err("unexpected phase %r" % ph)

    # No overlapping slices on one track.
    for tid, sl in slices.items():
        sl.sort(key=lambda x: (x[0], x[1]))
        for (a0, a1, ea), (b0, b1, eb) in zip(sl, sl[1:]):
            if b0 < a1 - EPS:
                err("overlap on track %s: %s [%.3f, %.3f] and %s [%.3f, %.3f]"
                    % (tid, ea["name"], a0, a1, eb["name"], b0, b1))
    for t in runs:
        runs[t].sort()

    # Every park is followed by a wake before the task's next run.
    for ts, task in parks:
        rs = runs.get(task, [])
        prev = [r for r in rs if r[1] <= ts + EPS]
        nxt = [r for r in rs if r[0] >= ts - EPS]
        start = prev[-1][0] if prev else float("-inf")
        if not nxt:
            continue  # the trace ended first
        end = nxt[0][0]
        if not any(start - EPS <= w <= end + EPS for w in wakes.get(task, [])):
            err("task %s parked at %.3f and ran again at %.3f with no wake" % (task, ts, end))

    # Flows: one start, one end at a run slice start of the target task.
    for kind, ts, task, flow in spawns:
        s, f = flow_s.get(flow, []), flow_f.get(flow, [])
        if len(s) != 1:
            err("%s of task %s: %d flow starts" % (kind, task, len(s)))
        if len(f) != 1:
            if kind == "spawn" or runs.get(task) and any(r[0] >= ts for r in runs[task]):
                err("%s of task %s at %.3f: %d flow ends" % (kind, task, ts, len(f)))
            continue
        fe = f[0]
        if fe["ts"] < ts - EPS:
            err("%s flow of task %s ends before it starts" % (kind, task))
        if not any(abs(r[0] - fe["ts"]) <= EPS and r[2] == fe["tid"] for r in runs.get(task, [])):
            err("%s flow of task %s does not end at one of its run slices" % (kind, task))
    for n in expect:
        if n not in names:
            err("no run slice of a task named %r" % n)

    if errors:
        print("\n".join(errors))
        return 1
    print("trace ok: %d events, %d run slices, %d parks, %d spawn/wake flows"
          % (len(evs), sum(len(v) for v in runs.values()), len(parks), len(spawns)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
