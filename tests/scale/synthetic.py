#!/usr/bin/env python3
"""A synthetic easyconfig tree of N modules for the scale runs that do not
need EasyBuild's: `synth<i>/1.0`, SYSTEM toolchain, each depending on up to
three earlier ones (seeded, so the same N gives the same graph), in
layers so the graph is both deep and wide, as the real stack is.

    synthetic.py N DIR [--seed S]
"""

import argparse
import random
from pathlib import Path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("dir", type=Path)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args()
    rng = random.Random(a.seed)
    width = max(1, int(a.n ** 0.5))
    for i in range(a.n):
        name = f"synth{i:05d}"
        layer = i // width
        deps = []
        if layer:
            lower = range(max(0, (layer - 2) * width), layer * width)
            deps = sorted(rng.sample(list(lower), min(3, len(lower))))
        d = a.dir / "s" / name
        d.mkdir(parents=True, exist_ok=True)
        lines = [
            "easyblock = 'MakeCp'",
            f"name = '{name}'",
            "version = '1.0'",
            f"homepage = 'https://example.org/{name}'",
            f'description = "a synthetic module of the scale runs ({i} of {a.n})"',
            "toolchain = SYSTEM",
            f"sources = ['{name}-1.0.tar']",
        ]
        if deps:
            lines.append("dependencies = [" + ", ".join(f"('synth{j:05d}', '1.0')" for j in deps) + "]")
        lines.append(f"files_to_copy = ['{name}']")
        (d / f"{name}-1.0.eb").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
