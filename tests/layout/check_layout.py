#!/usr/bin/env python3
"""Checks that the source tree keeps the shape README.md's Layout section promises.

  check_layout.py ROOT functions [LIMIT]   no function outside tests/ over LIMIT
                                           (default 80) lines, measured by
                                           universal-ctags
  check_layout.py ROOT file-size PATH N    PATH has at most N lines
  check_layout.py ROOT dependencies        includes point one way:
                                           model/common <- model/core <-
                                           model/training; server/ and client/
                                           never include model/training
  check_layout.py ROOT format              clang-format changes nothing

Exits 0 when the check holds, 1 (listing every offence) when it does not, and
77 (ctest's skip) when the tool it needs is missing.
"""
import os
import re
import shutil
import subprocess
import sys

SOURCE_DIRS = ("model", "server", "client", "proto", "tests")
SUFFIXES = (".h", ".cc")
SKIP = 77

# What each folder may include of ours, by the prefix of the include path.
# Folders not named here (tests/) may include anything.
ALLOWED_INCLUDES = {
    "model/common/": ("model/common/",),
    "model/core/": ("model/common/", "model/core/"),
    "model/training/": ("model/common/", "model/core/", "model/training/"),
    "server/": ("model/common/", "model/core/", "server/", "fer/", "grpc/"),
    "client/": ("model/common/", "client/", "fer/", "grpc/"),
}
OUR_PREFIXES = ("model/", "server/", "client/", "tests/")


def sources(root, dirs, skip_tests=False):
    for top in dirs:
        for folder, subdirs, files in os.walk(os.path.join(root, top)):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("build"))
            rel_folder = os.path.relpath(folder, root)
            if skip_tests and rel_folder.split(os.sep)[0] == "tests":
                continue
            for name in sorted(files):
                if name.endswith(SUFFIXES):
                    yield os.path.join(rel_folder, name)


def check_functions(root, limit):
    ctags = shutil.which("ctags-universal") or shutil.which("ctags")
    if not ctags:
        print("skipped: no universal-ctags (Debian package universal-ctags)")
        return SKIP
    files = [f for f in sources(root, SOURCE_DIRS) if not f.startswith("tests" + os.sep)]
    out = subprocess.run(
        [ctags, "--languages=C++", "--kinds-C++=f", "--fields=+ne", "-f", "-"] + files,
        cwd=root, check=True, capture_output=True, text=True).stdout
    long_ones = []
    for line in out.splitlines():
        fields = line.split("\t")
        extra = dict(f.split(":", 1) for f in fields[3:] if ":" in f)
        if "line" in extra and "end" in extra:
            length = int(extra["end"]) - int(extra["line"]) + 1
            if length > limit:
                long_ones.append((length, f"{fields[1]}:{extra['line']} {fields[0]}"))
    for length, where in sorted(long_ones, reverse=True):
        print(f"{length:4d} lines  {where}")
    print(f"{len(files)} files; {len(long_ones)} functions over {limit} lines")
    return 1 if long_ones else 0


def check_file_size(root, path, limit):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    print(f"{path}: {lines} lines (at most {limit})")
    return 1 if lines > limit else 0


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def check_dependencies(root):
    offences = []
    for path in sources(root, ("model", "server", "client")):
        rel = path.replace(os.sep, "/")
        rule = next((p for p in ALLOWED_INCLUDES if rel.startswith(p)), None)
        if rule is None:
            continue
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        for included in INCLUDE.findall(text):
            ours = included.startswith(OUR_PREFIXES)
            if ours and not included.startswith(ALLOWED_INCLUDES[rule]):
                offences.append(f"{rel} includes {included}")
    for offence in offences:
        print(offence)
    print(f"{len(offences)} includes against the direction of dependencies")
    return 1 if offences else 0


def check_format(root):
    clang_format = shutil.which("clang-format") or shutil.which("clang-format-14")
    if not clang_format:
        print("skipped: no clang-format (Debian package clang-format)")
        return SKIP
    files = list(sources(root, SOURCE_DIRS))
    result = subprocess.run([clang_format, "--dry-run", "--Werror"] + files,
                            cwd=root, capture_output=True, text=True)
    unformatted = sorted(set(re.findall(r"^(\S+?):\d+:\d+: error", result.stderr, re.M)))
    for path in unformatted:
        print(f"not clang-formatted: {path}")
    print(f"{len(files)} files; {len(unformatted)} need clang-format -i")
    return 1 if result.returncode != 0 else 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, check, args = argv[1], argv[2], argv[3:]
    if check == "functions":
        return check_functions(root, int(args[0]) if args else 80)
    if check == "file-size" and len(args) == 2:
        return check_file_size(root, args[0], int(args[1]))
    if check == "dependencies":
        return check_dependencies(root)
    if check == "format":
        return check_format(root)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
