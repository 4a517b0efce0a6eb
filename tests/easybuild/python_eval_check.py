#!/usr/bin/env python3
"""Check ebfleet's Python-subset evaluator against CPython on real easyconfig files.

usage:
  python_eval_check.py [--arch ARCH] [--rust-constants FILE] [--easybuild-python PY] DIR JSONL

  DIR     directory with *.eb files (searched recursively)
  JSONL   output of `cargo run --release -p ebfleet-core --example python_eval -- --arch ARCH DIR`

Every file is run with CPython's exec() in a fresh globals dict holding only the
predefined easyconfig constants (defined below, no EasyBuild import), and its namespace --
the names the file assigns, in first-assignment order -- is encoded exactly like the Rust
example encodes it (tuple, set, dict and float are tagged). Files agree when the encoded
namespaces are identical, or when both sides raise an error.

  --rust-constants FILE   output of `python_eval --arch ARCH --dump-constants`: must equal
                          the constants used here, so both sides evaluate with the same values
  --easybuild-python PY   a Python that can import easybuild: the constants here must equal
                          EasyBuild's EASYCONFIG_CONSTANTS + TEMPLATE_CONSTANTS (+ alternative
                          names), except the machine-dependent ARCH, HOME, OS_* and
                          SYS_PYTHON_VERSION

Prints a summary and a closing line "N passed, M failed, K skipped" (skipped: the known
exceptions listed in KNOWN_EXCEPTIONS); exits non-zero on any unexplained difference.
"""

import argparse
import json
import os
import subprocess
import sys

# Files where the Rust evaluator is known to differ from CPython on purpose, with the
# reason. Keys are paths relative to DIR.
KNOWN_EXCEPTIONS = {
}

# Constants whose EasyBuild value depends on the machine EasyBuild runs on.
MACHINE_DEPENDENT = {'ARCH', 'HOME', 'OS_TYPE', 'OS_NAME', 'OS_VERSION', 'SYS_PYTHON_VERSION'}


def constants(arch):
    """The predefined names an easyconfig may use, with the values ebfleet uses."""
    c = {
        'ARCH': arch,
        'EXTERNAL_MODULE': 'EXTERNAL_MODULE',
        'HOME': '/home/ebfleet',
        'MODULE_LOAD_ENV_HEADERS': 'CPP_HEADERS',
        'OS_TYPE': 'Linux',
        'OS_NAME': 'debian',
        'OS_VERSION': '12',
        'SYS_PYTHON_VERSION': '3.11.7',
        'SYSTEM': {'name': 'system', 'version': 'system'},
        'OS_PKG_IBVERBS_DEV': ('libibverbs-dev', 'libibverbs-devel', 'rdma-core-devel'),
        'OS_PKG_OPENSSL_BIN': 'openssl',  # a plain string in EasyBuild too
        'OS_PKG_OPENSSL_LIB': ('libssl', 'libopenssl'),
        'OS_PKG_OPENSSL_DEV': ('openssl-devel', 'libssl-dev', 'libopenssl-devel'),
        'OS_PKG_PAM_DEV': ('pam-devel', 'libpam0g-dev'),
        'SHLIB_EXT': 'so',
    }
    templates = {
        'APACHE_SOURCE': 'https://archive.apache.org/dist/%(namelower)s',
        'BITBUCKET_SOURCE': 'https://bitbucket.org/%(bitbucket_account)s/%(namelower)s/get',
        'BITBUCKET_DOWNLOADS': 'https://bitbucket.org/%(bitbucket_account)s/%(namelower)s/downloads',
        'CRAN_SOURCE': 'https://cran.r-project.org/src/contrib',
        'FTPGNOME_SOURCE': 'https://ftp.gnome.org/pub/GNOME/sources/%(namelower)s/%(version_major_minor)s',
        'GITHUB_SOURCE': 'https://github.com/%(github_account)s/%(name)s/archive',
        'GITHUB_LOWER_SOURCE': 'https://github.com/%(github_account)s/%(namelower)s/archive',
        'GITHUB_RELEASE': 'https://github.com/%(github_account)s/%(name)s/releases/download/v%(version)s',
        'GITHUB_LOWER_RELEASE':
            'https://github.com/%(github_account)s/%(namelower)s/releases/download/v%(version)s',
        'GNU_SAVANNAH_SOURCE': 'https://download-mirror.savannah.gnu.org/releases/%(namelower)s',
        'GNU_SOURCE': 'https://ftpmirror.gnu.org/gnu/%(namelower)s',
        'GNU_FTP_SOURCE': 'https://ftp.gnu.org/gnu/%(namelower)s',
        'GOOGLECODE_SOURCE': 'http://%(namelower)s.googlecode.com/files',
        'LAUNCHPAD_SOURCE': 'https://launchpad.net/%(namelower)s/%(version_major_minor)s.x/%(version)s/+download/',
        'PYPI_SOURCE': 'https://pypi.python.org/packages/source/%(nameletter)s/%(name)s',
        'PYPI_LOWER_SOURCE': 'https://pypi.python.org/packages/source/%(nameletterlower)s/%(namelower)s',
        'R_SOURCE': 'https://cran.r-project.org/src/base/R-%(version_major)s',
        'SOURCEFORGE_SOURCE': 'https://download.sourceforge.net/%(namelower)s',
        'XORG_DATA_SOURCE': 'https://xorg.freedesktop.org/archive/individual/data/',
        'XORG_LIB_SOURCE': 'https://xorg.freedesktop.org/archive/individual/lib/',
        'XORG_PROTO_SOURCE': 'https://xorg.freedesktop.org/archive/individual/proto/',
        'XORG_UTIL_SOURCE': 'https://xorg.freedesktop.org/archive/individual/util/',
        'XORG_XCB_SOURCE': 'https://xorg.freedesktop.org/archive/individual/xcb/',
    }
    for ext in ['tar.gz', 'tar.xz', 'tar.bz2', 'tgz', 'txz', 'tbz2', 'tb2', 'gtgz', 'zip', 'tar', 'xz',
                'tar.Z']:
        suffix = ext.replace('.', '_').upper()
        templates['SOURCE_' + suffix] = '%(name)s-%(version)s.' + ext
        templates['SOURCELOWER_' + suffix] = '%(namelower)s-%(version)s.' + ext
        templates['VERSION_' + suffix] = '%(version)s.' + ext
        templates['V_VERSION_' + suffix] = 'v%(version)s.' + ext
    for pyver, infix in (('py2.py3', ''), ('py2', 'PY2_'), ('py3', 'PY3_')):
        templates['SOURCE_%sWHL' % infix] = '%%(name)s-%%(version)s-%s-none-any.whl' % pyver
        templates['SOURCELOWER_%sWHL' % infix] = '%%(namelower)s-%%(version)s-%s-none-any.whl' % pyver
    alternatives = {
        'APACHE_URL': 'APACHE_SOURCE',
        'BITBUCKET_GET_URL': 'BITBUCKET_SOURCE',
        'BITBUCKET_DOWNLOADS_URL': 'BITBUCKET_DOWNLOADS',
        'CRAN_URL': 'CRAN_SOURCE',
        'FTP_GNOME_URL': 'FTPGNOME_SOURCE',
        'GITHUB_URL': 'GITHUB_SOURCE',
        'GITHUB_URL_LOWER': 'GITHUB_LOWER_SOURCE',
        'GITHUB_RELEASE_URL': 'GITHUB_RELEASE',
        'GITHUB_RELEASE_URL_LOWER': 'GITHUB_LOWER_RELEASE',
        'GNU_SAVANNAH_URL': 'GNU_SAVANNAH_SOURCE',
        'GNU_FTP_URL': 'GNU_FTP_SOURCE',
        'GNU_URL': 'GNU_SOURCE',
        'GOOGLECODE_URL': 'GOOGLECODE_SOURCE',
        'LAUNCHPAD_URL': 'LAUNCHPAD_SOURCE',
        'PYPI_URL': 'PYPI_SOURCE',
        'PYPI_URL_LOWER': 'PYPI_LOWER_SOURCE',
        'R_URL': 'R_SOURCE',
        'SOURCEFORGE_URL': 'SOURCEFORGE_SOURCE',
        'XORG_DATA_URL': 'XORG_DATA_SOURCE',
        'XORG_LIB_URL': 'XORG_LIB_SOURCE',
        'XORG_PROTO_URL': 'XORG_PROTO_SOURCE',
        'XORG_UTIL_URL': 'XORG_UTIL_SOURCE',
        'XORG_XCB_URL': 'XORG_XCB_SOURCE',
    }
    for ext in ['TAR_GZ', 'TAR_XZ', 'TAR_BZ2', 'TGZ', 'TXZ', 'TBZ2', 'TB2', 'GTGZ', 'ZIP', 'TAR', 'XZ',
                'TAR_Z', 'WHL', 'PY2_WHL', 'PY3_WHL']:
        alternatives['SOURCE_LOWER_' + ext] = 'SOURCELOWER_' + ext
    for alt, name in alternatives.items():
        templates[alt] = templates[name]
    c.update(templates)
    return c


def enc(v):
    """Encode a value so that every Python type stays distinct in JSON."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return {'float': repr(v)}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, tuple):
        return {'tuple': [enc(x) for x in v]}
    if isinstance(v, (set, frozenset)):
        return {'set': [enc(x) for x in sorted(v, key=repr)]}
    if isinstance(v, dict):
        return {'dict': [[enc(k), enc(x)] for k, x in v.items()]}
    raise TypeError('value of type %s is outside the evaluator\'s value model' % type(v).__name__)


class Recorder(dict):
    """Globals dict that records the order in which names are first assigned."""

    def __init__(self, initial):
        super().__init__(initial)
        self.assigned = {}

    def __setitem__(self, key, value):
        self.assigned.setdefault(key, None)
        super().__setitem__(key, value)


def run_cpython(path, consts):
    """(namespace as [[name, encoded], ...], None) or (None, error message)."""
    try:
        with open(path, encoding='utf-8') as f:
            src = f.read()
        g = Recorder(consts)
        exec(compile(src, path, 'exec'), g)
        return [[k, enc(g[k])] for k in g.assigned], None
    except Exception as err:  # pylint: disable=broad-except
        return None, '%s: %s' % (type(err).__name__, err)


def canon(x):
    return json.dumps(x, ensure_ascii=False, separators=(',', ':'))


def first_difference(py_ns, rs_ns):
    py_d, rs_d = dict((k, canon(v)) for k, v in py_ns), dict((k, canon(v)) for k, v in rs_ns)
    for k, _ in py_ns:
        if k not in rs_d:
            return '%s: only in CPython' % k
        if py_d[k] != rs_d[k]:
            return '%s: CPython %s, Rust %s' % (k, py_d[k][:200], rs_d[k][:200])
    for k, _ in rs_ns:
        if k not in py_d:
            return '%s: only in Rust' % k
    return 'order of names: CPython %s, Rust %s' % ([k for k, _ in py_ns][:20], [k for k, _ in rs_ns][:20])


EB_DUMP = r'''
import json, sys
from easybuild.framework.easyconfig.constants import EASYCONFIG_CONSTANTS
from easybuild.framework.easyconfig.templates import (
    ALTERNATIVE_EASYCONFIG_TEMPLATE_CONSTANTS, TEMPLATE_CONSTANTS)
out = {}
for table in (EASYCONFIG_CONSTANTS, TEMPLATE_CONSTANTS):
    for name, (value, _doc) in table.items():
        out[name] = value
for alt, name in ALTERNATIVE_EASYCONFIG_TEMPLATE_CONSTANTS.items():
    out[alt] = out[name]
sys.stdout.write(repr(out))
'''


def check_constants(consts, args):
    """Compare the constants with the Rust table and with EasyBuild's; returns #problems."""
    problems = 0
    mine = {k: canon(enc(v)) for k, v in consts.items()}
    if args.rust_constants:
        with open(args.rust_constants, encoding='utf-8') as f:
            rust = json.load(f)
        rust = {k: canon(v) for k, v in rust.items()}
        for name in sorted(set(mine) | set(rust)):
            if mine.get(name) != rust.get(name):
                print('constant %s: Rust table %s, this script %s' % (name, rust.get(name), mine.get(name)))
                problems += 1
        print('constants: Rust table (%d names) %s the values used here'
              % (len(rust), 'equals' if problems == 0 else 'DIFFERS FROM'))
    else:
        print('constants: Rust table not checked (no --rust-constants)')
    if args.easybuild_python:
        import ast  # pylint: disable=import-outside-toplevel
        res = subprocess.run([args.easybuild_python, '-c', EB_DUMP], capture_output=True, text=True,
                             check=False)
        if res.returncode != 0:
            print('constants: could not import EasyBuild: %s' % res.stderr.strip()[-500:])
            return problems + 1
        eb = {k: canon(enc(v)) for k, v in ast.literal_eval(res.stdout).items()}
        before = problems
        for name in sorted(set(mine) | set(eb)):
            if name in MACHINE_DEPENDENT and name in mine and name in eb:
                continue
            if mine.get(name) != eb.get(name):
                print('constant %s: EasyBuild %s, this script %s' % (name, eb.get(name), mine.get(name)))
                problems += 1
        print("constants: EasyBuild's table (%d names) %s the values used here (machine-dependent %s "
              'excepted)' % (len(eb), 'equals' if problems == before else 'DIFFERS FROM',
                             ', '.join(sorted(MACHINE_DEPENDENT))))
    else:
        print("constants: EasyBuild's table not checked (no --easybuild-python)")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('dir')
    ap.add_argument('jsonl')
    ap.add_argument('--arch', default='x86_64')
    ap.add_argument('--rust-constants')
    ap.add_argument('--easybuild-python')
    args = ap.parse_args()

    consts = constants(args.arch)
    const_problems = check_constants(consts, args)

    rust = {}
    with open(args.jsonl, encoding='utf-8') as f:
        for line in f:
            rec = json.loads(line)
            rust[rec['path']] = rec

    paths = []
    for root, _dirs, files in os.walk(args.dir):
        for fn in files:
            if fn.endswith('.eb'):
                paths.append(os.path.relpath(os.path.join(root, fn), args.dir))
    paths.sort()

    agree = both_error = 0
    differ, rust_only_error, py_only_error, missing, known = [], [], [], [], []
    for rel in paths:
        py_ns, py_err = run_cpython(os.path.join(args.dir, rel), consts)
        rec = rust.pop(rel, None)
        if rec is None:
            missing.append(rel)
            continue
        rs_err = rec.get('error')
        rs_ns = None if rs_err is not None else list(rec['namespace'].items())
        if py_err is not None and rs_err is not None:
            both_error += 1
            continue
        if rel in KNOWN_EXCEPTIONS:
            known.append(rel)
            continue
        if rs_err is not None:
            rust_only_error.append((rel, rs_err))
        elif py_err is not None:
            py_only_error.append((rel, py_err))
        elif canon(py_ns) == canon(rs_ns):
            agree += 1
        else:
            differ.append((rel, first_difference(py_ns, rs_ns)))

    def show(title, items, limit=30):
        if not items:
            return
        print('%s: %d' % (title, len(items)))
        for item in items[:limit]:
            print('  %s' % (item if isinstance(item, str) else '%s: %s' % item))
        if len(items) > limit:
            print('  ...')

    print('arch %s: %d files: %d agree exactly, %d raise an error on both sides' % (
        args.arch, len(paths), agree, both_error))
    show('differ (first differing name)', differ)
    show('error only in Rust', rust_only_error)
    show('error only in CPython', py_only_error)
    show('missing from the JSONL', missing)
    show('in the JSONL but not in DIR', sorted(rust))
    for rel in known:
        print('known exception %s: %s' % (rel, KNOWN_EXCEPTIONS[rel]))
    failed = len(differ) + len(rust_only_error) + len(py_only_error) + len(missing) + len(rust)
    failed += const_problems
    print('%d passed, %d failed, %d skipped' % (agree + both_error, failed, len(known)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
