"""Pools the runs of llama-benchy and fourbit bench (bench/bench_agreement.sh) per test and says
whether the two tools agree within their run-to-run noise: |mean difference| <= the two
standard deviations combined (sqrt(sa^2 + sb^2)). Medians too: on a shared machine a few runs
caught by other work pull the means. Standard library only.

Usage: agreement_summary.py BENCHY_1.json [...] -- FOURBIT_1.json [...]
"""

import json
import math
import sys


def pooled(paths):
    """test name -> every run's value over all files (pp t/s, tg t/s, ttfr ms)."""
    values = {}
    for path in paths:
        for cell in json.load(open(path))["benchmarks"]:
            pp, tg = cell["prompt_size"], cell["response_size"]
            for name, metric in ((f"pp{pp} t/s", "pp_throughput"), (f"tg{tg} [pp{pp}] t/s", "tg_throughput"),
                                 (f"pp{pp} ttfr (ms)", "ttfr"), (f"pp{pp} e2e_ttft (ms)", "e2e_ttft")):
                if cell.get(metric):
                    values.setdefault(name, []).extend(cell[metric]["values"])
    return values


def median(xs):
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


def stats(xs):
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))


def main():
    split = sys.argv.index("--")
    benchy, fourbit = pooled(sys.argv[1:split]), pooled(sys.argv[split + 1:])
    print("| test | llama-benchy mean ± std (n) | fourbit bench mean ± std (n) | ratio of means "
          "| within noise | llama-benchy median | fourbit median | ratio of medians |")
    print("|:--|--:|--:|--:|:--|--:|--:|--:|")
    for name in benchy:
        if name not in fourbit:
            continue
        (ma, sa), (mb, sb) = stats(benchy[name]), stats(fourbit[name])
        within = abs(ma - mb) <= math.sqrt(sa * sa + sb * sb)
        da, db = median(benchy[name]), median(fourbit[name])
        print(f"| {name} | {ma:.2f} ± {sa:.2f} ({len(benchy[name])}) | {mb:.2f} ± {sb:.2f} "
              f"({len(fourbit[name])}) | {mb / ma:.2f}x | {'yes' if within else 'no'} "
              f"| {da:.2f} | {db:.2f} | {db / da:.2f}x |")


if __name__ == "__main__":
    main()
