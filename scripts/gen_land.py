#!/usr/bin/env python3
"""Regenerate the report's world map outline (src/report/data/land.path) from Natural Earth 110m land.

Natural Earth is public domain. The input is `land-110m.json` of the npm package world-atlas 2.0.2 (Natural
Earth 1:110m land as TopoJSON, ISC licence for the packaging):

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python3 scripts/gen_land.py /tmp/package/land-110m.json

Writes one SVG path (`d` attribute) in an equirectangular projection: x = longitude + 180, y = 90 - latitude,
in degrees, rounded to ROUND decimals, rings smaller than MIN_RING_AREA square degrees dropped. The output
is deterministic for a given input.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "report" / "data" / "land.path"
# One decimal of a degree is about 11 km: finer than a 1,000-pixel-wide map can show.
ROUND = 1
# Islands smaller than this (square degrees) are dots at report size; dropping them keeps the file small.
MIN_RING_AREA = 0.5


def decode_arcs(topo):
    scale = topo["transform"]["scale"]
    translate = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * scale[0] + translate[0], y * scale[1] + translate[1]))
        arcs.append(points)
    return arcs


def ring(arcs, indices):
    points = []
    for i in indices:
        arc = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        points.extend(arc if not points else arc[1:])
    return points


def area(points):
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))) / 2


def main(path):
    topo = json.loads(pathlib.Path(path).read_text())
    arcs = decode_arcs(topo)
    parts = []
    for geometry in topo["objects"]["land"]["geometries"]:
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in polygons:
            for indices in polygon:
                points = ring(arcs, indices)
                if area(points) < MIN_RING_AREA:
                    continue
                # The TopoJSON is made for spherical projections: a ring that crosses the antimeridian jumps
                # from +180 to -180, which a flat map draws as a line across the world. Unwrap the
                # longitudes so each step is under 180 degrees, and draw a ring that then reaches past
                # the edge a second time, shifted by 360 degrees (the SVG viewport clips both).
                unwrapped = [points[0]]
                for lon, lat in points[1:]:
                    prev = unwrapped[-1][0]
                    while lon - prev > 180:
                        lon -= 360
                    while lon - prev < -180:
                        lon += 360
                    unwrapped.append((lon, lat))
                lons = [lon for lon, _ in unwrapped]
                shifts = [0]
                if min(lons) < -180:
                    shifts.append(360)
                if max(lons) > 180:
                    shifts.append(-360)
                for shift in shifts:
                    projected = []
                    for lon, lat in unwrapped:
                        p = (round(lon + shift + 180, ROUND), round(90 - lat, ROUND))
                        if not projected or projected[-1] != p:
                            projected.append(p)
                    if len(projected) < 3:
                        continue
                    fmt = lambda v: ("%g" % v)
                    parts.append("M" + "L".join(f"{fmt(x)} {fmt(y)}" for x, y in projected) + "Z")
    OUT.write_text("".join(parts) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(parts)} rings)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/package/land-110m.json")
