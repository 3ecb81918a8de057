#!/usr/bin/env python3
"""Reads the RESULT lines of ingest_load runs on stdin; prints each run and the median."""
import statistics
import sys

runs = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in sys.stdin if line.startswith("RESULT")]
if not runs:
    sys.exit("no RESULT lines: the runs failed")
cols = [
    ("ingest_results_per_s", "ingest results/s", "{:,.0f}"),
    ("ingest_messages_per_s", "messages/s", "{:,.1f}"),
    ("ack_p50_ms", "ACK p50 ms", "{:.1f}"),
    ("ack_p99_ms", "ACK p99 ms", "{:.1f}"),
    ("raw_rows_per_s", "raw rows/s", "{:,.0f}"),
    ("ratio", "ingest/raw", "{:.3f}"),
    ("reads_ms_before", "reads ms before", "{:.2f}"),
    ("reads_ms_after", "reads ms after", "{:.2f}"),
]
print("SUMMARY (each run, then the median)")
print(f"{'run':<8}" + "".join(f"{title:>18}" for _, title, _ in cols))
for i, r in enumerate(runs, 1):
    print(f"{i:<8}" + "".join(f"{fmt.format(float(r[key])):>18}" for key, _, fmt in cols))
med = {key: statistics.median(float(r[key]) for r in runs) for key, _, _ in cols}
print(f"{'median':<8}" + "".join(f"{fmt.format(med[key]):>18}" for key, _, fmt in cols))
print()
print(
    f"median ratio ingest results/s / raw rows/s = {med['ratio']:.3f} "
    f"(the raw inserts are {1 / med['ratio']:.1f}x faster)"
)
