#!/usr/bin/env python3
# Pools the "round" lines of io/tools/accept_multishot runs (the files named
# on the command line: "### run N" headers, WRITE=1 runs marked in the
# header; a line starting "######## earlier batch" starts a separate batch)
# per batch, WRITE and client count: medians over all rounds, and each
# method against method a of the same round (server CPU ratio, difference,
# rounds where it used less CPU; accepts/s ratio).
#   python3 io/tools/accept_multishot_pool.py io/tools/accept_multishot_2026-12-02.txt
import re
import statistics as st
import sys

runs = {}
batch, cur, ph = 0, None, None
ROUND = re.compile(r'\s+round (\d+) ([a-e]) .*?(\d+) acc\s+(\d+)/s\s+srv\s+([\d.]+) us\s+'
                   r'proc\s+([\d.]+) us\s+enter ([\d.]+)\s+sys ([\d.]+)\s+gap ([\d.]+) ms'
                   r'(?:\s+stalls ([\d.]+))?')
for fn in sys.argv[1:]:
    for line in open(fn):
        if line.startswith('######## earlier batch'):
            batch += 1
            continue
        m = re.match(r'### run (\d+)', line)
        if m:
            cur = (batch, m.group(1), 'WRITE=1' in line)
            continue
        m = re.match(r'== clients (\d+)', line)
        if m:
            ph = int(m.group(1))
            continue
        m = ROUND.match(line)
        if m:
            g = m.groups()
            runs.setdefault((cur, ph, int(g[0])), {})[g[1]] = dict(
                rate=float(g[3]), cpu=float(g[4]), ent=float(g[6]), sys=float(g[7]),
                gap=float(g[8]), st=float(g[9] or 0))


def med(v):
    return st.median(v), min(v), max(v)


for b in sorted(set(k[0][0] for k in runs)):
    for write in (False, True):
        for nc in sorted(set(k[1] for k in runs)):
            keys = [k for k in runs if k[0][0] == b and k[0][2] == write and k[1] == nc
                    and len(runs[k]) == 5]
            if not keys:
                continue
            print(f"\nbatch {b}, {'WRITE=1' if write else 'no write'}, clients {nc}: "
                  f"{len(keys)} rounds from runs {sorted(set(k[0][1] for k in keys))}")
            print("method | accepts/s median [range] | srv CPU us/acc | enters/acc | "
                  "syscalls/acc | vs a, same round: srv CPU ratio [range], diff, rounds lower"
                  " | rate ratio | max gap ms median/max | client stalls/acc")
            for x in 'abcde':
                def col(f):
                    return [runs[k][x][f] for k in keys]
                rate, cpu = med(col('rate')), med(col('cpu'))
                ratio = med([runs[k][x]['cpu'] / runs[k]['a']['cpu'] for k in keys])
                diff = st.median([runs[k][x]['cpu'] - runs[k]['a']['cpu'] for k in keys])
                low = sum(runs[k][x]['cpu'] < runs[k]['a']['cpu'] for k in keys)
                rr = st.median([runs[k][x]['rate'] / runs[k]['a']['rate'] for k in keys])
                gap = med(col('gap'))
                print(f"{x} | {rate[0]:.0f} [{rate[1]:.0f}-{rate[2]:.0f}] | "
                      f"{cpu[0]:.2f} [{cpu[1]:.2f}-{cpu[2]:.2f}] | {st.median(col('ent')):.3f} | "
                      f"{st.median(col('sys')):.3f} | x{ratio[0]:.3f} [{ratio[1]:.3f}-{ratio[2]:.3f}],"
                      f" {diff:+.2f} us, {low} of {len(keys)} | x{rr:.3f} | "
                      f"{gap[0]:.1f}/{gap[2]:.1f} | {st.median(col('st')):.3f}")
