"""The one short hash of JSON-able data: design-point ids, study contexts, accuracy cache keys.

What is modelled: sha256 of the compact, key-sorted JSON text of `data` (``separators=(",", ":")``,
``default=str`` for values JSON cannot hold, such as paths), cut to its first `n` hex digits.
Every stored key hashed so far (the accuracy cache's record keys and recipe hashes, the sweep's
point ids and context hashes) was made by exactly this text: changing the serialisation would
orphan them, so it is fixed here and nowhere else.

What is ignored: collisions (16 hex digits = 64 bits; 24 for accuracy record keys), and key
order of the input (sorted away).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "short_hash"]


def canonical_json(data: Any) -> str:
    """The text that `short_hash` hashes: sorted keys, no spaces, str() for other values."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(data: Any, n: int = 16) -> str:
    """The first `n` hex digits of the sha256 of `canonical_json(data)`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:n]
