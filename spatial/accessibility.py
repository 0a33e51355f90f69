"""Accessibility over a street Network (pure computation): nearest targets, travel-time matrices, isochrones,
the 15-minute score, gravity (Hansen) and two-step floating catchment (2SFCA) measures.

Times are seconds, distances metres. A point that cannot reach any target (its component has none, or a
oneway street leads away) gets `inf` seconds and target index -1: never a made-up number. Points are `Snaps`
(see `spatial.network`): each sits on an edge with its costs to and from both ends.

Multi-source search: every target becomes a virtual node joined to the two ends of its edge by the cost of
reaching the target from that end; ONE Dijkstra from all virtual nodes over the REVERSED graph (arcs point
from where you arrive to where you came from) gives, for every street node, the time to its nearest target
and which target that is (`min_only=True` returns the source each node was reached from). An origin's time is
then the best of its two ends, plus the direct way along the edge when the origin and a target share one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import dijkstra
from shapely import ops

from spatial.network import WALK_SPEED_MS, Network, Snaps

ISOCHRONE_BUFFER_M = 40.0


# --- graphs with virtual nodes ------------------------------------------------------------------------------
def _augmented(network: Network, points: Snaps, towards: bool) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """The network plus one virtual node per point (indices N .. N+m-1), with arcs virtual -> edge ends.

    towards=True: the reversed graph, arcs costing end -> point (searches give times TO the points);
    towards=False: the graph as it is, arcs costing point -> end (searches give times FROM the points).
    The virtual rows are appended to the street graph's CSR arrays as they are (no re-sorting of the streets):
    virtual nodes have no incoming arcs, so no path passes through one."""
    n, m = network.n_nodes, len(points)
    graph, lengths = (network.reverse, network.reverse_lengths) if towards else (network.graph, network.lengths)
    cost = (points.in_s if towards else points.out_s).copy()
    metres = points.in_m if towards else points.out_m
    loop = points.ends[:, 0] == points.ends[:, 1]  # a point on a self-loop: one arc, the cheaper way round
    cost[loop, np.argmax(cost[loop], axis=1)] = np.inf
    ok = np.isfinite(cost)
    cols = np.where(ok, points.ends, -1)
    order = np.argsort(cols, axis=1)  # CSR rows with sorted column indices (the lookup of _arc_values needs it)
    cols, cost, metres, ok = (np.take_along_axis(a, order, axis=1) for a in (cols, cost, metres, ok))
    counts = ok.sum(axis=1)
    indptr = np.concatenate([graph.indptr, graph.nnz + np.cumsum(counts)])
    indices = np.concatenate([graph.indices, cols[ok]]).astype(graph.indices.dtype, copy=False)
    shape = (n + m, n + m)
    aug = sp.csr_matrix((np.concatenate([graph.data, np.maximum(cost[ok], 1e-6)]), indices, indptr), shape=shape)
    aug_len = sp.csr_matrix((np.concatenate([lengths.data, metres[ok]]), indices, indptr), shape=shape)
    return aug, aug_len, n + np.arange(m)


def _arc_values(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[rows[i], cols[i]] for arcs known to exist (vectorised lookup in a CSR with sorted indices)."""
    n_cols = matrix.shape[1]
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * n_cols + matrix.indices
    return matrix.data[np.searchsorted(keys, rows.astype(np.int64) * n_cols + cols)]


def _tree_sums(lengths: sp.csr_matrix, pred: np.ndarray) -> np.ndarray:
    """Metres from each node up its shortest-path tree to the root, arcs running pred -> node in `lengths`.

    Pointer jumping: acc[i] holds the metres from i to up[i]; each round adds acc[up[i]] and jumps up[i] to
    up[up[i]], so log2(depth) rounds of array operations replace a walk per node. Roots and unreached nodes
    point to themselves with 0."""
    n = len(pred)
    nodes = np.arange(n)
    has = pred >= 0
    acc = np.zeros(n)
    acc[has] = _arc_values(lengths, pred[has], nodes[has])
    up = np.where(has, pred, nodes)
    while True:
        nxt = up[up]
        if np.array_equal(nxt, up):
            return acc
        acc = acc + acc[up]
        up = nxt


def _same_edge(origins: Snaps, targets: Snaps) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (origin index, target index) of points on the same edge, sorted by origin."""
    order = np.argsort(targets.edge, kind="stable")
    t_edges = targets.edge[order]
    lo = np.searchsorted(t_edges, origins.edge, side="left")
    hi = np.searchsorted(t_edges, origins.edge, side="right")
    counts = hi - lo
    o_idx = np.repeat(np.arange(len(origins)), counts)
    starts = np.repeat(lo, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return o_idx, order[starts + within]


def _direct(network: Network, origins: Snaps, targets: Snaps, o_idx: np.ndarray,
            t_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and metres straight along a shared edge (inf where a oneway edge forbids that direction)."""
    edge = origins.edge[o_idx]
    a, b = origins.offset_m[o_idx], targets.offset_m[t_idx]
    allowed = np.where(b >= a, network.edge_forward[edge], network.edge_backward[edge])
    along = np.abs(b - a)
    access = origins.access_m[o_idx] + targets.access_m[t_idx]
    secs = np.where(allowed, access / WALK_SPEED_MS + along / network.edge_speed_ms[edge], np.inf)
    return secs, np.where(allowed, access + along, np.inf)


# --- nearest, k nearest, matrices ---------------------------------------------------------------------------
def nearest(network: Network, origins: Snaps, targets: Snaps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each origin: seconds to its nearest target, metres along that path (access legs included), and the
    target's index (-1 and inf when none is reachable). One multi-source Dijkstra for all origins."""
    n_orig = len(origins)
    if len(targets) == 0:
        return np.full(n_orig, np.inf), np.full(n_orig, np.inf), np.full(n_orig, -1)
    graph, lengths, virt = _augmented(network, targets, towards=True)
    dist, pred, source = dijkstra(graph, directed=True, indices=virt, min_only=True, return_predecessors=True)
    if network.mode == "walk":  # every leg at walking speed: metres are the seconds at that speed
        metres = dist * WALK_SPEED_MS
    else:
        metres = np.where(np.isfinite(dist), _tree_sums(lengths, pred), np.inf)
    target_of = np.where(source >= 0, source - network.n_nodes, -1)
    ends = origins.ends
    cand_s = origins.out_s + dist[ends]
    cand_m = origins.out_m + metres[ends]
    best = np.argmin(cand_s, axis=1)
    rows = np.arange(n_orig)
    secs, mets, tgt = cand_s[rows, best], cand_m[rows, best], target_of[ends[rows, best]]
    o_idx, t_idx = _same_edge(origins, targets)
    if len(o_idx):
        d_s, d_m = _direct(network, origins, targets, o_idx, t_idx)
        better = d_s < secs[o_idx]
        o_b, t_b, s_b, m_b = o_idx[better], t_idx[better], d_s[better], d_m[better]
        order = np.lexsort((s_b, o_b))  # per origin, its fastest direct target first
        first = order[np.r_[True, o_b[order][1:] != o_b[order][:-1]]] if len(order) else order
        secs[o_b[first]], mets[o_b[first]], tgt[o_b[first]] = s_b[first], m_b[first], t_b[first]
    unreached = ~np.isfinite(secs)
    mets[unreached], tgt[unreached] = np.inf, -1
    return secs, mets, tgt


def travel_times(network: Network, origins: Snaps, targets: Snaps, limit: float = np.inf) -> np.ndarray:
    """Seconds from every origin to every target (origins x targets; inf beyond `limit` or unreachable):
    one bounded Dijkstra per target over the reversed graph. Fine for up to a few hundred targets."""
    n_orig, m = len(origins), len(targets)
    if m == 0:
        return np.zeros((n_orig, 0))
    graph, _, virt = _augmented(network, targets, towards=True)
    dist = dijkstra(graph, directed=True, indices=virt, limit=limit)  # m x (N + m)
    ends = origins.ends
    times = np.minimum(origins.out_s[:, 0][:, None] + dist[:, ends[:, 0]].T,
                       origins.out_s[:, 1][:, None] + dist[:, ends[:, 1]].T)
    o_idx, t_idx = _same_edge(origins, targets)
    if len(o_idx):
        d_s, _ = _direct(network, origins, targets, o_idx, t_idx)
        times[o_idx, t_idx] = np.minimum(times[o_idx, t_idx], d_s)
    times[times > limit] = np.inf
    return times


def k_nearest(network: Network, origins: Snaps, targets: Snaps, k: int,
              limit: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and target indices of the k nearest targets per origin, nearest first (n x k; inf and -1
    where fewer than k are reachable)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    times = travel_times(network, origins, targets, limit)
    n_orig, m = times.shape
    kk = min(k, m)
    secs, idx = np.full((n_orig, k), np.inf), np.full((n_orig, k), -1)
    if kk == 0:
        return secs, idx
    part = np.argpartition(times, kk - 1, axis=1)[:, :kk] if kk < m else np.tile(np.arange(m), (n_orig, 1))
    part_t = np.take_along_axis(times, part, axis=1)
    order = np.argsort(part_t, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top_t = np.take_along_axis(part_t, order, axis=1)
    secs[:, :kk] = top_t
    idx[:, :kk] = np.where(np.isfinite(top_t), top, -1)
    return secs, idx


def times_from(network: Network, start: Snaps, limit: float = np.inf) -> np.ndarray:
    """Seconds from the first point of `start` to every node (inf beyond `limit`)."""
    graph, _, virt = _augmented(network, start.take([0]), towards=False)
    return dijkstra(graph, directed=True, indices=int(virt[0]), limit=limit)[: network.n_nodes]


# --- isochrones ---------------------------------------------------------------------------------------------
def isochrone(network: Network, start: Snaps, minutes: float, buffer_m: float = ISOCHRONE_BUFFER_M):
    """The area reachable from `start` (one snapped point with lon/lat) within `minutes`, in lon/lat.

    Method (a network buffer, as OSMnx's and GOAT's edge-based isochrones): the street lines one can travel
    within the budget, buffered by `buffer_m` in the metric CRS and unioned:
    - every edge whose both ends are reached with enough time left to cover it whole;
    - of a partly reached edge, the stretch from each reached end as far as the remaining time carries
      (remaining seconds x the edge's speed);
    - the start's own edge from the snapped point towards each end it may travel, and the access leg
      from the point to the street (so the isochrone always contains its start).
    Returns a shapely Polygon or MultiPolygon in EPSG:4326."""
    if network.edge_geoms is None or start.lonlat is None:
        raise ValueError("an isochrone needs edge geometry and a start snapped from coordinates")
    budget = float(minutes) * 60.0
    dist = times_from(network, start, limit=budget)
    pieces = _reached_pieces(network, dist, budget) + _start_pieces(network, start, budget)
    if not pieces:
        return shapely.Point(*start.lonlat[0]).buffer(0)
    lines = np.array(pieces, dtype=object)
    area = shapely.union_all(shapely.buffer(lines, buffer_m, quad_segs=4))
    return shapely.transform(area, _to_lonlat(network), interleaved=False)


def _to_lonlat(network: Network):
    transformer = network.to_lonlat()
    return lambda x, y: transformer.transform(x, y)


def _reached_pieces(network: Network, dist: np.ndarray, budget: float) -> list:
    u, v = network.edge_from, network.edge_to
    length, speed = network.edge_length_m, network.edge_speed_ms
    # metres covered from each end in the edge's own direction of travel (0 where not reached or not allowed)
    from_u = np.where(network.edge_forward & (dist[u] <= budget), (budget - dist[u]) * speed, 0.0)
    from_v = np.where(network.edge_backward & (dist[v] <= budget), (budget - dist[v]) * speed, 0.0)
    from_u, from_v = np.minimum(from_u, length), np.minimum(from_v, length)
    whole = (from_u + from_v) >= length
    pieces = list(network.edge_geoms[whole & (length > 0)])
    for k in np.flatnonzero(~whole & ((from_u > 0) | (from_v > 0))):  # only the fringe
        geom, frac_u, frac_v = network.edge_geoms[k], from_u[k] / length[k], from_v[k] / length[k]
        if frac_u > 0:
            pieces.append(ops.substring(geom, 0.0, frac_u, normalized=True))
        if frac_v > 0:
            pieces.append(ops.substring(geom, 1.0 - frac_v, 1.0, normalized=True))
    return pieces


def _start_pieces(network: Network, start: Snaps, budget: float) -> list:
    k = int(start.edge[0])
    geom, length, speed = network.edge_geoms[k], network.edge_length_m[k], network.edge_speed_ms[k]
    point = shapely.Point(*network.from_lonlat().transform(*start.lonlat[0]))
    walk_s = start.access_m[0] / WALK_SPEED_MS
    if walk_s > budget:  # the street is out of reach: only the part of the access leg walked
        foot = geom.interpolate(start.offset_m[0] / length, normalized=True) if length > 0 else geom.centroid
        leg = shapely.LineString([point, foot])
        return [ops.substring(leg, 0.0, budget / walk_s, normalized=True)]
    at = start.offset_m[0] / length if length > 0 else 0.0
    reach = (budget - walk_s) * speed / length if length > 0 else 0.0
    pieces = [shapely.LineString([point, geom.interpolate(at, normalized=True)])]
    if network.edge_backward[k]:
        pieces.append(ops.substring(geom, max(0.0, at - reach), at, normalized=True))
    if network.edge_forward[k]:
        pieces.append(ops.substring(geom, at, min(1.0, at + reach), normalized=True))
    return pieces


# --- scores and measures ------------------------------------------------------------------------------------
def fifteen_minute_score(times_by_type: Mapping[str, np.ndarray], threshold_s: float = 900.0,
                         weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The 15-minute score of each origin, in [0, 100]:

        100 x sum over service types of w_type x [time to the nearest of that type <= threshold] / sum of w_type

    i.e. the (weighted) share of the essential service types reachable within the threshold (15 minutes by
    default; Moreno's "15-minute city" counts whether each daily need is within reach, not how many of it).
    Types are whatever the caller passes (those present in the data); unreachable (inf or NaN) counts as not
    within. Weights default to 1 per type."""
    if not times_by_type:
        raise ValueError("no service types to score")
    names = list(times_by_type)
    w = np.array([1.0 if weights is None else float(weights.get(name, 0.0)) for name in names])
    if w.sum() <= 0:
        raise ValueError("the weights of the service types sum to zero")
    within = np.stack([np.nan_to_num(np.asarray(times_by_type[name], dtype=float), nan=np.inf) <= threshold_s
                       for name in names])
    return 100.0 * (w[:, None] * within).sum(axis=0) / w.sum()


def gravity(times: np.ndarray, capacities: np.ndarray, beta: float) -> np.ndarray:
    """Hansen accessibility A_i = sum_j S_j exp(-beta t_ij) (origins x targets times; beta in the inverse unit of
    the times, e.g. per minute). Unreachable pairs (inf) contribute nothing."""
    times = np.asarray(times, dtype=float)
    decay = np.where(np.isfinite(times), np.exp(-beta * np.where(np.isfinite(times), times, 0.0)), 0.0)
    return decay @ np.asarray(capacities, dtype=float)


def two_step_fca(times: np.ndarray, demand: np.ndarray, supply: np.ndarray, threshold: float) -> np.ndarray:
    """Two-step floating catchment area (Luo & Wang 2003), origins x targets times:

        R_j = S_j / sum_{i: t_ij <= d0} P_i        (supply per head in each facility's catchment)
        A_i = sum_{j: t_ij <= d0} R_j              (what each origin can reach, per head)

    A facility with nobody in its catchment serves no one here: R_j = 0 (not a division by zero)."""
    within = np.asarray(times, dtype=float) <= threshold
    served = within.T.astype(float) @ np.asarray(demand, dtype=float)
    supply = np.asarray(supply, dtype=float)
    ratio = np.divide(supply, served, out=np.zeros_like(supply), where=served > 0)
    return within.astype(float) @ ratio
