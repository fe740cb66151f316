// report.html's plots (drills/html.py inlines this after ECharts). Data: the JSON block
// #report-data (plot_data in drills/html.py). Text is zh-CN, or English with #en or the
// button. Every name shown in a tooltip is escaped here; axis labels are drawn on canvas.
// Tests read window.__drillCharts (chart name -> ECharts instance).
(() => {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const COLORS = { nearest: "#2f6fde", plan: "#e0862b", move_up: "#2a9d6a" };
  const SPARE = ["#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
  const FONT = '"Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif';
  const INK = "#1d2733";
  const MUTED = "#5b6b7c";
  const charts = {};
  window.__drillCharts = charts;
  let lang = location.hash === "#en" ? "en" : "zh";

  const T = (k) => (D.text[k] || [k, k])[lang === "en" ? 1 : 0];
  const color = (p, i) => COLORS[p] || SPARE[i % SPARE.length];
  const policyName = (p) => (D.text["policy_" + p] ? T("policy_" + p) : p);
  const typeName = (k) => (D.type_names[k] || [k, k])[lang === "en" ? 1 : 0];
  const num = (x) => typeof x === "number" && Number.isFinite(x);
  const mmss = (s) => {
    if (!num(s)) return "–";
    const r = Math.round(Math.abs(s));
    return `${s < 0 ? "-" : ""}${Math.floor(r / 60)}:${String(r % 60).padStart(2, "0")}`;
  };
  const pct = (x, digits = 1) => (num(x) ? `${(x * 100).toFixed(digits)}%` : "–");
  const plain = (x) => (num(x) ? (Math.round(x * 10) / 10).toString() : "–");
  const esc = (s) =>
    String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const ci = (x) => (Array.isArray(x) && x.length === 2 && num(x[0]) && num(x[1]) ? x : null);

  /** A tooltip listing each series' value at the pointer (names escaped). */
  const axisTip = (fmt) => ({
    trigger: "axis",
    confine: true,
    formatter: (items) => {
      const list = Array.isArray(items) ? items : [items];
      const head = list.length ? esc(list[0].axisValueLabel) : "";
      const rows = list
        .filter((p) => p.seriesType !== "custom")
        .map((p) => `<br>${p.marker}${esc(p.seriesName)}: ${esc(fmt(Array.isArray(p.value) ? p.value[1] : p.value))}`);
      return head + rows.join("");
    },
  });

  const base = (extra) => ({
    animation: false,
    textStyle: { fontFamily: FONT, color: INK },
    legend: { top: 0, itemWidth: 14, itemHeight: 9, textStyle: { fontSize: 12 } },
    grid: { left: 52, right: 16, top: 34, bottom: 30, containLabel: false },
    ...extra,
  });

  const empty = (extra) => ({
    ...base(extra),
    graphic: [{ type: "text", left: "center", top: "middle", silent: true,
      style: { text: T("no_data"), fill: MUTED, font: `14px ${FONT}` } }],
  });

  /** Error bars at bars of a category axis: series k of n, each ``share`` of the band. */
  const errorBars = (name, data, k, n, share) => ({
    type: "custom",
    name,
    silent: true,
    z: 10,
    tooltip: { show: false },
    data,
    renderItem: (params, api) => {
      const lo = api.value(1);
      const hi = api.value(2);
      if (!num(lo) || !num(hi)) return null;
      const band = api.size([1, 0])[0];
      const shift = (k - (n - 1) / 2) * (band * share) / n;
      const a = api.coord([api.value(0), lo]);
      const b = api.coord([api.value(0), hi]);
      const x = a[0] + shift;
      const cap = Math.min(8, (band * share) / n / 3);
      const style = { stroke: INK, lineWidth: 1.5 };
      return { type: "group", children: [
        { type: "line", shape: { x1: x, y1: a[1], x2: x, y2: b[1] }, style },
        { type: "line", shape: { x1: x - cap, y1: a[1], x2: x + cap, y2: a[1] }, style },
        { type: "line", shape: { x1: x - cap, y1: b[1], x2: x + cap, y2: b[1] }, style },
      ] };
    },
  });

  // --- the response-time distribution ------------------------------------------------------
  function histOption() {
    const hists = D.policies.map((p) => D.hist[p] || {});
    const first = hists.find((h) => Array.isArray(h.counts) && h.counts.length);
    if (!first) return empty({});
    const binS = num(first.bin_s) && first.bin_s > 0 ? first.bin_s : 60;
    const later = first.last_bin === "later";
    const regular = first.counts.length - (later ? 1 : 0);
    let last = -1;
    hists.forEach((h) => (h.counts || []).slice(0, regular).forEach((c, i) => { if (c > 0) last = Math.max(last, i); }));
    const targetBin = num(D.target_s) ? D.target_s / binS : null;
    const shown = Math.min(regular, Math.max(last + 2, targetBin === null ? 0 : Math.ceil(targetBin) + 2, 5));
    const cats = [];
    for (let i = 0; i < shown; i++) cats.push(String(Math.round((i * binS) / 60)));
    if (later) cats.push(T("later"));
    const pick = (h) => {
      const c = h.counts || [];
      const out = c.slice(0, shown).concat(Array(Math.max(0, shown - c.length)).fill(0));
      if (later) out.push(c.length ? c[c.length - 1] : 0);
      return out;
    };
    const series = D.policies.map((p, i) => ({
      name: policyName(p), type: "bar", barGap: "0%", barCategoryGap: "18%",
      itemStyle: { color: color(p, i) }, data: pick(hists[i]),
    }));
    if (targetBin !== null && targetBin <= shown) {
      series.push({
        type: "line", xAxisIndex: 1, data: [], silent: true,
        markLine: { symbol: "none", silent: true, animation: false,
          lineStyle: { color: "#b3261e", type: "dashed", width: 1.5 },
          label: { formatter: `${T("target")} ${mmss(D.target_s)}`, color: "#b3261e", position: "end" },
          data: [{ xAxis: targetBin }] },
      });
    }
    return base({
      tooltip: { ...axisTip(plain), axisPointer: { type: "shadow" } },
      xAxis: [
        { type: "category", data: cats, name: T("minutes"), nameLocation: "end", nameGap: 6,
          axisLabel: { interval: "auto" } },
        { type: "value", min: 0, max: cats.length, show: false },
      ],
      yAxis: { type: "value", name: T("calls"), nameTextStyle: { align: "left" } },
      grid: { left: 48, right: 40, top: 40, bottom: 28 },
      series,
    });
  }

  // --- the day, by local hour ----------------------------------------------------------------
  function hourOption(key, fmt, axisFmt, max) {
    const hours = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0"));
    const series = D.policies.map((p, i) => {
      const byHour = D.by_hour[p] || [];
      const data = hours.map((_, h) => {
        const row = byHour.find((r) => r && r.hour === h);
        return row && num(row[key]) ? row[key] : null;
      });
      return { name: policyName(p), type: "line", data, connectNulls: false, showSymbol: false,
        lineStyle: { width: 2 }, itemStyle: { color: color(p, i) } };
    });
    const values = series.flatMap((s) => s.data.filter(num));
    if (!values.length) return empty({});
    const top = Math.max(...values);
    // whole minutes on a time axis: the first step giving at most 5 intervals
    const interval = fmt === mmss
      ? [60, 120, 300, 600, 900, 1200, 1800, 3600, 7200].find((s) => top / s <= 5) || 7200
      : undefined;
    return base({
      tooltip: axisTip(fmt),
      legend: { top: 0, itemWidth: 12, itemHeight: 8, textStyle: { fontSize: 11 } },
      grid: { left: 46, right: 10, top: 30, bottom: 24 },
      xAxis: { type: "category", data: hours, boundaryGap: false, axisLabel: { interval: 5 } },
      yAxis: { type: "value", min: 0, max, interval, axisLabel: { formatter: axisFmt } },
      series,
    });
  }

  // --- late responses on lon/lat axes ---------------------------------------------------------
  function lateOption(chart) {
    const all = [];
    D.policies.forEach((p) => (D.late[p] || []).forEach((pt) => all.push(pt)));
    D.stations.forEach((s) => all.push(s));
    D.hospitals.forEach((s) => all.push(s));
    D.closures.forEach((c) => c.ring.forEach((pt) => all.push(pt)));
    const pts = all.filter((pt) => Array.isArray(pt) && num(pt[0]) && num(pt[1]));
    if (!pts.length) return empty({});
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    pts.forEach(([x, y]) => { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); });
    const kx = Math.cos((((y0 + y1) / 2) * Math.PI) / 180);
    const span = Math.max((x1 - x0) * kx, y1 - y0, 0.002);  // in degrees of latitude
    const cell = span / 24;  // about 24 cells across
    const grid = { left: 64, right: 20, top: 36, bottom: 40 };
    const gw = Math.max(50, chart.getWidth() - grid.left - grid.right);
    const gh = Math.max(50, chart.getHeight() - grid.top - grid.bottom);
    // the extent, padded, with one degree of latitude as long on screen as cos(lat) of longitude
    let h = Math.max(y1 - y0, span * 0.2) * 1.1 + cell * 2;
    let w = Math.max((x1 - x0) * kx, span * 0.2) * 1.1 + cell * 2;
    if (w / h < gw / gh) w = (h * gw) / gh; else h = (w * gh) / gw;
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    const ext = { x0: cx - w / kx / 2, x1: cx + w / kx / 2, y0: cy - h / 2, y1: cy + h / 2 };
    const cells = {};
    let most = 1;
    const heat = D.policies.map((p, i) => {
      const counts = new Map();
      (D.late[p] || []).forEach(([x, y]) => {
        if (!num(x) || !num(y)) return;
        const key = `${Math.floor(x / (cell / kx))}:${Math.floor(y / cell)}`;
        counts.set(key, (counts.get(key) || 0) + 1);
      });
      const data = [...counts].map(([key, n]) => {
        const [i0, j0] = key.split(":").map(Number);
        most = Math.max(most, n);
        return [i0 * (cell / kx), j0 * cell, n, (i0 + 1) * (cell / kx), (j0 + 1) * cell];
      });
      cells[p] = data.length;
      return {
        name: policyName(p), type: "custom", itemStyle: { color: color(p, i) },
        encode: { x: [0, 3], y: [1, 4], tooltip: 2 }, data,
        tooltip: { formatter: (it) => `${esc(policyName(p))}<br>${esc(T("late_cells"))}: ${esc(it.value[2])}` },
        renderItem: (params, api) => {
          const a = api.coord([api.value(0), api.value(1)]);
          const b = api.coord([api.value(3), api.value(4)]);
          return { type: "rect", shape: { x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]),
            width: Math.abs(b[0] - a[0]), height: Math.abs(b[1] - a[1]) },
          style: { fill: api.visual("color"), opacity: 0.85 } };
        },
      };
    });
    const closures = D.closures.map((c) => ({
      name: `${T("closure")}: ${c.name}`, type: "custom", silent: false, z: 3,
      data: [0], tooltip: { formatter: () => `${esc(T("closure"))}: ${esc(c.name)}` },
      renderItem: (params, api) => ({ type: "polygon",
        shape: { points: c.ring.filter((pt) => num(pt[0]) && num(pt[1])).map((pt) => api.coord(pt)) },
        style: { fill: "rgba(108,52,131,0.08)", stroke: "#6c3483", lineWidth: 1.5, lineDash: [5, 4] } }),
    }));
    const places = (list, name, symbol, size, fill) => ({
      name, type: "scatter", symbol, symbolSize: size, z: 5, data: list.map((s) => [s[0], s[1], s[2]]),
      itemStyle: { color: fill, borderColor: "#fff", borderWidth: 1 },
      tooltip: { formatter: (it) => `${esc(name)}: ${esc(it.value[2])}` },
    });
    const selected = {};
    D.policies.forEach((p, i) => { selected[policyName(p)] = i === 0; });
    const anyLate = Object.values(cells).some((n) => n > 0);
    return base({
      grid,
      tooltip: { trigger: "item", confine: true },
      legend: { top: 0, data: D.policies.map(policyName), selectedMode: "single", selected },
      visualMap: { type: "continuous", min: 1, max: Math.max(2, most), seriesIndex: heat.map((_, i) => i),
        dimension: 2, orient: "horizontal", right: 20, top: 2, itemWidth: 10, itemHeight: 90,
        text: [String(Math.max(2, most)), "1"], textStyle: { fontSize: 11 }, calculable: false,
        inRange: { color: ["#fde4a5", "#f4a259", "#d9481e", "#8c1c13"] } },
      xAxis: { type: "value", min: ext.x0, max: ext.x1, name: T("lon"), nameLocation: "middle", nameGap: 24,
        axisLabel: { formatter: (v) => v.toFixed(3), hideOverlap: true }, splitLine: { lineStyle: { color: "#eef1f4" } } },
      yAxis: { type: "value", min: ext.y0, max: ext.y1, name: T("lat"), nameLocation: "middle", nameGap: 50,
        axisLabel: { formatter: (v) => v.toFixed(3) }, splitLine: { lineStyle: { color: "#eef1f4" } } },
      graphic: anyLate ? [] : [{ type: "text", left: "center", top: 40, silent: true,
        style: { text: T("no_late"), fill: MUTED, font: `14px ${FONT}` } }],
      series: [
        ...heat,
        ...closures,
        places(D.stations, T("stations"), "triangle", 11, INK),
        places(D.hospitals, T("hospitals"), "path://M3,0h4v3h3v4h-3v3h-4v-3h-3v-4h3z", 11, "#0b7285"),
      ],
    });
  }

  // --- policies side by side, with their 95% intervals -----------------------------------------
  function utilOption() {
    const vals = D.policies.map((p) => (D.util[p] || {}));
    if (!vals.some((v) => num(v.v))) return empty({});
    const cats = D.policies.map(policyName);
    return base({
      legend: { show: false },
      tooltip: { trigger: "item", confine: true, formatter: (it) => {
        const v = vals[it.dataIndex];
        const range = ci(v.ci) ? ` (${pct(v.ci[0])} – ${pct(v.ci[1])})` : "";
        return `${esc(cats[it.dataIndex])}: ${esc(pct(v.v))}${esc(range)}`;
      } },
      grid: { left: 48, right: 16, top: 14, bottom: 26 },
      xAxis: { type: "category", data: cats },
      yAxis: { type: "value", min: 0, axisLabel: { formatter: (v) => pct(v, 0) } },
      series: [
        { type: "bar", barWidth: "50%", data: vals.map((v, i) => ({ value: num(v.v) ? v.v : null,
          itemStyle: { color: color(D.policies[i], i) } })),
          label: { show: true, position: "insideBottom", color: "#fff", formatter: (it) => pct(it.value) } },
        errorBars("ci", vals.map((v, i) => [i, ...(ci(v.ci) || [null, null])]), 0, 1, 0.5),
      ],
    });
  }

  function typeOption() {
    const types = D.types;
    if (!types.length) return empty({});
    const n = D.policies.length;
    const share = 0.7;
    const bars = D.policies.map((p, i) => ({
      name: policyName(p), type: "bar", barGap: "0%", barWidth: `${(share * 100) / n}%`,
      itemStyle: { color: color(p, i) },
      data: types.map((k) => {
        const v = (D.within_by_type[p] || {})[k] || {};
        return num(v.v) ? v.v : null;
      }),
    }));
    const whiskers = D.policies.map((p, i) => errorBars(policyName(p), types.map((k, j) => {
      const v = (D.within_by_type[p] || {})[k] || {};
      return [j, ...(ci(v.ci) || [null, null])];
    }), i, n, share));
    return base({
      tooltip: { ...axisTip((x) => pct(x)), axisPointer: { type: "shadow" } },
      legend: { top: 0, itemWidth: 14, itemHeight: 9, data: D.policies.map(policyName) },
      grid: { left: 48, right: 16, top: 34, bottom: 26 },
      xAxis: { type: "category", data: types.map(typeName) },
      yAxis: { type: "value", min: 0, max: (e) => Math.max(1, e.max), axisLabel: { formatter: (v) => pct(v, 0) } },
      series: [...bars, ...whiskers],
    });
  }

  // --- drawing ---------------------------------------------------------------------------
  const BUILD = {
    hist: histOption,
    hour_within: () => hourOption("within_target", pct, (v) => pct(v, 0), 1),
    hour_response: () => hourOption("response_mean_s", mmss, mmss, null),
    hour_busy: () => hourOption("busy_units", plain, plain, null),
    hour_coverage: () => hourOption("coverage", pct, (v) => pct(v, 0), 1),
    late: lateOption,
    util: utilOption,
    type_within: typeOption,
  };

  function draw() {
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const name = el.dataset.chart;
      const old = echarts.getInstanceByDom(el);
      if (old) old.dispose();
      try {
        const chart = echarts.init(el, null, { renderer: "canvas" });
        chart.setOption(BUILD[name](chart));
        charts[name] = chart;
      } catch (err) {
        console.error(`chart ${name}:`, err);
      }
    });
  }

  function setLang(next) {
    lang = next;
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    try {
      history.replaceState(null, "", lang === "en" ? "#en" : location.pathname + location.search);
    } catch (_) { /* a page opened from a file may refuse; the switch still works */ }
    draw();
  }

  document.getElementById("lang").addEventListener("click", () => setLang(lang === "en" ? "zh" : "en"));
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(draw, 150);
  });
  setLang(lang);
})();
