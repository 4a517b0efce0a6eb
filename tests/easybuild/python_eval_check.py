#!/usr/bin/env python3
"""Check ebfleet's Python-subset evaluator against CPython on real easyconfig files.

usage:
  python_eval_check.py [--arch ARCH] [--rust-constants FILE] [--easybuild-python PY] DIR JSONL
  python_eval_check.py --write-snippets DIR

  DIR     directory with *.eb files (searched recursively)
  JSONL   output of `cargo run --release -p ebfleet-python --example python_eval -- --arch ARCH DIR`

Run it with CPython 3.11 (EasyBuild's venv Python), the version the evaluator follows.
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

  --write-snippets DIR    write small .eb files (SNIPPETS below) that exercise semantics
                          real easyconfigs barely touch (formatting corner cases, floats,
                          slicing, errors, ...) into DIR, then exit; check them like DIR above

Prints a summary and a closing line "N passed, M failed, K skipped" (skipped: the known
exceptions listed in KNOWN_EXCEPTIONS); exits non-zero on any unexplained difference.
"""

import argparse
import json
import os
import subprocess
import sys

# Files where the Rust evaluator is known to differ from CPython on purpose, with the
# reason. Keys are paths relative to DIR. No real easyconfig is among them.
KNOWN_EXCEPTIONS = {
    'unsupported_named_escape.eb': 'snippet: \\N{...} escapes need the Unicode name database; '
                                   'outside the subset',
    'unsupported_dict_unpacking.eb': 'snippet: ** unpacking is outside the subset',
}

# Constants whose EasyBuild value depends on the machine EasyBuild runs on.
MACHINE_DEPENDENT = {'ARCH', 'HOME', 'OS_TYPE', 'OS_NAME', 'OS_VERSION', 'SYS_PYTHON_VERSION'}


# Small files exercising the evaluator beyond what real easyconfigs use, written by
# --write-snippets. ok_*.eb must give the same namespace as CPython; each err_*.eb must
# raise an error on both sides.
SNIPPETS = {
    'ok_1.eb': (
        r"""a1 = '%s|%5s|%-5s|%.2s|%r|%a' % ('x', 'ab', 'ab', 'abc', 'q"\'', 'é')
a2 = '%d|%i|%5d|%-5d|%05d|%+d|% d|%x|%X|%#x|%o|%#o|%c|%%' % (1, -2, 3, 4, -5, 6, 7, 255, 255, 255, 8, 8, 65)
a3 = '%f|%.2f|%.0f|%10.3f|%-10.1f|%e|%.3E|%g|%G|%#g|%.3g|%g' % (0.98, 2.675, 0.5, 3.14159, -2.5, 12345.678, 0.000123, 1e-5, 1e20, 1.0, 1234.5, 100000.0)
a4 = '%s %s' % (1.0, 1e16)
a5 = '%(a)s-%(b)05.1f' % {'a': [1, (2,)], 'b': 3.14159}
a6 = '%s' % ((1, 2),)
a7 = '%s' % [1, 'x']
a8 = '%s' % {'k': None}
a9 = '%d' % 3.99
a10 = '%*d|%-*d|%.*f' % (5, 1, 4, 2, 2, 3.14159)
b1 = '{}|{:>6}|{:<6}|{:^6}|{:*^7}|{!r}|{!s}'.format('a', 'b', 'c', 'd', 'e', 'f', 'g')
b2 = '{0}{1}{0}|{x}|{x!r:>5}'.format('p', 'q', x='z')
b3 = '{:d}|{:5d}|{:05d}|{:+d}|{: d}|{:,}|{:_}|{:x}|{:#X}|{:o}|{:b}|{:#b}|{:c}'.format(1, 2, 3, 4, 5, 1234567, 1234567, 255, 255, 8, 5, 5, 97)
b4 = '{:f}|{:.2f}|{:10.3f}|{:e}|{:.2e}|{:g}|{:.3g}|{:%}|{:.1%}|{:,.2f}|{}|{:.3}|{:10}'.format(1.5, 2.675, 3.14159, 1234.5, 0.00012, 1e-7, 123456.0, 0.25, 0.123, 1234567.891, 0.1, 12.0, 1.5)
b5 = '{0[k]}|{1[1]}|{{lit}}'.format({'k': 'v'}, [7, 8])
b6 = '{:>{w}}|{:.{p}f}'.format('x', 2.5, w=4, p=2)
b7 = '{:=+8.2f}|{:08.3f}|{:-^9}'.format(-3.5, -3.5, 'mid')
c1 = f"{'a'}{1}{2.5}{None}{True}{[1, 'b']}{(1,)}{ {'k': 1} }"
c2 = f'{"x":>4}|{3.14159:.2f}|{42:05d}|{"q"!r}|{255:#x}|{1e16}|{0.1+0.2}'
w = 6
c3 = f'{"r":>{w}}|{3.5:{w}.2f}|{w=}|{w!r}'
c4 = rf'\d+{w}\n'
"""
        r"""c5 = f'''multi
{w}
line'''
"""
        r"""d1 = [0.1, 0.5, 1/3, 2/3, 1e22, 1e-7, 123456789.123, 1.0, -0.0, 5e-324, 1.7976931348623157e308, 100.0/3]
d2 = (7 // 2, -7 // 2, 7 % -2, -7 % 2, 7.5 // 2, -7.5 % 2, 2 * 3.5, 10 / 4, 1 + True, True + True)
d3 = (str(0.98), str(1e100), repr(1.5), int('42'), int(' -7 '), int(3.9), int(-3.9), float('1.5'), float(' 2 '), int('0x1f', 16), int('0b11', 0), float('1e3'))
d4 = (abs(-3), abs(-2.5), min(3, 1, 2), max('a', 'b'), sum([1, 2, 3]), sum([0.5, 0.25]), len('héllo'), chr(233), ord('é'), bool(''), bool('0'))
e1 = 'abcdefghij'
e2 = (e1[2], e1[-1], e1[:3], e1[-3:], e1[::2], e1[::-1], e1[1:-1:3], e1[100:], e1[-100:2], e1[5:1], e1[5:1:-1], e1[::-3])
e3 = [1, 2, 3, 4, 5][1::2] + [1, 2, 3][::-1]
e4 = ('héllo wörld'[1:8:2], 'héllo'[-1], 'ab' * 3, 3 * 'ab', 'x' * 0, [0] * 3, (1,) * 2)
f1 = (' a b  c '.split(), 'a,b,,c'.split(','), 'a b c'.split(None, 1), 'a b c'.rsplit(None, 1), 'a.b.c'.rsplit('.', 1), ''.split(), ''.split(','), '  x  '.split(' '))
f2 = (' x '.strip(), 'xxaxx'.strip('x'), '  a'.lstrip(), 'a  '.rstrip(), 'abc'.replace('b', 'B'), 'aaa'.replace('a', 'b', 2), 'abc'.replace('', '-'))
f3 = ('GCC'.lower(), 'gcc'.upper(), 'Straße'.upper(), 'ÀB'.lower(), 'abc'.startswith('ab'), 'abc'.endswith(('x', 'c')), 'abcabc'.find('c'), 'abcabc'.rfind('c'), 'a-b-c'.count('-'))
f4 = ('42'.zfill(5), '-42'.zfill(5), 'ab'.ljust(4, '*'), 'ab'.rjust(4), 'ab'.center(7, '.'), 'a=b'.partition('='), 'a=b=c'.rpartition('='), 'x\ny\r\nz'.splitlines(), '12'.isdigit(), 'a1'.isalnum())
f5 = '-'.join(['a', 'b']) + ''.join('xyz') + ','.join(sorted({'b': 1, 'a': 2})) + ' '.join(s.upper() for s in ['p', 'q'])
g1 = [x * 2 for x in range(5) if x % 2 == 0]
g2 = [(a, b) for a in 'ab' for b in (1, 2) if b != 1 or a == 'a']
g3 = {k: v for k, v in [('a', 1), ('b', 2), ('a', 3)]}
g4 = {x % 3 for x in range(10)}
g5 = [[y for y in range(x)] for x in range(3)]
g6 = sorted([3, 1, 2], reverse=True) + sorted(['b', 'A', 'a'])
g7 = list(zip('ab', [1, 2, 3])) + list(enumerate('xy', 1))
g8 = dict([('a', 1), ('b', 2)], c=3)
g9 = list(reversed([1, 2, 3])) + list(range(10, 0, -3))
h1 = {'a': 1, 'b': 2, 'a': 3}
h2 = {1: 'int', 1.0: 'float', True: 'bool'}
h3 = {(1, 2): 'x', 'k': [1]}
h4 = ('a' in h1, 'z' not in h1, 1 in [1.0], (1,) in [(1,)], 'ab' in 'cabd', 2 in {1: 2}, [1] == [1.0], (1, 2) < (1, 3), 'a' < 'b' < 'c', [1, 2] < [1, 2, 0])
h5 = h1.get('a'), h1.get('z', 'dflt'), len(h1), list(h1.keys()), list(h1.values()), list(h1.items())
h6 = {'x', 'y', 'x'}
h7 = set([3, 1, 3]) - {1}
i1 = 'a' if 0 else 'b' if [] else 'c'
i2 = (0 or 'x', 1 and 'y', None or [] or 0, 'p' and '' and 'q', not 0, not 'a')
i3 = -(-3), +2, -2.5, not None
j1 = [1]
j1 += [2]
j1 += (3,)
j1.append(4)
j1.extend([5, 6])
j1.insert(0, 0)
j1.remove(3)
j2 = 'ab'
j2 += 'cd'
j3 = {'a': [1]}
j3['a'].append(2)
j3['b'] = 3
j3.update({'c': 4}, d=5)
j4 = (1,)
j4 += (2,)
j5 = 10
j5 -= 3
j5 *= 2
j6 = [[1, 2], [3]]
j6[0][1] = 'x'
j6[-1] += [4]
k1, k2 = 'ab'
(k3, k4), k5 = [1, 2], 3
k6 = k7 = [1]
for _i, (_a, _b) in enumerate([('p', 1), ('q', 2)]):
    k8 = '%s%s%s' % (_i, _a, _b)
for _k in {'z': 1, 'y': 2}:
    k9 = _k
else:
    k10 = 'else'
l1 = '\t\x41\101\u00e9\U0001F600\a\b\f\v\0\777'
"""
        'l2 = \'a\' \'b\' "c" """d""" r\'\\e\'\n'
        r'''l3 = ('line1\
line2')
l4 = str(['é', '\n', "'", '"', '\'"', '\x00', '\u2028', '\xa0', '😀', '\x85', '\u200b', '\ufeff'])
l5 = repr('\\') + repr("it's") + repr('"')
l6 = '\d \. \$ \( \%'
if 'x' in 'xyz' and not False:
    m1 = 1
elif True:
    m1 = 2
else:
    m1 = 3
if ARCH in ('aarch64', 'riscv64'):
    m2 = 'arm'
elif ARCH != 'x86_64':
    m2 = 'other'
else:
    m2 = 'x86'
m3 = SYSTEM['name'] + SHLIB_EXT + SOURCE_TAR_GZ + GITHUB_URL_LOWER
n1 = 0; n2 = 1;
n3 = [1, 2,
      3,  # comment
      ]
n4 = {1.5: 'a', -0.0: 'z', 0: 'zero'}
n5 = [1e16, 1.5e-5, 12345678901234567890.0, 0.30000000000000004, float('inf'), -float('inf')]
n6 = (1 == 1.0, 0.1 + 0.2 == 0.3, 9007199254740993 == 9007199254740992.0)
'''
    ),
    'ok_2.eb': (
        r'''p1 = '%s %(a)s' % {'a': 1}
p2 = '' % ()
p3 = '%%' % ()
p4 = '%%%s%%' % 'x'
p5 = '%.1s|%-3c|%3c' % ('xyz', 'q', 'r')
p6 = '%s|%r' % (None, None)
p7 = '%s' % 'é' + '%r' % 'é\x01'
p8 = '%x|%o|%X' % (-255, -8, True)
p9 = '%.3d|%+.2d|%05.1f|% 5.1f|%+05d' % (-5, 3, -2.25, 2.25, 42)
p10 = '%(x)s%%' % {'x': '50'}
q1 = '{0!r:^10}|{1:.2}|{2}|{3:>5}'.format('a', 'abc', 1.0, True)
q2 = '{0[0]}|{0[1][k]}|{k[0]}'.format(['a', {'k': 'v'}], k=('t',))
q3 = '{:<5}|{:>5}|{:^5}|{:5}'.format(1, 2, 3, 'x')
q4 = '{:,d}|{:_x}|{:+.1e}|{:G}|{:.0f}|{:#o}'.format(-1234567, 48879, 12345.6789, 1e-10, 2.5, 64)
q5 = '{}'.format([1, 'a', (2,)])
q6 = '{:06.2f}|{:+06d}|{:x<4}|{:\u00e9>3}'.format(-1.5, 7, 'a', 'b')
r1 = f'{"é":*^5}|{len("😀")}|{"😀a"[1]}|{"ab😀cd"[1:4]}|{"ÉCOLE".lower()}|{"école".upper()}'
r2 = [s for s in 'a😀b']
r3 = f'{1!s:>3}{"x"!a}{"é"!a}'
r4 = '%a' % '😀'
s1 = (None == None, None != 0, 1 == True, 0 == False, '' == [], () == [], {} == {}, {1} == {1.0}, [[]] == [[]], 'a' * 2 == 'aa')
s2 = ((1, 'a') in [(1, 'a')], ('a', 'b') < ('a', 'c'), [1, 2] > [1], 'B' < 'a', 'é' > 'z', 2 <= 2.0, 3 >= 3, 1 < 2 > 0)
s3 = sorted([2.5, 1, 3, -1.5]) + sorted([[2], [1, 2], [1]]) + sorted(['b', 'a'], reverse=True)
s4 = (max([1, 2.5]), min('bca'), max((1, 'a'), (1, 'b')), sorted('hello'))
t1 = 'a,b;c'.replace(';', ',').split(',')
t2 = '  leading'.split(' ', 2) + 'a  b'.split(' ')
t3 = 'k=v=w'.split('=', 1) + 'k=v=w'.rsplit('=', 1) + 'abc'.split('abc')
t4 = ('\t a \n'.strip(), '\u3000x\u3000'.strip(), 'x\x1fy'.split(), 'a\u2028b'.splitlines())
t5 = ('abc'.find(''), 'abc'.rfind(''), 'aaaa'.count('aa'), 'abc'.index('c'), 'a-b'.partition('x'), 'a-b'.rpartition('x'))
t6 = ('x'.join([]), 'x'.join(['a']), ', '.join(('a', 'b')), '/'.join(['a', 'b', 'c'][1:]), ''.join(reversed('abc')))
u1 = int('  +12_3  '), int('-0'), int('0o17', 0), int('z', 36), int('101', 2), float('-1.5e-3'), float('inf'), float('  nan  ') != 0
u2 = (7.0 // 2, 7.0 % 2.5, -7 // 2.0, 2.0 * 3, 1 - 0.9, 1e16 + 1, 0.1 * 3, 10 / 3, 3 - 5)
u3 = (abs(-0.0), -0.0 == 0.0, 1 / 3 * 3, 4 / 2, 6 // 4, -6 // 4, 6 % 4, -6 % 4, 6 % -4)
v1 = [(i, c) for i, c in enumerate('xy') if c != 'z' for _ in range(2) if i >= 0]
v2 = {c: i for i, c in enumerate('hello')}
v3 = [x for x in [3, 1, 2] if x > 1 if x < 3]
v4 = list(set([1, 1])) + list({'k': 1}) + list(range(0)) + list(range(-3))
v5 = [a + b for a, b in zip(['x', 'y'], ('1', '2', '3'))]
v6 = any(x > 2 for x in [1, 3]), all([]), any([]), all(c.isdigit() for c in '123')
v7 = sum(range(5)), sum([[1], [2]], []), len(range(3, 10, 2)), tuple(range(3))
w1 = {'b': 1, 'a': 2}
w1.update(c=3)
w1['a'] = 9
w2 = w1.get('c'), w1.get('zz'), 'a' in w1, sorted(w1), sorted(w1.items()), [k for k in w1]
w3 = [1, 2, 3]
w3.reverse()
w3.sort()
w3.insert(100, 4)
w3.insert(-100, 0)
w4 = w3.index(2), w3.count(2), w3[::-2], w3[-2:-5:-1]
w5 = {'x': [1]}
w5['x'] += [2]
w5['y'] = w5['x'][:]
w5['y'].append(3)
w6 = ('x',)
w6 = w6 + ('y',)
w7 = []
for _x in 'abc':
    if _x == 'b':
        w7.append(_x.upper())
    elif _x == 'c':
        w7 += [_x * 2]
    else:
        w7.extend([_x, _x])
w8 = set()
w8.add(1)
w8.add(1)
w8.update([2, 3])
w8.discard(3)
'''
        r'''z1 = """triple "quoted" with 'both'"""
'''
        r"""z2 = '''a\
b'''
"""
        r"""z3 = r"raw \" quote" + r'raw \' q'
"""
        'z4 = f"{\'nested\'}" f\'{"other"}\' f"""{\'\'\'triple\'\'\'}"""\n'
        r'''z5 = 'tab\there' '\\' '\'' "\""
z6 = ('a'
      'b'  # comment
      f'{1}')
'''
    ),
    'err_00.eb': "x = '%s %s' % 'a'\n",
    'err_01.eb': "x = '%s' % ('a', 'b')\n",
    'err_02.eb': "x = 'a' % 1\n",
    'err_03.eb': "x = '%d' % 'a'\n",
    'err_04.eb': "x = '%(a)s' % 'x'\n",
    'err_05.eb': "x = '%z' % 1\n",
    'err_06.eb': "x = '{}{}'.format(1)\n",
    'err_07.eb': "x = '{0}{}'.format(1, 2)\n",
    'err_08.eb': "x = '{x}'.format()\n",
    'err_09.eb': "x = '{:d}'.format('a')\n",
    'err_10.eb': "x = '{:s}'.format(1)\n",
    'err_11.eb': 'x = f\'{"a":d}\'\n',
    'err_12.eb': "x = 1 + 'a'\n",
    'err_13.eb': "x = 'a' + 1\n",
    'err_14.eb': 'x = [1] + (2,)\n',
    'err_15.eb': "x = 'a' * 'b'\n",
    'err_16.eb': 'x = 1 / 0\n',
    'err_17.eb': 'x = 1 % 0\n',
    'err_18.eb': 'x = 1.0 // 0\n',
    'err_19.eb': 'x = [1][2]\n',
    'err_20.eb': "x = 'ab'[5]\n",
    'err_21.eb': "x = {'a': 1}['b']\n",
    'err_22.eb': 'x = {[1]: 2}\n',
    'err_23.eb': 'x = {[1]}\n',
    'err_24.eb': 'x = undefined\n',
    'err_25.eb': "x = int('x')\n",
    'err_26.eb': "x = int('1.5')\n",
    'err_27.eb': "x = float('abc')\n",
    'err_28.eb': 'x = chr(-1)\n',
    'err_29.eb': "x = ord('ab')\n",
    'err_30.eb': 'x = min([])\n',
    'err_31.eb': "x = sorted([1, 'a'])\n",
    'err_32.eb': "x = 1 < 'a'\n",
    'err_33.eb': 'x, y = 1, 2, 3\n',
    'err_34.eb': 'x, y = [1]\n',
    'err_35.eb': 'x = [1]\nx[5] = 2\n',
    'err_36.eb': 'x = (1,)\nx[0] = 2\n',
    'err_37.eb': "x = 'a'.nope()\n",
    'err_38.eb': 'x = 1 in 2\n',
    'err_39.eb': "x = 1 in 'abc'\n",
    'err_40.eb': 'x = [].pop()\n',
    'err_41.eb': "x = 'a'.split('')\n",
    'err_42.eb': "x = 'a'\nx += 1\n",
    'err_43.eb': 'x = len(5)\n',
    'err_44.eb': 'x = [x for x in 5]\n',
    'err_45.eb': "x = 'a'[::0]\n",
    'err_46.eb': "x = 'a'['b']\n",
    'err_47.eb': 'x = None + 1\n',
    'err_48.eb': "x = -'a'\n",
    'err_49.eb': 'x = (1, 2)\nx.append(3)\n',
    'err_50.eb': 'x = {}.get([1])\n',
    'err_51.eb': "x = '{'.format(1)\n",
    'err_52.eb': "x = '}'.format(1)\n",
    'err_53.eb': "x = 'x'.join([1])\n",
    'err_54.eb': 'if undefined_name:\n    x = 1\n',
    'err_55.eb': 'for a, b in [(1, 2, 3)]:\n    pass\n',
    'err_56.eb': 'x = [1]\nx.remove(2)\n',
    'err_57.eb': "x = {}\nx.pop('a')\n",
    'err_58.eb': 'x = 1\n  y = 2\n',
    'err_59.eb': 'x = (1,\n',
    'err_60.eb': "x = 'abc\n",
    'err_61.eb': 'def f():\n    pass\n',
    'err_62.eb': 'import os\n',
    'err_63.eb': 'x = lambda: 1\n',
    'err_64.eb': "x = f'{'\n",
    'err_65.eb': 'x = 1 +\n',
    'err_66.eb': "x = '%s' % ()\n",
    'err_67.eb': "x = '%(a)s %s %s' % {'a': 1}\n",
    'err_68.eb': "x = '{0[-1]}'.format(['a'])\n",
    'err_69.eb': "x = '{:>10}'.format(None)\n",
    'err_70.eb': 'x = None < 1\n',
    'err_71.eb': "x = b'a'\n",
    'err_72.eb': 'x = 1 if True else\n',
    'err_73.eb': 'x = [1, 2][1.0]\n',
    'err_74.eb': 'x = {}.items()[0]\n',
    'err_75.eb': "x = 'ab'.index('z')\n",
    'err_76.eb': "x = int(float('inf'))\n",
    'err_77.eb': "x = int('1_')\n",
    'err_78.eb': "x = float('1__0')\n",
    'err_79.eb': "x = '%c' % 1114112\n",
    'err_80.eb': 'x = chr(1114112)\n',
    'err_81.eb': "x = '{:c}'.format(-1)\n",
    'err_82.eb': 'x = [1] * 2.0\n',
    'err_83.eb': "x = 'a' < None\n",
    'err_84.eb': 'x = sorted([None, 1])\n',
    'err_85.eb': "x = {}['a']\n",
    'err_86.eb': "x = 'abc'.center(5, 'ab')\n",
    # Outside the subset on purpose: Rust rejects them, CPython accepts (KNOWN_EXCEPTIONS).
    'unsupported_named_escape.eb': "x = '\\N{BULLET}'\n",
    'unsupported_dict_unpacking.eb': "x = {**{'a': 1}}\n",
}


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
    ap.add_argument('jsonl', nargs='?')
    ap.add_argument('--arch', default='x86_64')
    ap.add_argument('--rust-constants')
    ap.add_argument('--easybuild-python')
    ap.add_argument('--write-snippets', action='store_true', help='write SNIPPETS into DIR and exit')
    args = ap.parse_args()
    if args.write_snippets:
        os.makedirs(args.dir, exist_ok=True)
        for name, src in SNIPPETS.items():
            with open(os.path.join(args.dir, name), 'w', encoding='utf-8') as f:
                f.write(src)
        print('wrote %d snippets to %s' % (len(SNIPPETS), args.dir))
        return 0
    if args.jsonl is None:
        ap.error('JSONL is required')

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

    print('arch %s, CPython %s: %d files: %d agree exactly, %d raise an error on both sides' % (
        args.arch, '.'.join(map(str, sys.version_info[:3])), len(paths), agree, both_error))
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
