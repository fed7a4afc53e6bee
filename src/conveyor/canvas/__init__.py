"""Workflows: signatures, chains, groups and chords, with Celery's names.

```python
from conveyor import chain, chord, group

chain(add.s(1, 2), mul.s(10)).apply_async().get()         # (1 + 2) * 10
group(add.s(i, i) for i in range(10)).apply_async().get()  # [0, 2, 4, ...]
chord(add.s(i, i) for i in range(10))(tsum.s()).get()      # sum of the above, once
```

A workflow's state lives in the broker and the result backend: what follows a task travels in
its message's options, and chords count their members in the result backend. See
``docs/workflows.md``.
"""

from __future__ import annotations

from .base import Canvas
from .chains import Chain, chain
from .chords import Chord, chord
from .groups import Group, group
from .results import GroupResult
from .signatures import Signature, signature

__all__ = ["Canvas", "Chain", "Chord", "Group", "GroupResult", "Signature", "chain", "chord",
           "group", "signature"]
