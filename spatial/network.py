"""Street networks as sparse travel-time graphs, and snapping of points onto their edges (pure computation).

A `Network` is built from arrays (what `spatial.access_service` reads from `cdt.street_edges`, or a hand-made
graph in tests) for one travel mode:

- `walk`: edges with walk=true, both directions, at 4.8 km/h (1.333 m/s);
- `drive`: edges with drive=true at their `speed_kmh`, or 30 km/h (the urban default) where it is unknown;
  a oneway edge only from its first node to its last.

Its CSR matrix `graph` holds travel SECONDS between node indices (parallel edges: the fastest one kept), and
`lengths` the metres of the same edges, with the same sparsity, so that a path's metres can be summed from the
predecessors of a time-weighted Dijkstra.

Points are snapped to the nearest EDGE, not node (as GOAT and pandana's successors do: a house in the middle
of a 400 m block is not 200 m away from the street): each point is projected onto its nearest usable edge in a
metric CRS (the UTM zone of the data), and its costs to and from both ends of that edge are

    access leg (straight line point -> edge, always at walking speed: you walk to the car too)
  + the distance along the edge to that end at the mode's speed (infinite against a oneway edge).

Nothing caps the access leg here: `Snaps.access_m` reports it and callers decide (the service refuses a
clicked point more than 1 km from the network).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import shapely
from pyproj import CRS, Transformer

WALK_SPEED_MS = 4.8 / 3.6
DEFAULT_DRIVE_KMH = 30.0
MODES = ("walk", "drive")
# Dijkstra takes no zero weights safely through every sparse conversion: a zero-length edge costs a microsecond.
_MIN_COST_S = 1e-6


@dataclass(frozen=True)
class Network:
    """A street graph for one mode. Node i is `node_ids[i]`; edge k runs `edge_from[k]` -> `edge_to[k]`."""

    mode: str
    node_ids: np.ndarray  # int64 [N], database ids of the nodes
    edge_ids: np.ndarray  # int64 [E], database ids of the edges usable in this mode
    edge_from: np.ndarray  # int [E] node indices
    edge_to: np.ndarray  # int [E]
    edge_length_m: np.ndarray  # float [E]
    edge_speed_ms: np.ndarray  # float [E], this mode's speed on the edge
    edge_forward: np.ndarray  # bool [E], traversable from -> to
    edge_backward: np.ndarray  # bool [E], traversable to -> from
    graph: sp.csr_matrix  # N x N seconds
    lengths: sp.csr_matrix  # N x N metres of the edge chosen for each (row, col) of `graph`
    # Optional geometry, for snapping and isochrones: edge lines in `metric_crs` (EPSG code).
    edge_geoms: np.ndarray | None = None
    metric_crs: int | None = None
    edge_tree: shapely.STRtree | None = None  # over edge_geoms, built once with the network
    # The transposes (arcs reversed), sorted CSR: searches towards targets run on these.
    reverse: sp.csr_matrix | None = None
    reverse_lengths: sp.csr_matrix | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_ids)

    def edge_seconds(self) -> np.ndarray:
        return self.edge_length_m / self.edge_speed_ms

    def to_lonlat(self) -> Transformer:
        return _transformer(self.metric_crs, 4326)

    def from_lonlat(self) -> Transformer:
        return _transformer(4326, self.metric_crs)


def build_network(node_ids: np.ndarray, edge_from_ids: np.ndarray, edge_to_ids: np.ndarray,
                  length_m: np.ndarray, mode: str = "walk", *, edge_ids: np.ndarray | None = None,
                  walk: np.ndarray | None = None, drive: np.ndarray | None = None,
                  oneway: np.ndarray | None = None, speed_kmh: np.ndarray | None = None,
                  geoms: np.ndarray | None = None, metric_crs: int | None = None,
                  default_drive_kmh: float = DEFAULT_DRIVE_KMH) -> Network:
    """A Network for `mode` from edge arrays keyed by node ids (flags default to true/false/NULL as in the
    table). `geoms` are the edges' LineStrings in `metric_crs`, drawn from the from-node to the to-node."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    node_ids = np.asarray(node_ids, dtype=np.int64)
    n_e = len(edge_from_ids)
    edge_ids = np.arange(n_e, dtype=np.int64) if edge_ids is None else np.asarray(edge_ids, dtype=np.int64)
    flags = {name: np.ones(n_e, bool) if arr is None else np.asarray(arr, bool)
             for name, arr in (("walk", walk), ("drive", drive))}
    oneway = np.zeros(n_e, bool) if oneway is None else np.asarray(oneway, bool)
    length = np.asarray(length_m, dtype=float)
    keep = flags[mode] & np.isfinite(length)
    order = np.argsort(node_ids)
    pos_from = np.searchsorted(node_ids, edge_from_ids, sorter=order)
    pos_to = np.searchsorted(node_ids, edge_to_ids, sorter=order)
    if (np.any(pos_from >= len(node_ids)) or np.any(pos_to >= len(node_ids))
            or np.any(node_ids[order[np.minimum(pos_from, len(node_ids) - 1)]] != edge_from_ids)
            or np.any(node_ids[order[np.minimum(pos_to, len(node_ids) - 1)]] != edge_to_ids)):
        raise ValueError("an edge refers to a node that is not in node_ids")
    e_from, e_to = order[pos_from][keep], order[pos_to][keep]
    if mode == "walk":
        speed = np.full(keep.sum(), WALK_SPEED_MS)
        forward = backward = np.ones(keep.sum(), bool)
    else:
        kmh = np.full(n_e, np.nan) if speed_kmh is None else np.asarray(speed_kmh, dtype=float)
        kmh = np.where(np.isfinite(kmh) & (kmh > 0), kmh, default_drive_kmh)[keep]
        speed = kmh / 3.6
        forward, backward = np.ones(keep.sum(), bool), ~oneway[keep]
    length = length[keep]
    graph, lengths = _matrices(len(node_ids), e_from, e_to, length, length / speed, forward, backward)
    kept_geoms = None if geoms is None else np.asarray(geoms, dtype=object)[keep]
    tree = None if kept_geoms is None or len(kept_geoms) == 0 else shapely.STRtree(kept_geoms)
    reverse, reverse_lengths = _sorted(graph.T.tocsr()), _sorted(lengths.T.tocsr())
    return Network(mode, node_ids, edge_ids[keep], e_from, e_to, length, speed, forward, backward, graph, lengths,
                   kept_geoms, metric_crs, tree, reverse, reverse_lengths)


def _sorted(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix.sort_indices()
    return matrix


def _matrices(n: int, e_from: np.ndarray, e_to: np.ndarray, length: np.ndarray, seconds: np.ndarray,
              forward: np.ndarray, backward: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    rows = np.concatenate([e_from[forward], e_to[backward]])
    cols = np.concatenate([e_to[forward], e_from[backward]])
    cost = np.concatenate([seconds[forward], seconds[backward]])
    metres = np.concatenate([length[forward], length[backward]])
    return csr_min(n, rows, cols, cost, metres)


def csr_min(n: int, rows: np.ndarray, cols: np.ndarray, cost: np.ndarray,
            metres: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Seconds and metres matrices over n nodes; of parallel arcs the fastest is kept (a CSR built from
    duplicates would SUM them), self-loops are dropped (they never shorten a path)."""
    ok = rows != cols
    rows, cols, cost, metres = rows[ok], cols[ok], np.maximum(cost[ok], _MIN_COST_S), metres[ok]
    key = rows.astype(np.int64) * n + cols
    order = np.lexsort((cost, key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    pick = order[first]
    shape = (n, n)
    graph = _sorted(sp.csr_matrix((cost[pick], (rows[pick], cols[pick])), shape=shape))
    lengths = _sorted(sp.csr_matrix((metres[pick], (rows[pick], cols[pick])), shape=shape))
    return graph, lengths


# --- snapping -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snaps:
    """Points attached to edges of a Network. Column 0 is the edge's from-node `u`, column 1 its to-node `v`."""

    edge: np.ndarray  # int [n] edge index in the Network
    ends: np.ndarray  # int [n, 2] node indices (u, v)
    offset_m: np.ndarray  # float [n] distance along the edge from u
    access_m: np.ndarray  # float [n] straight line point -> edge
    out_s: np.ndarray  # float [n, 2] seconds point -> u, point -> v (inf against a oneway edge)
    in_s: np.ndarray  # float [n, 2] seconds u -> point, v -> point
    out_m: np.ndarray  # float [n, 2] metres of the same legs
    in_m: np.ndarray  # float [n, 2]
    lonlat: np.ndarray | None = None  # float [n, 2] the points themselves, when snapped from coordinates

    def __len__(self) -> int:
        return len(self.edge)

    def take(self, index: np.ndarray | list[int]) -> Snaps:
        index = np.asarray(index, dtype=int)
        return Snaps(self.edge[index], self.ends[index], self.offset_m[index], self.access_m[index],
                     self.out_s[index], self.in_s[index], self.out_m[index], self.in_m[index],
                     None if self.lonlat is None else self.lonlat[index])


def snaps_on_edges(network: Network, edges: np.ndarray, offset_m: np.ndarray,
                   access_m: np.ndarray | float = 0.0, lonlat: np.ndarray | None = None) -> Snaps:
    """Snaps of points lying `access_m` away from edge `edges[i]` at `offset_m[i]` metres from its from-node."""
    edges = np.asarray(edges, dtype=int)
    length = network.edge_length_m[edges]
    offset = np.clip(np.asarray(offset_m, dtype=float), 0.0, length)
    access = np.broadcast_to(np.asarray(access_m, dtype=float), edges.shape).copy()
    speed = network.edge_speed_ms[edges]
    fwd, bwd = network.edge_forward[edges], network.edge_backward[edges]
    to_u, to_v = offset, length - offset
    walk_s = access / WALK_SPEED_MS
    inf = np.inf
    # leaving the point: towards u runs against the edge's direction, towards v with it
    out_s = np.column_stack([np.where(bwd, walk_s + to_u / speed, inf), np.where(fwd, walk_s + to_v / speed, inf)])
    in_s = np.column_stack([np.where(fwd, walk_s + to_u / speed, inf), np.where(bwd, walk_s + to_v / speed, inf)])
    out_m = np.column_stack([np.where(bwd, access + to_u, inf), np.where(fwd, access + to_v, inf)])
    in_m = np.column_stack([np.where(fwd, access + to_u, inf), np.where(bwd, access + to_v, inf)])
    ends = np.column_stack([network.edge_from[edges], network.edge_to[edges]])
    return Snaps(edges, ends, offset, access, out_s, in_s, out_m, in_m, lonlat)


def snap(network: Network, lon: np.ndarray, lat: np.ndarray) -> Snaps:
    """Each point projected onto its nearest usable edge (in the network's metric CRS)."""
    if network.edge_geoms is None or network.metric_crs is None:
        raise ValueError("this network has no edge geometry to snap onto")
    lon, lat = np.atleast_1d(np.asarray(lon, dtype=float)), np.atleast_1d(np.asarray(lat, dtype=float))
    if network.edge_tree is None:
        raise ValueError("the network has no edges")
    x, y = network.from_lonlat().transform(lon, lat)
    points = shapely.points(x, y)
    tree = network.edge_tree
    (i_pt, i_edge), dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    # all_matches=False still returns one row per point, in input order
    edge = np.empty(len(points), dtype=int)
    edge[i_pt] = i_edge
    access = np.empty(len(points))
    access[i_pt] = dist
    fraction = shapely.line_locate_point(network.edge_geoms[edge], points, normalized=True)
    # the along-edge metres follow the edge's own (geodesic) length, not the projected one
    offset = fraction * network.edge_length_m[edge]
    return snaps_on_edges(network, edge, offset, access, np.column_stack([lon, lat]))


_TRANSFORMERS: dict[tuple[int, int], Transformer] = {}


def _transformer(src: int, dst: int) -> Transformer:
    key = (src, dst)
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = Transformer.from_crs(CRS.from_epsg(src), CRS.from_epsg(dst), always_xy=True)
    return _TRANSFORMERS[key]


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing (lon, lat): 32637 for Vologda."""
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone
