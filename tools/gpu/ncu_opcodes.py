#!/usr/bin/env python3
"""Where a kernel's instructions go, from an ncu SASS source export.

    ncu --set full --import-source yes -o report <program>
    ncu -i report.ncu-rep --page source --csv --print-source sass > sass.csv
    python3 tools/gpu/ncu_opcodes.py sass.csv [--per N] [--top K]

For each kernel in the export: its warp instructions, those of one warp (the first instruction
runs once a warp, so its count is the number of warps) and, with --per N, of one of a warp's N
loop iterations; then the opcodes by count with their share of the stall samples, and the
instructions with the most stall samples. This is how the decode attention's address
arithmetic was found (bench/results/cuda_model.md, session 16): ~1,050 instructions a warp and
step, 64 of them mma.
"""
import argparse
import collections
import csv
import sys


def kernels(path):
    """Yields (kernel name, header, rows) for each kernel of an ncu source CSV."""
    name, header, rows = None, None, []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            if row[0] == "Kernel Name":
                if name is not None and header is not None:
                    yield name, header, rows
                name, header, rows = row[1], None, []
            elif row[0] == "Address":
                header = row
            elif header is not None:
                rows.append(row)
    if name is not None and header is not None:
        yield name, header, rows


def opcode(source):
    """The SASS opcode without its modifiers or predicate: '@P0 LDG.E.128 R4, ...' -> 'LDG'."""
    words = source.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return words[0].split(".")[0] if words else "?"


def summarise(name, header, rows, per, top, out):
    column = {key: header.index(key) for key in
              ("Address", "Source", "Instructions Executed", "Warp Stall Sampling (All Samples)")}
    executed, stalls, lines = collections.Counter(), collections.Counter(), []
    for row in rows:
        try:
            count = int(row[column["Instructions Executed"]])
            samples = int(row[column["Warp Stall Sampling (All Samples)"]])
        except ValueError:
            continue
        source = row[column["Source"]].strip()
        executed[opcode(source)] += count
        stalls[opcode(source)] += samples
        lines.append((samples, count, row[column["Address"]], source))
    if not lines:
        print(f"== {name}: no instructions counted", file=out)
        return
    warps = lines[0][1]  # the first instruction, once a warp
    total, sampled = sum(executed.values()), max(sum(stalls.values()), 1)
    divisor = max(warps, 1) * per
    print(f"== {name}", file=out)
    print(f"{total} warp instructions, {warps} warps: {total / max(warps, 1):.0f} a warp"
          + (f", {total / divisor:.1f} a warp and iteration" if per > 1 else ""), file=out)
    print(f"{'opcode':10} {'count':>12} {'a warp' + (' and it.' if per > 1 else ''):>16} "
          f"{'stall %':>8}", file=out)
    for op, count in executed.most_common(top):
        print(f"{op:10} {count:12d} {count / divisor:16.1f} {100 * stalls[op] / sampled:8.1f}",
              file=out)
    print("most stall samples:", file=out)
    for samples, count, address, source in sorted(lines, reverse=True)[:top]:
        print(f"{100 * samples / sampled:5.1f}% {count:10d} {address[-6:]} {source[:72]}",
              file=out)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="ncu --page source --csv --print-source sass output")
    parser.add_argument("--per", type=int, default=1, help="loop iterations a warp (e.g. steps)")
    parser.add_argument("--top", type=int, default=20, help="rows of each table")
    args = parser.parse_args(argv)
    found = False
    for name, header, rows in kernels(args.csv):
        found = True
        summarise(name, header, rows, args.per, args.top, sys.stdout)
    if not found:
        sys.exit(f"{args.csv}: no kernel found (expected an ncu source page CSV with SASS)")


if __name__ == "__main__":
    main(sys.argv[1:])
