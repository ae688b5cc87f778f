"""Deterministic embeddings: unit vectors built by feature hashing.

Each lower-cased word of the input adds ±1 on 4 hashed coordinates and each pair of
adjacent words adds ±0.5 on 2 more; the sum is scaled to unit length. Equal texts get
equal vectors and texts sharing many words get a high cosine similarity, which is what a
semantic cache needs from a stand-in embedding model. An input with no words gets a single
hashed coordinate set to 1.
"""

from __future__ import annotations

import base64
import math
from array import array
from functools import lru_cache
from hashlib import blake2b

from .answers import WORD_RE


@lru_cache(maxsize=65536)
def _slots(feature: str, count: int) -> tuple[tuple[int, float], ...]:
    digest = blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=4 * count).digest()
    out = []
    for k in range(count):
        word = int.from_bytes(digest[4 * k : 4 * k + 4], "big")
        out.append((word >> 1, 1.0 if word & 1 else -1.0))
    return tuple(out)


@lru_cache(maxsize=4096)
def embed(text: str, dims: int) -> tuple[float, ...]:
    vec = [0.0] * dims
    words = WORD_RE.findall(text.lower())
    for w in words:
        for idx, sign in _slots(w, 4):
            vec[idx % dims] += sign
    for a, b in zip(words, words[1:], strict=False):
        for idx, sign in _slots(f"{a} {b}", 2):
            vec[idx % dims] += 0.5 * sign
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        idx = _slots("\x00" + text, 1)[0][0] % dims
        vec = [0.0] * dims
        vec[idx] = 1.0
        return tuple(vec)
    inv = 1.0 / norm
    return tuple(v * inv for v in vec)


def to_base64(vec: tuple[float, ...]) -> str:
    return base64.b64encode(array("f", vec).tobytes()).decode()
