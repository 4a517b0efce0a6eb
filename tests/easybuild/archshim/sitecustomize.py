"""Make EasyBuild believe it runs on another CPU architecture.

Python imports a module called ``sitecustomize`` at start-up from the first
``sys.path`` entry that has one, before the program's own imports.  Putting
this directory on ``PYTHONPATH`` and setting ``EBFLEET_EB_ARCH`` to
``x86_64`` or ``aarch64`` therefore patches the interpreter before
``easybuild`` is imported, both for ``eb_reference.py parse`` workers and for
the real ``eb`` command (whose bash wrapper runs ``python -m easybuild.main``).

EasyBuild 5.4.1 learns the architecture only from ``platform.uname()``:

* ``easybuild.framework.easyconfig.constants._get_arch_constant`` ->
  the ``ARCH`` constant of easyconfig files (``platform.uname()[4]``);
* ``easybuild.tools.systemtools.get_cpu_architecture`` -> ``'AArch64'`` or
  ``'x86_64'``, which picks the ``arch=...`` keys of version dicts
  (``pick_dep_version`` / ``pick_system_specific_value``);
* ``easybuild.framework.easyconfig.templates`` -> the ``%(arch)s`` template;
* ``platform.machine()`` (``get_platform_name``) reads ``uname().machine``.

``os.uname()`` is used only by the Qt easyblock (kernel version), and
``/proc/cpuinfo`` only for vendor/model/optarch, none of which matters for
parsing or for ``--dry-run``.  So replacing ``platform.uname`` (and its
cache) is enough.
"""
import os
import platform

_ENV = 'EBFLEET_EB_ARCH'


def force_arch(machine):
    """Make platform.uname()/platform.machine()/platform.processor() report `machine`."""
    real = platform.uname()
    fake = platform.uname_result(real.system, real.node, real.release, real.version, machine)
    # 'processor' is a lazily computed cached_property: pin it too
    fake.__dict__['processor'] = machine
    platform._uname_cache = fake

    def uname():
        return fake

    uname.__doc__ = platform.uname.__doc__
    platform.uname = uname
    return fake


_arch = os.environ.get(_ENV)
if _arch:
    force_arch(_arch)
