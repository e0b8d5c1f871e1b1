"""Private array kernels shared by the engines, the metrics and the plotting.

Flat-array building blocks, vectorised with numpy or compiled with numba, with inputs
validated by their callers:

* ``rings`` -- CSR rings of polygon vertices: slots, successors, twins, areas, means.
* ``rounds`` -- cutting faces in rounds: the box test of a round, the chord bits of the pieces.
* ``bits`` -- bit-packed activation patterns: pack, unpack, set/clear/test, popcounts.
* ``sorting`` -- integer argsorts and first-occurrence uniques faster than numpy's.
* ``hashing`` -- an open-addressing int64 -> float64 table.
* ``growable`` -- an append-only array with amortised growth.
"""

from reluscope._kernels.compile_notice import install as _install_compile_notice

_install_compile_notice()
