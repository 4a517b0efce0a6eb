#!/usr/bin/env python3
"""Choose the fixed robot samples sample-x86_64.txt and sample-aarch64.txt.

  make_sample.py --easyconfigs DIR --parse-x86_64 P1.jsonl --parse-aarch64 P2.jsonl
                 [--parse-minimal-x86_64 P3.jsonl] [--out-dir D]

Inputs are the easyconfigs tree and EasyBuild's own `parse` output for both
architectures (eb_reference.py parse; P3 with --minimal-toolchains).  The choice is deterministic: every
"pick some" rule orders candidates by the SHA-1 of their path, so the same
tree gives the same sample on any machine.  Python 3.11 standard library only.

The sample files list easyconfig file names (found in the robot path as eb
finds them), grouped under `# ...` comment lines saying why each group is there.
"""
import argparse
import hashlib
import json
import os
import re

# the usual toolchain generations, oldest first; compiler versions come from foss-<gen>.eb
GENERATIONS = ['2022a', '2022b', '2023a', '2023b', '2024a', '2025a', '2025b', '2026.1']
BIG_APPS = ['GROMACS', 'PyTorch', 'TensorFlow', 'R', 'OpenFOAM', 'LAMMPS', 'CP2K', 'QuantumESPRESSO',
            'SciPy-bundle', 'matplotlib', 'Python', 'jax', 'WRF', 'ParaView', 'Bioconductor', 'R-bundle-CRAN']
SPECIAL_TOOLCHAINS = ['NVHPC', 'nvompi', 'nvidia-compilers', 'intel-compilers', 'iimkl', 'iomkl', 'gomkl',
                      'llvm-compilers', 'lfoss', 'lompi', 'lfbf', 'lmpich', 'lmpflf', 'rocm-compilers',
                      'gmpich', 'gmpflf', 'iompi', 'rompi']
SET_LITERAL = re.compile(r'^(build)?dependencies\s*=\s*\{', re.M)
EASYBLOCK = re.compile(r'''^easyblock\s*=\s*['"]([\w.]+)['"]''', re.M)
# not an easyconfig anywhere: the "target not found" error path
NOT_FOUND = 'NoSuchSoftware-1.0-foss-2023a.eb'


def stable(path):
    return hashlib.sha1(path.encode()).hexdigest()


def load(path):
    with open(path) as fh:
        return {r['path']: r for r in map(json.loads, fh) if r.get('path')}


def direct(rec):
    deps = list(rec.get('builddependencies', [])) + list(rec.get('dependencies', []))
    tc = rec['toolchain']
    if tc['name'] != 'system':
        deps.append('%s/%s' % (tc['name'], tc['version']))
    return deps


def closures(recs):
    """path -> (closure size, modules without easyconfig in the closure)."""
    dep_map = {r['module']: direct(r) for r in recs.values() if 'module' in r}
    out = {}
    for path, rec in recs.items():
        if 'module' not in rec:
            continue
        seen, missing, stack = set(), set(), [rec['module']]
        while stack:
            mod = stack.pop()
            if mod in seen:
                continue
            seen.add(mod)
            if mod not in dep_map:
                missing.add(mod)
            else:
                stack.extend(dep_map[mod])
        out[path] = (len(seen), sorted(missing))
    return out


class Sample:
    def __init__(self):
        self.groups = []
        self.seen = set()

    def add(self, title, paths):
        fresh = []
        for p in paths:
            fn = os.path.basename(p)
            if fn not in self.seen:
                self.seen.add(fn)
                fresh.append(fn)
        if fresh:
            self.groups.append((title, fresh))

    def write(self, path, header):
        n = sum(len(g) for _, g in self.groups)
        with open(path, 'w') as fh:
            for line in header:
                fh.write('# %s\n' % line)
            fh.write('# %d targets\n' % n)
            for title, names in self.groups:
                fh.write('\n# %s\n' % title)
                for name in names:
                    fh.write(name + '\n')
        return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--easyconfigs', required=True)
    ap.add_argument('--parse-x86_64', required=True)
    ap.add_argument('--parse-aarch64', required=True)
    ap.add_argument('--parse-minimal-x86_64',
                    help="optional: parse output with --minimal-toolchains, to sample the files it changes")
    ap.add_argument('--out-dir', default=os.path.dirname(os.path.abspath(__file__)))
    opts = ap.parse_args()

    x86 = load(opts.parse_x86_64)
    arm = load(opts.parse_aarch64)
    minimal = load(opts.parse_minimal_x86_64) if opts.parse_minimal_x86_64 else {}
    ok = {p: r for p, r in x86.items() if 'module' in r}
    text = {}
    for p in ok:
        with open(os.path.join(opts.easyconfigs, p), errors='replace') as fh:
            text[p] = fh.read()
    size_x86 = closures(x86)
    size_arm = closures(arm)

    def easyblock(p):
        m = EASYBLOCK.search(text[p])
        return m.group(1) if m else None

    def pick(cands, n):
        return sorted(cands, key=stable)[:n]

    def tc(p):
        return (ok[p]['toolchain']['name'], ok[p]['toolchain']['version'])

    # compiler version of each generation, from foss-<gen>.eb's own dependencies
    gcc_of = {}
    for gen in GENERATIONS:
        rec = ok.get('f/foss/foss-%s.eb' % gen)
        if rec:
            for dep in rec['dependencies']:
                if dep.startswith('GCC/'):
                    gcc_of[gen] = dep.split('/', 1)[1]
    gen_of_tc = {}
    for gen, gcc in gcc_of.items():
        gen_of_tc[('GCCcore', gcc)] = gen_of_tc[('GCC', gcc)] = gen
    for p in ok:
        name, ver = tc(p)
        if ver in GENERATIONS:
            gen_of_tc[(name, ver)] = ver

    def gen(p):
        return gen_of_tc.get(tc(p))

    # ------------------------------------------------------------- x86_64
    s = Sample()
    s.add("toolchain easyconfigs of every generation (their own deps use explicit subtoolchains)",
          ['f/foss/foss-%s.eb' % g for g in GENERATIONS if 'f/foss/foss-%s.eb' % g in ok]
          + [p for p in ('i/intel/intel-2022a.eb', 'i/intel/intel-2023b.eb', 'i/intel/intel-2025b.eb',
                         'i/intel/intel-2026.1.eb', 'g/gompi/gompi-2024a.eb', 'g/gfbf/gfbf-2025a.eb',
                         'i/iimpi/iimpi-2023a.eb', 'f/foss/foss-2023.09.eb', 'i/intel/intel-2023.07.eb')
             if p in ok])
    s.add("compilers and CUDA (SYSTEM toolchain)",
          pick([p for p in ok if ok[p]['name'] == 'GCC' and tc(p)[0] == 'system'
                  and ok[p]['version'] in gcc_of.values()], 3)
          + pick([p for p in ok if ok[p]['name'] == 'CUDA'], 3)
          + pick([p for p in ok if ok[p]['name'] in ('intel-compilers', 'NVHPC', 'llvm-compilers')
                  and tc(p)[0] == 'system'], 3))
    for app in BIG_APPS:
        cands = [p for p in ok if ok[p]['name'] == app]
        by_gen = {}
        # per generation: no versionsuffix preferred, CUDA variants left for below
        for p in sorted(cands, key=lambda p: (bool(ok[p]['versionsuffix']), stable(p))):
            g = gen(p)
            if g and g not in by_gen and '-CUDA-' not in ok[p]['versionsuffix']:
                by_gen[g] = p
        chosen = [by_gen[g] for g in GENERATIONS if g in by_gen]
        chosen = chosen[:1] + chosen[-1:] if len(chosen) > 2 else chosen
        cuda = pick([p for p in cands if '-CUDA-' in ok[p]['versionsuffix']], 1)
        s.add("big application %s: oldest and newest generation%s" % (app, ', a CUDA variant' if cuda else ''),
              chosen + cuda)
    s.add("largest closures", sorted(ok, key=lambda p: (-size_x86[p][0], p))[:4])
    for g in GENERATIONS:
        for family in ('GCCcore', 'GCC', 'gompi', 'gfbf', 'foss', 'intel', 'iimpi'):
            cands = [p for p in ok if gen(p) == g and tc(p)[0] == family]
            s.add("spread: generation %s, toolchain %s" % (g, family), pick(cands, 1))
    s.add("SYSTEM toolchain (small and large closures)",
          pick([p for p in ok if tc(p)[0] == 'system' and size_x86[p][0] <= 3], 3)
          + pick([p for p in ok if tc(p)[0] == 'system' and size_x86[p][0] >= 15], 3))
    s.add("smallest non-SYSTEM closures", pick([p for p in ok if tc(p)[0] != 'system' and size_x86[p][0] <= 4], 3))
    for family in SPECIAL_TOOLCHAINS:
        s.add("toolchain family %s" % family, pick([p for p in ok if tc(p)[0] == family], 1))
    s.add("versionsuffix -CUDA-x", pick([p for p in ok if '-CUDA-' in ok[p]['versionsuffix']], 6))
    s.add("versionsuffix -Python-x", pick([p for p in ok if '-Python-' in ok[p]['versionsuffix']], 4))
    s.add("bundles (Bundle / PythonBundle easyblock)",
          pick([p for p in ok if easyblock(p) == 'Bundle'], 3)
          + pick([p for p in ok if easyblock(p) == 'PythonBundle'], 3))
    s.add("dependencies written as a set literal (EasyBuild's order depends on the hash seed)",
          pick([p for p in ok if SET_LITERAL.search(text[p])], 6))
    s.add("dependency with toolchain True (= SYSTEM)",
          pick([p for p in ok if re.search(r"^\s*\(.*,\s*True\s*\),?\s*(#.*)?$", text[p], re.M)], 2))
    s.add("dependencies whose direct deps differ on aarch64 (x86_64 branch of `if ARCH` / %(arch)s)",
          pick([p for p in ok if p in arm and 'module' in arm[p]
                and (set(arm[p]['dependencies']), set(arm[p]['builddependencies']))
                != (set(ok[p]['dependencies']), set(ok[p]['builddependencies']))], 6))
    if minimal:
        s.add("a dependency exists at two levels of the toolchain hierarchy: parent first picks the upper one "
              "(these differ under --minimal-toolchains)",
              sorted(p for p in ok if p in minimal and 'module' in minimal[p]
                     and (minimal[p]['dependencies'], minimal[p]['builddependencies'])
                     != (ok[p]['dependencies'], ok[p]['builddependencies'])))
    s.add("error path: no such easyconfig (no target fails on x86_64 with the shipped tree)", [NOT_FOUND])
    n = s.write(os.path.join(opts.out_dir, 'sample-x86_64.txt'), [
        "Robot sample for x86_64: easyconfig file names, resolved by `eb --dry-run --robot`.",
        "Generated by make_sample.py from EasyBuild's parse output; reviewed by hand."])
    print("sample-x86_64.txt: %d targets" % n)

    # ------------------------------------------------------------ aarch64
    a = Sample()
    arm_ok = {p: r for p, r in arm.items() if 'module' in r}
    differ = sorted(p for p in arm_ok if p in ok and
                    (set(arm_ok[p]['dependencies']), set(arm_ok[p]['builddependencies']))
                    != (set(ok[p]['dependencies']), set(ok[p]['builddependencies'])))
    fails = sorted(p for p in arm_ok if size_arm[p][1])
    a.add("resolution fails: a dependency has no easyconfig on aarch64 (direct)", [p for p in fails if p in differ])
    a.add("resolution fails: a dependency has no easyconfig on aarch64 (transitive)",
          [p for p in fails if p not in differ])
    a.add("direct dependencies differ from x86_64 (if ARCH == ... / %(arch)s)", [p for p in differ if p not in fails])
    closure_differs = [p for p in arm_ok if p in size_x86 and not size_arm[p][1]
                       and size_arm[p][0] != size_x86[p][0] and p not in differ]
    a.add("same direct dependencies, but the closure differs further down (FlexiBLAS, simde, ...)",
          pick(closure_differs, 8))
    a.add("ARCH used, but not for dependencies (must not differ)",
          pick([p for p in arm_ok if 'ARCH' in text.get(p, '') and p not in differ
                and p not in closure_differs], 5))
    a.add("general spread", [p for p in ('f/foss/foss-2023a.eb', 'f/foss/foss-2025b.eb', 'i/intel/intel-2025b.eb')
                             if p in arm_ok]
          + pick([p for p in arm_ok if ok.get(p, {}).get('name') in BIG_APPS], 6)
          + pick([p for p in arm_ok if '-CUDA-' in arm_ok[p]['versionsuffix']], 2)
          + pick([p for p in arm_ok if tc(p)[0] == 'system'], 2))
    n = a.write(os.path.join(opts.out_dir, 'sample-aarch64.txt'), [
        "Robot sample for aarch64: easyconfig file names, resolved by `eb --dry-run --robot`",
        "under eb_reference.py's arch shim. Generated by make_sample.py; reviewed by hand."])
    print("sample-aarch64.txt: %d targets" % n)


if __name__ == '__main__':
    main()
