"""An indexed binary min-heap for the numba kernels (decrease-key through ``pos``).

``hc``/``hn`` hold costs and nodes; ``pos[node]`` is the node's slot, ``UNSEEN`` before it
is queued and ``SETTLED`` once popped.
"""

from __future__ import annotations

from numba import njit

UNSEEN = -1  # heap positions: never queued
SETTLED = -2  # ... and settled (final)


@njit(cache=True, nogil=True)
def _sift_up(hc, hn, pos, i, cost, node):  # type: ignore[no-untyped-def]
    while i > 0:
        parent = (i - 1) >> 1
        if hc[parent] <= cost:
            break
        hc[i] = hc[parent]
        hn[i] = hn[parent]
        pos[hn[i]] = i
        i = parent
    hc[i] = cost
    hn[i] = node
    pos[node] = i


@njit(cache=True, nogil=True)
def _sift_down(hc, hn, pos, i, size, cost, node):  # type: ignore[no-untyped-def]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and hc[child + 1] < hc[child]:
            child += 1
        if cost <= hc[child]:
            break
        hc[i] = hc[child]
        hn[i] = hn[child]
        pos[hn[i]] = i
        i = child
    hc[i] = cost
    hn[i] = node
    pos[node] = i


@njit(cache=True, nogil=True)
def _pop(hc, hn, pos, size):  # type: ignore[no-untyped-def]
    """Remove the root (the caller read hc[0], hn[0] first); returns the new size."""
    pos[hn[0]] = SETTLED
    size -= 1
    if size > 0:
        _sift_down(hc, hn, pos, 0, size, hc[size], hn[size])
    return size
