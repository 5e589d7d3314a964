"""Markdown tables from pytest-benchmark JSON files: ``python benchmarks/_table.py a.json [b.json ...]``.

Several files (the suite run in parts) are merged; a case found twice keeps its last run.
docs/benchmarks.md is written from this output.
"""
from __future__ import annotations

import json
import sys


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def main(*paths: str) -> None:
    by_name: dict[str, dict] = {}
    for path in paths:
        data = json.loads(open(path).read())
        for r in data["benchmarks"]:
            by_name[r["fullname"]] = {**r, "datetime": data["datetime"]}
        print(f"{path}: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, {data['datetime']}")
    print()
    rows = list(by_name.values())
    kinds = (("test_train_step", "training step"), ("test_generator_inference", "inference"),
             ("test_data_pipeline", "data pipeline"), ("test_conv3x3_throughput", "machine"))
    for prefix, title in kinds:
        sel = [r for r in rows if r["name"].startswith(prefix)]
        if not sel:
            continue
        print(f"### {title}\n")
        print("| case | median | min | rounds | GFLOP/call | GFLOP/s | items/s | peak mem GiB (delta) "
              "| fresh process peak RSS GiB | other load (cores) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in sel:
            s, x = r["stats"], r["extra_info"]
            case = r["name"].split("[", 1)[1].rstrip("]")
            fresh = x.get("fresh_process", {}).get("peak_rss_gib", "")
            mem = f"{x.get('peak_memory_gib', '')} ({x.get('peak_memory_delta_gib', '')})" if "peak_memory_gib" in x else ""
            print(f"| {case} | {_fmt_time(s['median'])} | {_fmt_time(s['min'])} | {s['rounds']} | "
                  f"{x.get('gflop_per_call', '')} | {x.get('achieved_gflop_per_s', '')} | {x.get('items_per_s', '')} | "
                  f"{mem} | {fresh} | {x.get('other_load_cores', '')} |")
        print()


if __name__ == "__main__":
    main(*sys.argv[1:])
