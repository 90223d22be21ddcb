"""Which transformers releases the engine's patches of transformers internals were tested on.

`cpu_kernels` swaps ModernBERT's attention and MLP modules for subclasses with their own forward and registers an
attention function; `sparse_mlm` re-implements the last encoder layer's forward from the layers' internals. Both
depend on code transformers may change in any release, so outside the tested releases the engine runs the stock
modules (the same results, slower) and says so once. To widen the range: run tests/test_cpu_kernels.py and
tests/test_sparse_mlm.py on the new release, then extend TESTED_TRANSFORMERS.
"""

from __future__ import annotations

import warnings

import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import Version

TESTED_TRANSFORMERS = SpecifierSet(">=5.24,<5.25")


_warned = False


class UntestedTransformersWarning(UserWarning):
    """The installed transformers is outside the releases the engine's patches were tested on."""


def patches_supported() -> bool:
    """True when the installed transformers is a tested release; otherwise warns once per process."""
    global _warned
    installed = Version(transformers.__version__)
    if installed in TESTED_TRANSFORMERS:
        return True
    if not _warned:
        _warned = True
        warnings.warn(f"transformers {installed} is outside the releases the engine's fast CPU kernels and sparse "
                      f"last layer were tested on ({TESTED_TRANSFORMERS}): running transformers' own modules "
                      f"(same results, slower)", UntestedTransformersWarning, stacklevel=3)
    return False
