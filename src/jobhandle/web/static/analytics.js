// The analytics page: charts of the window's figures (uPlot, vendored), redrawn as jobs change.
// The figures come with the page (#analytics-data, JSON), then from /ui/analytics at most every 5 s while
// the event stream says something changed: a read of a few hundred rollup rows, however many jobs there are.
"use strict";

(() => {
  const dataNode = document.getElementById("analytics-data");
  if (!dataNode || !window.uPlot) return;
  const REFRESH_MIN_MS = 5000;
  const windowName = new URLSearchParams(location.search).get("window") || "24h";
  let data = JSON.parse(dataNode.textContent);
  const charts = [];

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${(s / 60).toFixed(1)} m`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function sizeOf(node) { return { width: Math.max(260, node.clientWidth), height: 220 }; }

  function specs(d) {
    const x = d.slots;
    const rate = x.map((_, i) => {
      const done = d.series.completed[i] + d.series.failed[i];
      return done ? (100 * d.series.completed[i]) / done : null;
    });
    const secondsAxis = { stroke: css("--muted"), grid: { stroke: css("--line") }, values: (u, v) => v.map(fmtSeconds), size: 60 };
    const countAxis = { stroke: css("--muted"), grid: { stroke: css("--line") }, size: 50 };
    const timeAxis = { stroke: css("--muted"), grid: { stroke: css("--line") } };
    const times = (kind) => [x, d.times[kind].p50, d.times[kind].p95, d.times[kind].p99];
    const pSeries = [{}, { label: "p50", stroke: css("--completed"), width: 2 }, { label: "p95", stroke: css("--retrying"), width: 2 },
      { label: "p99", stroke: css("--failed"), width: 2 }].map((s, i) => (i ? { ...s, value: (u, v) => fmtSeconds(v), spanGaps: false } : s));
    return [
      ["chart-throughput", [x, d.series.completed, d.series.failed, d.series.cancelled, d.series.retried], {
        series: [{}, { label: "completed", stroke: css("--completed"), fill: css("--completed") + "22", width: 2 },
          { label: "failed", stroke: css("--failed"), width: 2 }, { label: "cancelled", stroke: css("--cancelled"), width: 1 },
          { label: "retried", stroke: css("--retrying"), width: 1, dash: [4, 4] }],
        axes: [timeAxis, countAxis] }],
      ["chart-success", [x, rate], {
        series: [{}, { label: "success %", stroke: css("--accent"), width: 2, value: (u, v) => (v === null ? "–" : `${v.toFixed(1)}%`) }],
        scales: { y: { range: [0, 100] } }, axes: [timeAxis, { ...countAxis, values: (u, v) => v.map((n) => `${n}%`) }] }],
      ["chart-wait", times("wait"), { series: pSeries, axes: [timeAxis, secondsAxis] }],
      ["chart-run", times("run"), { series: pSeries, axes: [timeAxis, secondsAxis] }],
    ];
  }

  function draw() {
    while (charts.length) charts.pop().destroy();
    for (const [id, values, options] of specs(data)) {
      const node = document.getElementById(id);
      node.replaceChildren();
      charts.push(new uPlot({ ...sizeOf(node), ...options, cursor: { drag: { x: false, y: false } } }, values, node));
    }
  }

  function update() {
    for (const [key, value] of Object.entries(data.totals)) {
      const node = document.querySelector(`[data-total="${key}"]`);
      if (node) node.textContent = String(value);
    }
    const rate = document.querySelector('[data-total="success_rate"]');
    if (rate) rate.textContent = data.success_rate === null ? "–" : `${(data.success_rate * 100).toFixed(1)}%`;
    specs(data).forEach(([, values], i) => charts[i] && charts[i].setData(values));
  }

  let timer = null;
  let last = Date.now();
  async function refresh() {
    timer = null;
    last = Date.now();
    const response = await fetch(`/ui/analytics?window=${encodeURIComponent(windowName)}`, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    data = await response.json();
    update();
  }
  document.addEventListener("jobhandle:changed", () => {
    if (!timer) timer = setTimeout(refresh, Math.max(0, last + REFRESH_MIN_MS - Date.now()));
  });

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => charts.forEach((c) => c.setSize(sizeOf(c.root.parentNode))), 150);
  });
  new MutationObserver(draw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  draw();
})();
