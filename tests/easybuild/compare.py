#!/usr/bin/env python3
"""Compare ebfleet's answers with EasyBuild's (from eb_reference.py).

Python 3.11 standard library only.

  compare.py parse REF.jsonl OURS.jsonl [--min-agree 99.9] [--show 30]
      Per easyconfig path: name, version, versionsuffix, toolchain, module,
      the set of builddependencies and the set of dependencies must be equal
      (or both sides must report an error).  Order differences of the
      dependency lists are printed as information only: EasyBuild's order
      for dependencies written as a set literal depends on the hash seed.
      Exit 1 when the agreement is below --min-agree percent.

  compare.py robot REF.json OURS.json --deps PARSE.jsonl [--show 30]
      Per target: both error or both succeed; the target's module and the
      closure's set of modules must be equal; OURS's order must put every
      dependency before its dependants, checked with EasyBuild's direct
      dependencies from a reference `parse` JSONL of the same architecture
      (builddependencies + dependencies + the toolchain module unless it is
      system).  Exit 1 on any mismatch.

The last line of output is always `N passed, M failed`.
"""
import argparse
import json
import sys


def load_jsonl(path):
    recs = {}
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                sys.exit("%s:%d: invalid JSON: %s" % (path, lineno, err))
            if 'path' not in rec:
                sys.exit("%s:%d: record without 'path'" % (path, lineno))
            if rec['path'] in recs:
                sys.exit("%s:%d: duplicate path %s" % (path, lineno, rec['path']))
            recs[rec['path']] = rec
    return recs


def load_json_array(path):
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        sys.exit("%s: expected a JSON array" % path)
    return data


def fmt_set(items):
    return '{' + ', '.join(sorted(items)) + '}'


def short(text, width=200):
    text = ' '.join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + '...'


# ---------------------------------------------------------------------- parse

SCALAR_FIELDS = ('name', 'version', 'versionsuffix', 'toolchain', 'module')
LIST_FIELDS = ('builddependencies', 'dependencies')


def diff_parse_record(ref, ours):
    """Return (differences, order_notes) for one path where neither side errors."""
    diffs, notes = [], []
    for field in SCALAR_FIELDS:
        if ref.get(field) != ours.get(field):
            diffs.append("%s: EasyBuild %s, ours %s" % (field, json.dumps(ref.get(field)),
                                                        json.dumps(ours.get(field))))
    for field in LIST_FIELDS:
        r, o = ref.get(field) or [], ours.get(field) or []
        if not isinstance(o, list):
            diffs.append("%s: ours is not a list: %s" % (field, json.dumps(o)))
            continue
        rs, os_ = set(r), set(o)
        if rs != os_:
            parts = []
            if rs - os_:
                parts.append("missing in ours " + fmt_set(rs - os_))
            if os_ - rs:
                parts.append("extra in ours " + fmt_set(os_ - rs))
            diffs.append("%s: %s" % (field, '; '.join(parts)))
        else:
            if len(o) != len(os_):
                notes.append("%s: ours lists duplicates %s" % (field, json.dumps(o)))
            elif r != o:
                notes.append("%s order: EasyBuild %s, ours %s" % (field, json.dumps(r), json.dumps(o)))
    return diffs, notes


def cmd_parse(opts):
    ref = load_jsonl(opts.ref)
    ours = load_jsonl(opts.ours)
    paths = sorted(set(ref) | set(ours))

    passed = failed = 0
    eb_errors = our_errors = both_errors = 0
    disagreements = []   # (path, [lines])
    order_notes = []     # (path, [lines])
    for path in paths:
        r, o = ref.get(path), ours.get(path)
        if r is None:
            failed += 1
            disagreements.append((path, ["only in ours (EasyBuild has no such file)"]))
            continue
        if o is None:
            failed += 1
            disagreements.append((path, ["missing in ours"]))
            continue
        r_err, o_err = 'error' in r, 'error' in o
        eb_errors += r_err
        our_errors += o_err
        if r_err and o_err:
            both_errors += 1
            passed += 1
            continue
        if r_err != o_err:
            failed += 1
            if r_err:
                disagreements.append((path, ["EasyBuild fails, ours does not: " + short(r['error'])]))
            else:
                disagreements.append((path, ["ours fails, EasyBuild does not: " + short(o['error'])]))
            continue
        diffs, notes = diff_parse_record(r, o)
        if notes:
            order_notes.append((path, notes))
        if diffs:
            failed += 1
            disagreements.append((path, diffs))
        else:
            passed += 1

    total = passed + failed
    agree = 100.0 * passed / total if total else 0.0
    print("parse: %d easyconfigs in EasyBuild's output, %d in ours" % (len(ref), len(ours)))
    print("EasyBuild errors: %d; ours errors: %d; both error: %d" % (eb_errors, our_errors, both_errors))
    print("dependency order differs (same sets, info only): %d files" % len(order_notes))
    for path, notes in order_notes[:opts.show_order]:
        print("  info %s" % path)
        for n in notes:
            print("       %s" % short(n, 400))
    if disagreements:
        print("disagreements: %d (first %d below)" % (len(disagreements), min(opts.show, len(disagreements))))
        for path, diffs in disagreements[:opts.show]:
            print("  DIFF %s" % path)
            for d in diffs:
                print("       %s" % short(d, 400))
    print("agreement: %.3f%% (%d of %d; threshold %.3f%%)" % (agree, passed, total, opts.min_agree))
    ok = total > 0 and agree >= opts.min_agree
    if not ok:
        print("FAIL: agreement below threshold")
    print("%d passed, %d failed" % (passed, failed))
    return 0 if ok else 1


# ---------------------------------------------------------------------- robot

def visible(module):
    """`Name/.version` (hidden module) -> `Name/version`, to look up its easyconfig."""
    head, sep, tail = module.rpartition('/')
    if sep and tail.startswith('.'):
        return head + '/' + tail[1:]
    return module


def build_dep_map(parse_path):
    """module name -> its direct dependencies (build + runtime + toolchain), from EasyBuild's parse."""
    deps = {}
    for rec in load_jsonl(parse_path).values():
        if 'error' in rec or 'module' not in rec:
            continue
        direct = list(rec.get('builddependencies') or []) + list(rec.get('dependencies') or [])
        tc = rec.get('toolchain') or {}
        if tc.get('name') and tc.get('name') != 'system':
            direct.append('%s/%s' % (tc['name'], tc['version']))
        deps[rec['module']] = direct
    return deps


def order_violations(closure, dep_map):
    """Entries of `closure` that come before one of their own direct dependencies."""
    # a hidden module (`zlib/.1.0`) and its visible twin (`zlib/1.0`) are separate entries
    # in EasyBuild's closure; both are built from the same easyconfig
    pos = {}
    for i, mod in enumerate(closure):
        pos.setdefault(mod, i)
    bad, unknown = [], []
    for i, mod in enumerate(closure):
        direct = dep_map.get(mod, dep_map.get(visible(mod)))
        if direct is None:
            unknown.append(mod)
            continue
        for dep in direct:
            j = pos.get(dep)
            if j is not None and j > i:
                bad.append("%s (#%d) before its dependency %s (#%d)" % (mod, i + 1, dep, j + 1))
    return bad, unknown


def index_targets(results, path):
    by_target = {}
    for entry in results:
        if not isinstance(entry, dict) or 'target' not in entry:
            sys.exit("%s: entry without 'target': %s" % (path, short(entry)))
        by_target[entry['target']] = entry
    return by_target


def cmd_robot(opts):
    ref_list = load_json_array(opts.ref)
    ours = index_targets(load_json_array(opts.ours), opts.ours)
    ours_by_base = {}
    for t, e in ours.items():
        ours_by_base.setdefault(t.rsplit('/', 1)[-1], []).append(e)
    dep_map = build_dep_map(opts.deps)

    passed = failed = 0
    eb_errors = our_errors = 0
    ref_order_bad = 0
    problems = []
    used = set()
    for r in ref_list:
        target = r['target']
        o = ours.get(target)
        if o is None:
            cands = ours_by_base.get(target.rsplit('/', 1)[-1], [])
            o = cands[0] if len(cands) == 1 else None
        if o is None:
            failed += 1
            problems.append((target, ["missing in ours"]))
            continue
        used.add(o['target'])
        r_err, o_err = 'error' in r, 'error' in o
        eb_errors += r_err
        our_errors += o_err
        if r_err and o_err:
            passed += 1
            continue
        if r_err != o_err:
            failed += 1
            if r_err:
                problems.append((target, ["EasyBuild fails, ours does not: " + short(r['error'])]))
            else:
                problems.append((target, ["ours fails, EasyBuild does not: " + short(o['error'])]))
            continue

        issues = []
        if r.get('module') != o.get('module'):
            issues.append("module: EasyBuild %s, ours %s" % (r.get('module'), o.get('module')))
        rc, oc = r.get('closure') or [], o.get('closure') or []
        rs, os_ = set(rc), set(oc)
        if rs != os_:
            issues.append("closure: %d modules in EasyBuild, %d in ours; missing in ours %s; extra in ours %s"
                          % (len(rs), len(os_), fmt_set(rs - os_), fmt_set(os_ - rs)))
        if len(oc) != len(os_):
            dups = sorted({m for m in oc if oc.count(m) > 1})
            issues.append("ours lists modules more than once: %s" % fmt_set(dups))
        if o.get('module') and oc and o.get('module') not in os_:
            issues.append("ours: target module %s not in its closure" % o.get('module'))
        bad, unknown = order_violations(oc, dep_map)
        if bad:
            issues.append("order: %d dependencies come after a dependant in ours, e.g. %s"
                          % (len(bad), '; '.join(bad[:5])))
        # sanity check of the reference and of the dependency map: EasyBuild's own order must pass
        rbad, _ = order_violations(rc, dep_map)
        if rbad:
            ref_order_bad += 1
            print("  info %s: EasyBuild's own order fails the check (dependency map stale?): %s"
                  % (target, '; '.join(rbad[:3])))
        if unknown:
            print("  info %s: no parse record for %d closure module(s), order not checked for them: %s"
                  % (target, len(unknown), fmt_set(unknown[:10])))
        if issues:
            failed += 1
            problems.append((target, issues))
        else:
            passed += 1

    for t in sorted(set(ours) - used):
        failed += 1
        problems.append((t, ["only in ours (not in EasyBuild's results)"]))

    print("robot: %d targets in EasyBuild's output, %d in ours" % (len(ref_list), len(ours)))
    print("EasyBuild errors: %d; ours errors: %d" % (eb_errors, our_errors))
    if ref_order_bad:
        print("WARNING: EasyBuild's own order failed the dependency-order check for %d targets" % ref_order_bad)
    if problems:
        print("mismatches: %d (first %d below)" % (len(problems), min(opts.show, len(problems))))
        for target, issues in problems[:opts.show]:
            print("  DIFF %s" % target)
            for i in issues:
                print("       %s" % short(i, 2000))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare ebfleet's output with EasyBuild's.")
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('parse', help='compare parse JSONL files')
    p.add_argument('ref', help="EasyBuild's parse JSONL (eb_reference.py parse)")
    p.add_argument('ours', help="ebfleet's parse JSONL (ebfleet parse --json)")
    p.add_argument('--min-agree', type=float, default=99.9, help='minimum agreement in percent (default 99.9)')
    p.add_argument('--show', type=int, default=30, help='disagreements to print (default 30)')
    p.add_argument('--show-order', type=int, default=5, help='order differences to print (default 5)')
    p = sub.add_parser('robot', help='compare robot closures')
    p.add_argument('ref', help="EasyBuild's robot JSON (eb_reference.py robot)")
    p.add_argument('ours', help="ebfleet's robot JSON (ebfleet resolve --json)")
    p.add_argument('--deps', required=True, help="EasyBuild's parse JSONL for the same architecture")
    p.add_argument('--show', type=int, default=30, help='mismatches to print (default 30)')
    opts = ap.parse_args(argv)
    return cmd_parse(opts) if opts.cmd == 'parse' else cmd_robot(opts)


if __name__ == '__main__':
    sys.exit(main())
