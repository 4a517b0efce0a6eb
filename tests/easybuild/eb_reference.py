#!/usr/bin/env python3
"""Ask EasyBuild itself for the truth that ebfleet must reproduce.

Run this with the Python of the virtual environment that has EasyBuild
installed (``<venv>/bin/python eb_reference.py ...``).  It never installs
anything: every EasyBuild run gets an empty MODULEPATH, a throw-away
prefix/buildpath/installpath/tmpdir, no user or system configuration files,
no ``EASYBUILD_*`` variables from the caller, and the given easyconfigs
directory as its only robot path.

Subcommands
-----------
parse --easyconfigs DIR --arch x86_64|aarch64 --out FILE.jsonl [--jobs N]
    Parse every ``*.eb`` under DIR with ``process_easyconfig`` (default,
    parent-first toolchain resolution) and write one JSON object per line,
    sorted by path::

        {"path": "g/GCC/GCC-12.3.0.eb", "name": "GCC", "version": "12.3.0",
         "versionsuffix": "", "toolchain": {"name": "system", "version": "system"},
         "module": "GCC/12.3.0", "builddependencies": [...], "dependencies": [...]}

    or ``{"path": ..., "error": "<EasyBuild's message>"}``.  Module names are
    EasyBuild's ``full_mod_name`` after ``_finalize_dependencies``.
    ``builddependencies`` is flattened (iterated lists / multi_deps) and
    de-duplicated in EasyBuild's order; ``dependencies`` are the runtime
    dependencies in EasyBuild's order, de-duplicated too (hidden ones as
    ``Name/.version``, external modules as written).  The toolchain is not
    listed as a dependency (it is in ``toolchain``).

robot --easyconfigs DIR --arch A --out FILE.json [--jobs N] [--targets-file F] TARGET...
    For each target run the real command line
    ``eb TARGET --dry-run --robot-paths=DIR ... --robot`` and write a JSON array,
    in the order of the targets::

        [{"target": T, "module": "<module of T>", "closure": [modules in eb's order]},
         {"target": T, "error": "<eb's last ERROR line>"}]

    ``closure`` is every module eb prints (`` * [ ] PATH (module: NAME)``),
    the target's own module included (eb prints it last).

For ``--arch`` different from the host, EasyBuild runs with the ``archshim``
directory beside this script on PYTHONPATH: its ``sitecustomize`` patches
``platform.uname`` before ``easybuild`` is imported (see its docstring).  The
shim is used for every run, so the reference does not depend on the host.

Lmod: EasyBuild drives Lmod through ``$LMOD_CMD``.  If that is not set, pass
``--lmod-init FILE`` (or set ``EBFLEET_LMOD_INIT``) with the shell script that
initialises Lmod; it is sourced with bash to obtain Lmod's variables.

``PYTHONHASHSEED`` is fixed (``--hash-seed``, default 0) so the order EasyBuild
gives to dependencies written as set literals is reproducible.
"""
import argparse
import concurrent.futures
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_DIR = os.path.join(HERE, 'archshim')
ARCH_ENV = 'EBFLEET_EB_ARCH'
ARCHES = ('x86_64', 'aarch64')

DRY_RUN_LINE = re.compile(r'^ \* \[(?P<status>.)\] (?P<path>.*) \(module: (?P<module>.*)\)$')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- environment

def lmod_environment(init_script):
    """Variables set by sourcing Lmod's init script (only the LMOD_*/MODULE* ones)."""
    out = subprocess.run(['bash', '-c', 'source "$1" >/dev/null 2>&1; env -0', 'bash', init_script],
                         check=True, capture_output=True).stdout
    env = {}
    for item in out.split(b'\0'):
        key, sep, value = item.decode(errors='replace').partition('=')
        if sep and (key.startswith('LMOD') or key in ('MODULESHOME', 'MODULEPATH_ROOT')):
            env[key] = value
    return env


def eb_environment(arch, workdir, hash_seed, lmod_init=None):
    """Environment for EasyBuild: no caller config, empty MODULEPATH, arch shim."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('EASYBUILD_') and k not in ('PYTHONPATH', 'PYTHONSTARTUP', 'PYTHONHOME',
                                                             'EB_PYTHON', 'EB_INSTALLPYTHON', 'EB_VERBOSE',
                                                             'LOADEDMODULES', '_LMFILES_', 'MODULEPATH',
                                                             'CDPATH', 'XDG_CONFIG_HOME', 'XDG_CONFIG_DIRS')}
    if 'LMOD_CMD' not in env:
        lmod_init = lmod_init or os.environ.get('EBFLEET_LMOD_INIT')
        if not lmod_init:
            sys.exit("error: $LMOD_CMD is not set: source Lmod's init script first, "
                     "or pass --lmod-init (or set EBFLEET_LMOD_INIT)")
        env.update(lmod_environment(lmod_init))
    for sub in ('xdg-home', 'xdg-dirs'):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    env.update({
        'EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES': '1',
        'XDG_CONFIG_HOME': os.path.join(workdir, 'xdg-home'),
        'XDG_CONFIG_DIRS': os.path.join(workdir, 'xdg-dirs'),
        'MODULEPATH': '',
        'PYTHONPATH': SHIM_DIR,
        ARCH_ENV: arch,
        'PYTHONHASHSEED': str(hash_seed),
        # no __pycache__ beside the shim (it lives in the source tree)
        'PYTHONDONTWRITEBYTECODE': '1',
        # make the 'eb' bash script use exactly this interpreter
        'EB_PYTHON': sys.executable,
        'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),
    })
    return env


def eb_config_args(easyconfigs, workdir, ignore_index=False):
    """EasyBuild options shared by `parse` and `robot`."""
    args = [
        '--prefix=' + os.path.join(workdir, 'prefix'),
        '--buildpath=' + os.path.join(workdir, 'build'),
        '--installpath=' + os.path.join(workdir, 'install'),
        '--sourcepath=' + os.path.join(workdir, 'sources'),
        '--repositorypath=' + os.path.join(workdir, 'repository'),
        '--tmpdir=' + os.path.join(workdir, 'tmp'),
        '--robot-paths=' + easyconfigs,
        '--modules-tool=Lmod',
        '--module-naming-scheme=EasyBuildMNS',
    ]
    if ignore_index:
        args.append('--ignore-index')
    return args


def relativize(text, easyconfigs):
    """Drop the machine-specific easyconfigs directory from a message."""
    base = easyconfigs.rstrip(os.sep)
    return text.replace(base + os.sep, '').replace(base, '<easyconfigs>')


# ---------------------------------------------------------------------- parse

_W = {}  # per-worker state


def _worker_init(easyconfigs, arch, workdir, ignore_index, minimal_toolchains):
    import platform
    if platform.uname().machine != arch:
        raise RuntimeError("arch shim not active in worker (uname says %s)" % platform.uname().machine)
    from easybuild.tools.options import set_up_configuration
    from easybuild.framework.easyconfig.constants import EASYCONFIG_CONSTANTS
    wdir = tempfile.mkdtemp(prefix='w%d-' % os.getpid(), dir=workdir)
    os.makedirs(os.path.join(wdir, 'tmp'), exist_ok=True)
    args = eb_config_args(easyconfigs, wdir, ignore_index) + ['--ignore-osdeps']
    if minimal_toolchains:
        args.append('--minimal-toolchains')
    set_up_configuration(args=args, silent=True)
    if EASYCONFIG_CONSTANTS['ARCH'][0] != arch:
        raise RuntimeError("EasyBuild's ARCH is %s, not %s" % (EASYCONFIG_CONSTANTS['ARCH'][0], arch))
    _W['easyconfigs'] = easyconfigs


def _mod_names(deps):
    names = []
    for dep in deps:
        name = dep['full_mod_name']
        if name not in names:
            names.append(name)
    return names


def _parse_one(relpath):
    from easybuild.framework.easyconfig.easyconfig import process_easyconfig
    from easybuild.tools.build_log import EasyBuildError
    easyconfigs = _W['easyconfigs']
    path = os.path.join(easyconfigs, relpath)
    try:
        ec = process_easyconfig(path)[0]['ec']  # EasyBuild 5 has no multi-block easyconfigs
        tc = ec['toolchain']
        rec = {
            'path': relpath,
            'name': str(ec['name']),
            'version': str(ec['version']),
            'versionsuffix': str(ec['versionsuffix'] or ''),
            'toolchain': {'name': str(tc['name']), 'version': str(tc['version'])},
            'module': ec.full_mod_name,
            # builddependencies(): flattened when iterated, duplicates removed (EasyBuild's own method)
            'builddependencies': _mod_names(ec.builddependencies()),
            # runtime deps; hidden ones were substituted in place by filter_hidden_deps
            'dependencies': _mod_names(ec['dependencies']),
        }
        return rec
    except EasyBuildError as err:
        return {'path': relpath, 'error': relativize(err.msg, easyconfigs)}
    except Exception as err:  # EasyBuild lets some errors in easyconfig files escape as Python errors
        return {'path': relpath, 'error': relativize('%s: %s' % (type(err).__name__, err), easyconfigs)}


def find_easyconfigs(easyconfigs):
    found = []
    for root, dirs, files in os.walk(easyconfigs):
        dirs.sort()
        for fn in files:
            if fn.endswith('.eb'):
                found.append(os.path.relpath(os.path.join(root, fn), easyconfigs))
    return sorted(found)


def cmd_parse(opts, workdir):
    easyconfigs = os.path.abspath(opts.easyconfigs)
    paths = find_easyconfigs(easyconfigs)
    if opts.limit:
        paths = paths[:opts.limit]
    log("parse: %d easyconfigs, arch %s, %d worker(s)" % (len(paths), opts.arch, opts.jobs))
    env = eb_environment(opts.arch, workdir, opts.hash_seed, opts.lmod_init)
    # the workers are new interpreters started with this environment, so the
    # arch shim (sitecustomize) and the hash seed are in place before easybuild is imported
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    start = time.monotonic()
    n_err = 0
    try:
        ctx = multiprocessing.get_context('spawn')
        with ctx.Pool(opts.jobs, initializer=_worker_init,
                      initargs=(easyconfigs, opts.arch, workdir, opts.ignore_index, opts.minimal_toolchains)) as pool, \
                open(opts.out, 'w') as out:
            for i, rec in enumerate(pool.imap(_parse_one, paths, chunksize=16), 1):
                n_err += 'error' in rec
                out.write(json.dumps(rec, sort_keys=False) + '\n')
                if i % 1000 == 0:
                    log("  %d/%d (%.0f s)" % (i, len(paths), time.monotonic() - start))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    log("parse: %d files, %d errors, %.1f s -> %s" % (len(paths), n_err, time.monotonic() - start, opts.out))


# ---------------------------------------------------------------------- robot

def read_targets(opts):
    targets = list(opts.targets)
    if opts.targets_file:
        with open(opts.targets_file) as fh:
            for line in fh:
                line = line.split('#', 1)[0].strip()
                if line:
                    targets.append(line)
    return targets


def find_eb():
    cand = os.path.join(os.path.dirname(sys.executable), 'eb')
    return cand if os.path.exists(cand) else shutil.which('eb')


def run_robot(target, easyconfigs, eb, env, workdir, ignore_index, minimal_toolchains, timeout):
    os.makedirs(os.path.join(workdir, 'tmp'), exist_ok=True)
    cmd = [eb, target, '--dry-run'] + eb_config_args(easyconfigs, workdir, ignore_index)
    if minimal_toolchains:
        cmd.append('--minimal-toolchains')
    cmd.append('--robot')  # no argument: the robot path is --robot-paths
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'target': target, 'error': 'timeout after %d s' % timeout}, time.monotonic() - start
    secs = time.monotonic() - start
    entries = []
    for line in proc.stdout.splitlines():
        m = DRY_RUN_LINE.match(line)
        if m:
            entries.append((m.group('path'), m.group('module')))
    if proc.returncode != 0 or not entries:
        lines = (proc.stdout + '\n' + proc.stderr).splitlines()
        errors = [ln for ln in lines if ln.startswith('ERROR:')]
        if errors:
            msg = errors[-1][len('ERROR:'):].strip()
        else:
            rest = [ln for ln in proc.stderr.splitlines() if ln.strip()] or ['(no output)']
            msg = 'exit code %d: %s' % (proc.returncode, rest[-1].strip())
        return {'target': target, 'error': relativize(msg, easyconfigs)}, secs
    # the target's own entry: same file (a path) or same file name in the robot path
    if os.sep in target:
        want = os.path.realpath(target)
        hits = [mod for p, mod in entries if os.path.realpath(p) == want]
    else:
        hits = [mod for p, mod in entries if os.path.basename(p) == target]
    module = hits[-1] if hits else entries[-1][1]
    return {'target': target, 'module': module, 'closure': [mod for _, mod in entries]}, secs


def cmd_robot(opts, workdir):
    easyconfigs = os.path.abspath(opts.easyconfigs)
    targets = read_targets(opts)
    if not targets:
        sys.exit("error: no targets")
    eb = opts.eb or find_eb()
    if not eb:
        sys.exit("error: no 'eb' found beside %s; pass --eb" % sys.executable)
    env = eb_environment(opts.arch, workdir, opts.hash_seed, opts.lmod_init)
    # absolute paths for targets given as paths; bare file names are found by eb in the robot path
    targets = [os.path.abspath(t) if os.sep in t else t for t in targets]
    log("robot: %d targets, arch %s, %d job(s)" % (len(targets), opts.arch, opts.jobs))
    start = time.monotonic()
    results = [None] * len(targets)
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        futs = {}
        for i, t in enumerate(targets):
            wdir = os.path.join(workdir, 'run%04d' % i)
            futs[pool.submit(run_robot, t, easyconfigs, eb, env, wdir, opts.ignore_index,
                             opts.minimal_toolchains, opts.timeout)] = i
        for fut in concurrent.futures.as_completed(futs):
            i = futs[fut]
            res, secs = fut.result()
            if os.sep in res['target']:
                res['target'] = relativize(res['target'], easyconfigs)
            results[i] = res
            what = 'ERROR ' + res['error'][:100] if 'error' in res else '%d modules' % len(res['closure'])
            log("  %-60s %6.1f s  %s" % (os.path.basename(targets[i]), secs, what))
            shutil.rmtree(os.path.join(workdir, 'run%04d' % i), ignore_errors=True)
    with open(opts.out, 'w') as out:
        json.dump(results, out, indent=1)
        out.write('\n')
    n_err = sum('error' in r for r in results)
    log("robot: %d targets, %d errors, %.1f s -> %s" % (len(results), n_err, time.monotonic() - start, opts.out))


# ----------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)

    def common(p):
        p.add_argument('--easyconfigs', required=True, help='easyconfigs directory (the only robot path)')
        p.add_argument('--arch', required=True, choices=ARCHES)
        p.add_argument('--out', required=True)
        p.add_argument('--jobs', type=int, default=1)
        p.add_argument('--lmod-init', help="Lmod's bash init script, if $LMOD_CMD is not set")
        p.add_argument('--hash-seed', type=int, default=0, help='PYTHONHASHSEED for EasyBuild (default 0)')
        p.add_argument('--ignore-index', action='store_true', help="pass --ignore-index to EasyBuild")
        p.add_argument('--workdir', help='scratch directory (default: a new temporary one, removed at the end)')
        p.add_argument('--minimal-toolchains', action='store_true',
                       help="pass --minimal-toolchains to EasyBuild (not the default; for exploring only)")

    p = sub.add_parser('parse', help='parse every easyconfig with EasyBuild')
    common(p)
    p.add_argument('--limit', type=int, default=0, help='only the first N files (for testing)')

    p = sub.add_parser('robot', help="run 'eb --dry-run --robot' per target")
    common(p)
    p.add_argument('--targets-file')
    p.add_argument('--eb', help="the 'eb' command (default: beside this Python)")
    p.add_argument('--timeout', type=int, default=1800, help='seconds per eb run')
    p.add_argument('targets', nargs='*')

    opts = ap.parse_args(argv)
    if opts.jobs < 1:
        ap.error('--jobs must be >= 1')
    if not os.path.isdir(opts.easyconfigs):
        ap.error('no such directory: %s' % opts.easyconfigs)

    workdir = opts.workdir or tempfile.mkdtemp(prefix='eb-reference-')
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)
    try:
        if opts.cmd == 'parse':
            cmd_parse(opts, workdir)
        else:
            cmd_robot(opts, workdir)
    finally:
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
