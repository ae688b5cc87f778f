"""The one split of ../shared/data/routellm between what the router's shipped models are
fitted on (the learned math judge, the subject priors) and what the benchmarks measure:
a prompt belongs to the training half when the first byte of its id's SHA-1 is even.
bench/routing.py replays only the other half, so no figure rests on a prompt a model saw."""

import hashlib


def in_training_half(row_id: str) -> bool:
    return hashlib.sha1(row_id.encode()).digest()[0] % 2 == 0
