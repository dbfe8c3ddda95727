// Small inline-SVG charts: no framework, no external requests, printable.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function svg(width, height, id) {
  const e = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  if (id) e.id = id;
  return e;
}

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

// heatmap draws grid[weekday 0=Mon..6=Sun][hour 0..23] as shaded cells.
export function heatmap(grid, { id, tz = "UTC" } = {}) {
  const cw = 30, ch = 20, left = 40, top = 20;
  const e = svg(left + 24 * cw + 10, top + 7 * ch + 30, id);
  const max = Math.max(1, ...grid.flat());
  e.append(s("title", {}, `actions by hour and weekday, ${tz}`));
  for (let hr = 0; hr < 24; hr += 2) e.append(s("text", { x: left + hr * cw + 2, y: top - 6 }, String(hr).padStart(2, "0")));
  grid.forEach((row, d) => {
    e.append(s("text", { x: 4, y: top + d * ch + 14 }, DAYS[d]));
    row.forEach((n, hr) => {
      const a = n === 0 ? 0 : 0.15 + 0.85 * (n / max);
      const r = s("rect", { x: left + hr * cw, y: top + d * ch, width: cw - 2, height: ch - 2, fill: n ? `rgba(11,87,208,${a.toFixed(3)})` : "#f0f2f4", "data-count": n, "data-day": d, "data-hour": hr });
      r.append(s("title", {}, `${DAYS[d]} ${String(hr).padStart(2, "0")}:00-${String(hr).padStart(2, "0")}:59 ${tz}: ${n}`));
      e.append(r);
    });
  });
  e.append(s("text", { x: left, y: top + 7 * ch + 20 }, `hours in ${tz}; darkest = ${max}`));
  return e;
}

// lineChart draws points {x: seconds, y: number} in order of x.
export function lineChart(points, { width = 800, height = 180, id, xLabel = "", yLabel = "" } = {}) {
  const left = 70, bottom = 30, top = 10, right = 10;
  const e = svg(width, height, id);
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => left + ((x - x0) / Math.max(1, x1 - x0)) * (width - left - right);
  const sy = (y) => height - bottom - ((y - y0) / Math.max(1, y1 - y0)) * (height - top - bottom);
  e.append(s("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, stroke: "#999" }));
  e.append(s("line", { x1: left, y1: top, x2: left, y2: height - bottom, stroke: "#999" }));
  e.append(s("polyline", { points: points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" "), fill: "none", stroke: "#0b57d0", "stroke-width": 2 }));
  e.append(s("text", { x: 4, y: top + 10 }, String(y1)));
  e.append(s("text", { x: 4, y: height - bottom }, String(y0)));
  e.append(s("text", { x: left, y: height - 8 }, new Date(x0 * 1000).toISOString().slice(0, 19) + "Z"));
  e.append(s("text", { x: width - right - 130, y: height - 8 }, new Date(x1 * 1000).toISOString().slice(0, 19) + "Z"));
  e.append(s("title", {}, `${yLabel} by ${xLabel}`));
  return e;
}

// barChart draws {label, value} as horizontal bars.
export function barChart(items, { width = 600, id } = {}) {
  const bh = 22, left = 180, right = 60;
  const e = svg(width, items.length * bh + 10, id);
  const max = Math.max(1, ...items.map((i) => i.value));
  items.forEach((it, k) => {
    const w = ((width - left - right) * it.value) / max;
    e.append(s("text", { x: 4, y: k * bh + 16 }, it.label));
    e.append(s("rect", { x: left, y: k * bh + 4, width: Math.max(1, w), height: bh - 8, fill: "#0b57d0", "data-label": it.label, "data-value": it.value }));
    e.append(s("text", { x: left + w + 6, y: k * bh + 16 }, String(it.value)));
  });
  return e;
}
