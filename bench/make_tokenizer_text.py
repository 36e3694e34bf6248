#!/usr/bin/env python3
"""Writes the ~1 MB text bench/run_tokenizer.sh encodes: English prose (the Debian licence
and copyright texts), C++ (libstdc++ headers, tabs and all) and the multilingual corpus of
tests/golden/tokenizers/corpus.json, interleaved in 4 KiB slices so no part is one long run.
Deterministic on a given machine: the same files in the same order."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_BYTES = 1_000_000  # about 40% prose, 40% code, 20% multilingual


def read_all(paths, limit):
    parts, size = [], 0
    for path in sorted(paths):
        try:
            with open(path, encoding="utf-8", newline="") as f:  # keep CRLF as it is
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text)
        size += len(text.encode())
        if size >= limit:
            break
    return "".join(parts)


def slices(text, n):
    data = text.encode()
    out, i = [], 0
    while i < len(data):
        j = min(i + n, len(data))
        while j < len(data) and (data[j] & 0xC0) == 0x80:  # end on a character boundary
            j += 1
        out.append(data[i:j].decode())
        i = j
    return out


def main():
    prose = read_all(list(Path("/usr/share/common-licenses").glob("*")) +
                     list(Path("/usr/share/doc").glob("*/copyright")), 400_000)
    code = read_all(Path("/usr/include/c++/12/bits").glob("*.h"), 400_000)
    corpus = json.loads((ROOT / "tests/golden/tokenizers/corpus.json").read_text(encoding="utf-8"))
    # The corpus's deliberately pathological texts (a 2000-letter word, a long CJK run) are left
    # out: repeated here they would be ~10% of the text, far more than in real input.
    pathological = {"long_word_ascii", "long_word_mixed", "cjk_long_run", "repeated_punct_long"}
    multilingual = "\n".join(c["text"] for c in corpus if c["name"] not in pathological) * 14
    streams = [slices(prose, 4096), slices(code, 4096), slices(multilingual, 2048)]
    out, size, k = [], 0, 0
    while size < TARGET_BYTES and any(streams):
        stream = streams[k % len(streams)]
        k += 1
        if stream:
            piece = stream.pop(0)
            out.append(piece)
            size += len(piece.encode())
    text = "".join(out)
    with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print(f"{sys.argv[1]}: {len(text.encode())} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
