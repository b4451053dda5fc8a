// The dashboard's charts (basketflow/serving/dashboard.py): the stream's last hour,
// refreshed from /dashboard/data, and a looked-up customer's history, drawn by uPlot.
(function () {
  "use strict";
  const charts = {};

  function width(el) { return Math.max(el.clientWidth, 320); }

  function draw(id, title, label, xs, ys) {
    const el = document.getElementById(id);
    if (!el) return;
    const data = [xs, ys];
    if (charts[id]) { charts[id].setData(data); return; }
    charts[id] = new uPlot({
      title: title, width: width(el), height: 180,
      series: [{}, { label: label, stroke: "#1f77b4", width: 2, spanGaps: false }],
      axes: [{}, { size: 90 }],
    }, data, el);
  }

  function latest(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  function show(id, value, unit) {
    const el = document.getElementById(id);
    if (el) el.textContent = value === null ? "-" : value.toLocaleString("en") + unit;
  }

  function stream(series) {
    draw("chart-rate", "Throughput", "events/s", series.at, series.events_per_second);
    draw("chart-freshness", "Clock behind now", "seconds", series.at,
         series.freshness_seconds);
    draw("chart-lag", "Lag", "messages", series.at, series.lag);
    show("rate", latest(series.events_per_second), "");
    show("freshness", latest(series.freshness_seconds), " s");
    const lag = series.lag.length ? series.lag[series.lag.length - 1] : null;
    const el = document.getElementById("lag");
    if (el) el.textContent = lag === null ? "unknown" : lag.toLocaleString("en");
  }

  async function refresh() {
    try {
      const answer = await fetch("/dashboard/data");
      if (answer.ok) stream(await answer.json());
    } catch (e) {
      // the server is restarting: the next refresh tries again
    }
  }

  const history = JSON.parse(document.getElementById("history-data").textContent);
  if (history && history.ts.length) {
    const el = document.getElementById("chart-history");
    charts.history = new uPlot({
      title: "Spend and orders over 30 days, from the feature log", width: width(el),
      height: 220,
      series: [{}, { label: "spend_30d", stroke: "#1f77b4", width: 2, scale: "spend" },
               { label: "orders_30d", stroke: "#ff7f0e", width: 2, scale: "orders" }],
      axes: [{}, { scale: "spend", size: 60 }, { scale: "orders", side: 1 }],
    }, [history.ts, history.spend_30d, history.orders_30d], el);
  }
  refresh();
  setInterval(refresh, 1000 * Number(document.body.dataset.refresh || 5));
})();
