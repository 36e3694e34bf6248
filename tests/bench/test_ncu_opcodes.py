"""tools/gpu/ncu_opcodes.py on a small export in ncu's source-page CSV format: two kernels, a
predicated instruction, a row without counts; and a file with no kernel in it."""
import csv
import pathlib
import subprocess
import sys

TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "gpu" / "ncu_opcodes.py"
HEADER = ["Address", "Source", "Warp Stall Sampling (All Samples)",
          "Warp Stall Sampling (Not-issued Samples)", "# Samples", "Instructions Executed"]


def write_export(path, kernels):
    with open(path, "w", newline="") as f:
        out = csv.writer(f, quoting=csv.QUOTE_ALL)
        for name, rows in kernels:
            out.writerow(["Kernel Name", name])
            out.writerow(HEADER)
            for address, source, stalls, executed in rows:
                out.writerow([address, source, stalls, stalls, stalls, executed])


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True)


def test_counts_by_opcode_a_warp_and_iteration(tmp_path):
    export = tmp_path / "sass.csv"
    write_export(export, [
        ("walk_kernel", [
            ("0x7f0000", "LDC R1, c[0x0][0x28]", "2", "64"),  # once a warp: 64 warps
            ("0x7f0010", "IMAD R2, R3, 0x4, R4", "10", "1024"),
            ("0x7f0020", "@P0 IMAD.WIDE R6, R2, 0x2, R8", "30", "1024"),
            ("0x7f0030", "HMMA.16816.F32.BF16 R8, R12, R16, R8", "8", "512"),
            ("0x7f0040", "EXIT", "-", "-"),  # no counts: left out
        ]),
        ("combine_kernel", [
            ("0x7f1000", "LDC R1, c[0x0][0x28]", "0", "8"),
            ("0x7f1010", "FFMA R1, R2, R3, R1", "5", "16"),
        ]),
    ])
    result = run(export, "--per", 4, "--top", 3)
    assert result.returncode == 0, result.stderr
    walk, combine = result.stdout.split("== combine_kernel")
    # 64 + 1024 + 1024 + 512 = 2624 warp instructions; 41 a warp, 10.25 a warp and iteration.
    assert "2624 warp instructions, 64 warps: 41 a warp, 10.2 a warp and iteration" in walk
    # Both IMADs count as one opcode (predicate and modifiers dropped): 2048, 8 a warp and
    # iteration, 40 of the 50 stall samples.
    assert "IMAD               2048              8.0     80.0" in walk
    assert "HMMA                512              2.0     16.0" in walk
    assert walk.index("IMAD") < walk.index("HMMA") < walk.index("LDC")  # by count
    # The instruction with the most stall samples first, its share and count.
    assert walk.split("most stall samples:\n")[1].startswith(" 60.0%       1024 7f0020 @P0 IMAD")
    # 16 + 8 = 24; --per holds for every kernel of the export: 24 / (8 x 4) = 0.75.
    assert "24 warp instructions, 8 warps: 3 a warp, 0.8 a warp and iteration" in combine
    assert "FFMA                 16              0.5    100.0" in combine


def test_a_file_without_kernels_is_an_error_naming_it(tmp_path):
    export = tmp_path / "empty.csv"
    export.write_text("not an ncu export\n")
    result = run(export)
    assert result.returncode != 0
    assert str(export) in result.stderr and "no kernel found" in result.stderr
