"""Markdown tables from a pytest-benchmark JSON file: ``python benchmarks/_table.py results.json``.

docs/benchmarks.md is written from this output.
"""
from __future__ import annotations

import json
import sys


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def main(path: str) -> None:
    data = json.loads(open(path).read())
    rows = data["benchmarks"]
    print(f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
          f"torch {rows[0]['extra_info'].get('torch', '?') if rows else '?'}, {data['datetime']}\n")
    kinds = (("test_train_step", "training step"), ("test_generator_inference", "inference"),
             ("test_data_pipeline", "data pipeline"), ("test_conv3x3_throughput", "machine"))
    for prefix, title in kinds:
        sel = [r for r in rows if r["name"].startswith(prefix)]
        if not sel:
            continue
        print(f"### {title}\n")
        print("| case | median | min | rounds | GFLOP/call | GFLOP/s | items/s | peak mem GiB (delta) | fresh process peak RSS GiB | load |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in sel:
            s, x = r["stats"], r["extra_info"]
            case = r["name"].split("[", 1)[1].rstrip("]")
            fresh = x.get("fresh_process", {}).get("peak_rss_gib", "")
            mem = f"{x.get('peak_memory_gib', '')} ({x.get('peak_memory_delta_gib', '')})" if "peak_memory_gib" in x else ""
            print(f"| {case} | {_fmt_time(s['median'])} | {_fmt_time(s['min'])} | {s['rounds']} | "
                  f"{x.get('gflop_per_call', '')} | {x.get('achieved_gflop_per_s', '')} | {x.get('items_per_s', '')} | "
                  f"{mem} | {fresh} | {x.get('load_avg_1min', '')} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
