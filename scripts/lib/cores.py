"""The cores a bench run's broker and bench used, for the benchmark scripts (through
`timed_bench` in standalone.sh): prints the broker's and the bench's, separated by a space.

    python3 cores.py BENCH_OUTPUT "USER SYSTEM WALL" BROKER_TICKS_BEFORE BROKER_TICKS_AFTER

The broker's CPU time is divided by the bench's measured time plus its warm-up, the time the
broker was driven; the bench's own user and system time by its wall time.
"""
import json
import os
import sys

output, times, before, after = sys.argv[1:]
run = next(json.loads(line) for line in open(output) if '"kind"' in line)
user, system, wall = map(float, times.split())
driven_s = run["seconds"] + run["parameters"].get("warmup_s", 0)
broker = (int(after) - int(before)) / os.sysconf("SC_CLK_TCK") / driven_s
print(f"{broker:.2f} {(user + system) / wall:.2f}")
