#!/usr/bin/env python3
"""Gathers the demo model's training text from this Debian machine (deps.md §0): English man
pages (rendered by groff), package documentation under /usr/share/doc, GNU Info manuals (one
document per node; off by default), the licence texts in /usr/share/common-licenses, the
installed Python sources (the standard library; Debian's python3-* packages when asked) and C
headers. A kind with a budget of 0 MB is skipped.

Writes under --out (an ignored folder; the corpus never goes into git):
  documents.jsonl   one {"kind", "path", "package", "split", "text"} per line, deduplicated
  licences.json     per Debian package: the licences its copyright file names, and how many
                    characters of it were taken
  summary.json      characters per kind and split, the seed and the caps

Sampling is seeded and every listing is sorted, so the same machine gives the same corpus.
A document goes to the held-out split when the first byte of its sha256 is < --heldout-byte
(about 2%), so the split does not depend on the order files are read in.
"""
import argparse
import glob
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

MAX_DOC_CHARS = 60_000
DOC_SUFFIXES = (".txt", ".md", ".rst", ".html.gz", ".txt.gz", ".md.gz", ".rst.gz")


def package_of_files():
    """Installed file -> Debian package, from dpkg's file lists."""
    owner = {}
    for listing in sorted(glob.glob("/var/lib/dpkg/info/*.list")):
        package = os.path.basename(listing)[:-len(".list")].split(":")[0]
        with open(listing, encoding="utf-8", errors="replace") as f:
            for line in f:
                owner.setdefault(line.rstrip("\n"), package)
    return owner


def licences_of(package):
    """The License: names of a package's machine-readable copyright file (or 'see file')."""
    path = f"/usr/share/doc/{package}/copyright"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ["unknown (no copyright file)"]
    names = sorted({m.strip() for m in re.findall(r"^License:\s*(\S[^\n]*)$", text, re.M)})
    return names or [f"see {path}"]


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict") as f:
            return f.read(MAX_DOC_CHARS * 2)
    except (OSError, UnicodeDecodeError, EOFError):
        return None


def render_man(path):
    """A man page as plain text: groff without hyphenation, left-adjusted, no overstriking."""
    try:
        source = subprocess.run(["zcat", "-f", path], capture_output=True, timeout=20).stdout
        out = subprocess.run(["groff", "-man", "-Tutf8", "-rHY=0", "-dAD=l", "-rLL=92n",
                              "-P", "-cbou"], input=source, capture_output=True, timeout=30)
        text = out.stdout.decode("utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        return None
    lines = text.splitlines()
    # Drop the running header and footer lines ("LS(1)   User Commands   LS(1)").
    if lines and re.match(r"^\S+\(\w+\)\s", lines[0]):
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and re.search(r"\S+\(\w+\)\s*$", lines[-1]):
        lines = lines[:-1]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text if len(text) > 200 else None


def read_info(path):
    """A GNU Info file as its nodes (split at the 0x1f separators), each one document."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="strict") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, EOFError):
        return None
    return [node.strip() for node in text.split("\x1f") if not node.startswith("\nTag Table")]


def documents_of(read):
    """A reader's result as a list of texts (read_info gives several, the others one)."""
    if read is None:
        return []
    return [read] if isinstance(read, str) else read


def clean(text):
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    text = re.sub(r"[ ]+\n", "\n", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip()[:MAX_DOC_CHARS]


def candidates(kind):
    if kind == "man":
        paths = []
        for section in ("1", "5", "7", "8"):
            paths += glob.glob(f"/usr/share/man/man{section}/*.gz")
        return sorted(p for p in paths if not os.path.islink(p))
    if kind == "doc":
        paths = []
        for root, _, files in os.walk("/usr/share/doc"):
            for name in files:
                lower = name.lower()
                if lower.startswith(("changelog", "copyright")):
                    continue
                if lower.startswith(("readme", "news", "faq", "todo")) or lower.endswith(DOC_SUFFIXES):
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        paths.append(path)
        return sorted(paths)
    if kind == "licence":
        return sorted(p for p in glob.glob("/usr/share/common-licenses/*") if not os.path.islink(p))
    if kind == "info":
        return sorted(glob.glob("/usr/share/info/*.info*.gz"))
    if kind == "python":
        return sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True))
    if kind == "python-packages":
        return sorted(glob.glob("/usr/lib/python3/dist-packages/**/*.py", recursive=True))
    if kind == "c":
        return sorted(glob.glob("/usr/include/**/*.h", recursive=True))
    raise ValueError(kind)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--heldout-byte", type=int, default=5)
    parser.add_argument("--man-mb", type=float, default=12)
    parser.add_argument("--doc-mb", type=float, default=8)
    parser.add_argument("--info-mb", type=float, default=0)
    parser.add_argument("--python-mb", type=float, default=10)
    parser.add_argument("--python-packages-mb", type=float, default=0,
                        help="Python sources of Debian's python3-* packages")
    parser.add_argument("--c-mb", type=float, default=5)
    parser.add_argument("--licence-mb", type=float, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    owner = package_of_files()
    budgets = {"man": args.man_mb, "doc": args.doc_mb, "info": args.info_mb,
               "python": args.python_mb, "python-packages": args.python_packages_mb,
               "c": args.c_mb, "licence": args.licence_mb}
    budgets = {kind: mb for kind, mb in budgets.items() if mb > 0}
    seen, per_package, summary = set(), {}, {"seed": args.seed, "budgets_mb": budgets, "chars": {}}
    with open(os.path.join(args.out, "documents.jsonl"), "w", encoding="utf-8") as out:
        for kind, budget_mb in budgets.items():
            paths = candidates(kind)
            rng.shuffle(paths)
            budget, taken, count = int(budget_mb * 1e6), 0, 0
            reader = {"man": render_man, "info": read_info}.get(kind, read_text)
            with ThreadPoolExecutor(args.jobs) as pool:
                for start in range(0, len(paths), 64):
                    if taken >= budget:
                        break
                    batch = paths[start:start + 64]
                    for path, texts in zip(batch, pool.map(reader, batch)):
                        for text in documents_of(texts):
                            if not text or taken >= budget:
                                continue
                            text = clean(text)
                            digest = hashlib.sha256(text.encode()).digest()
                            if len(text) < 200 or digest in seen:
                                continue
                            seen.add(digest)
                            package = owner.get(path, "unknown")
                            split = "heldout" if digest[0] < args.heldout_byte else "train"
                            out.write(json.dumps({"kind": kind, "path": path, "package": package,
                                                  "split": split, "text": text}) + "\n")
                            taken += len(text)
                            count += 1
                            entry = per_package.setdefault(package, {"chars": 0})
                            entry["chars"] += len(text)
                            key = f"{kind}.{split}"
                            summary["chars"][key] = summary["chars"].get(key, 0) + len(text)
                    print(f"\r{kind}: {count} documents, {taken / 1e6:.1f} of {budget_mb} MB",
                          end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
    for package, entry in per_package.items():
        entry["licences"] = licences_of(package)
    with open(os.path.join(args.out, "licences.json"), "w") as f:
        json.dump(dict(sorted(per_package.items())), f, indent=1)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
