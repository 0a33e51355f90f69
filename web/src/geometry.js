// Client-side geometry checks before saving (the server checks again with PostGIS's ST_IsValidReason).

function orient(a, b, c) {
  const v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
  return Math.abs(v) < 1e-18 ? 0 : Math.sign(v);
}

function onSegment(a, b, p) {
  return Math.min(a[0], b[0]) <= p[0] && p[0] <= Math.max(a[0], b[0]) &&
    Math.min(a[1], b[1]) <= p[1] && p[1] <= Math.max(a[1], b[1]);
}

export function segmentsIntersect(p1, p2, q1, q2) {
  const o1 = orient(p1, p2, q1), o2 = orient(p1, p2, q2), o3 = orient(q1, q2, p1), o4 = orient(q1, q2, p2);
  if (o1 !== o2 && o3 !== o4) return true;
  return (o1 === 0 && onSegment(p1, p2, q1)) || (o2 === 0 && onSegment(p1, p2, q2)) ||
    (o3 === 0 && onSegment(q1, q2, p1)) || (o4 === 0 && onSegment(q1, q2, p2));
}

function polygons(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

// Pairs of crossing segments within each polygon (its rings against themselves and each other); segments that
// share a vertex as neighbours in a ring do not count. Empty when the polygon is simple.
export function selfIntersections(geometry) {
  const found = [];
  for (const rings of polygons(geometry)) {
    const segs = [];
    rings.forEach((ring, r) => {
      for (let i = 0; i + 1 < ring.length; i += 1) segs.push({ r, i, n: ring.length - 1, a: ring[i], b: ring[i + 1] });
    });
    for (let x = 0; x < segs.length; x += 1) {
      for (let y = x + 1; y < segs.length; y += 1) {
        const s = segs[x], u = segs[y];
        if (s.r === u.r) {
          const gap = Math.abs(s.i - u.i);
          if (gap === 1 || gap === s.n - 1) continue;  // neighbours share a vertex
        }
        if (segmentsIntersect(s.a, s.b, u.a, u.b)) found.push([s.a, s.b, u.a, u.b]);
      }
    }
  }
  return found;
}
