/* The resource screens: the monitor (containers, nodes) and the usage report with its chart.
 * System administrators: /admin/resource/*; tenant administrators: /tenant/resource/*.
 * Every element is made with KQI.el (no HTML from data). */
(function () {
  "use strict";
  const KQI = window.KQI;
  const page = KQI.data.page;
  if (page !== "resources" && page !== "tenant_resources") return;
  const admin = page === "resources";
  const base = admin ? "/admin/resource" : "/tenant/resource";
  const t = KQI.t;
  let chart = null;

  function containerPath(c) {
    return admin ? `${base}/containers/${c.tenantId}/${encodeURIComponent(c.name)}`
      : `${base}/containers/${encodeURIComponent(c.name)}`;
  }

  function showText(text) {
    const pre = KQI.$("#kqi-res-detail");
    pre.textContent = text;
    pre.classList.remove("d-none");
    pre.scrollIntoView({ block: "nearest" });
  }

  async function loadContainers() {
    const messages = KQI.$("#kqi-res-messages");
    const head = KQI.$("#kqi-res-containers-head");
    const body = KQI.$("#kqi-res-containers tbody");
    const columns = ["resources.name", "resources.type"].concat(admin ? ["resources.tenant"] : [],
      ["resources.owner", "resources.cpu", "resources.memory", "resources.gpu", "resources.status", "resources.node",
        "resources.started", ""]);
    KQI.clear(head);
    columns.forEach((key) => head.appendChild(KQI.el("th", { text: key ? t(key) : "" })));
    let rows;
    try {
      rows = await KQI.api("GET", `${base}/containers`);
    } catch (err) {
      KQI.showError(messages, err);
      return [];
    }
    KQI.clear(body);
    if (!rows.length) {
      body.appendChild(KQI.el("tr", {}, KQI.el("td", { colspan: String(columns.length), class: "text-body-secondary",
        text: t("resources.none") })));
    }
    rows.forEach((c) => {
      const link = KQI.el("a", { href: KQI.data.servicePrefix + c.page, text: c.name });
      const actions = KQI.el("td", { class: "text-nowrap" });
      if (c.kind !== "notebook" && c.kind !== "tensorboard") {
        actions.appendChild(KQI.el("button", { type: "button", class: "btn btn-sm btn-outline-secondary me-1",
          text: t("resources.log"), onclick: async () => {
            try { showText((await KQI.request("GET", containerPath(c) + "/log")).text || ""); }
            catch (err) { KQI.showError(messages, err); }
          } }));
      }
      if (admin) {
        actions.appendChild(KQI.el("button", { type: "button", class: "btn btn-sm btn-outline-secondary me-1",
          text: t("resources.events"), onclick: async () => {
            try {
              const events = await KQI.api("GET", containerPath(c) + "/events");
              showText(events.map((e) => `${e.timestamp || ""}  ${e.type}  ${e.reason}  ${e.message}`).join("\n"));
            } catch (err) { KQI.showError(messages, err); }
          } }));
      }
      actions.appendChild(KQI.el("button", { type: "button", class: "btn btn-sm btn-outline-danger",
        text: t("resources.stop"), onclick: async () => {
          if (!window.confirm(t("resources.stop_confirm", { name: c.name }))) return;
          try {
            await KQI.api("DELETE", containerPath(c));
            KQI.show(messages, "success", t("resources.stopped", { name: c.name }));
            refresh();
          } catch (err) { KQI.showError(messages, err); }
        } }));
      body.appendChild(KQI.el("tr", {},
        KQI.el("td", {}, link), KQI.el("td", { text: c.containerType }),
        admin ? KQI.el("td", { text: c.displayName || c.tenantName || "" }) : null,
        KQI.el("td", { text: c.createdBy || "" }), KQI.el("td", { text: String(c.cpu) }),
        KQI.el("td", { text: String(c.memory) }), KQI.el("td", { text: String(c.gpu) }),
        KQI.el("td", { text: c.status }), KQI.el("td", { text: c.nodeName || "" }),
        KQI.el("td", { text: c.startedAt ? KQI.formatDate(c.startedAt + "Z") : "" }), actions));
    });
    return rows;
  }

  async function loadNodes() {
    const body = KQI.$("#kqi-res-nodes tbody");
    let nodes;
    try {
      nodes = await KQI.api("GET", `${base}/nodes`);
    } catch (err) {
      KQI.showError(KQI.$("#kqi-res-messages"), err);
      return;
    }
    KQI.clear(body);
    nodes.forEach((n) => body.appendChild(KQI.el("tr", {},
      KQI.el("td", { text: n.name }), KQI.el("td", { text: n.partition || "" }),
      KQI.el("td", { text: n.cpuInfo }), KQI.el("td", { text: n.memoryInfo }), KQI.el("td", { text: n.gpuInfo }),
      KQI.el("td", { text: n.containerResourceList.map((c) => c.name).join(", ") }))));
  }

  function usageParams() {
    const params = { startDate: KQI.$("#kqi-usage-start").value, endDate: KQI.$("#kqi-usage-end").value,
      groupBy: KQI.$("#kqi-usage-group").value, chartBy: KQI.$("#kqi-usage-group").value };
    Object.keys(params).forEach((k) => { if (!params[k]) delete params[k]; });
    return params;
  }

  // hours, to three significant digits (a short job is a few thousandths of an hour)
  const hours = (seconds) => seconds ? Number((seconds / 3600).toPrecision(3)) : 0;
  const bytes = (n) => n >= 1 << 30 ? (n / (1 << 30)).toFixed(2) + " GiB" : n >= 1 << 20
    ? (n / (1 << 20)).toFixed(2) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";

  async function loadUsage() {
    const messages = KQI.$("#kqi-usage-messages");
    KQI.clear(messages);
    const params = usageParams();
    const query = KQI.queryString(params);
    KQI.$("#kqi-usage-csv").href = KQI.data.apiBase + `${base}/usage/csv` + query;
    if (admin) {
      KQI.$("#kqi-history-csv-box").classList.remove("d-none");
      KQI.$("#kqi-history-csv").href = KQI.data.apiBase + "/admin/resource/histories/containers/data"
        + KQI.queryString({ startDate: params.startDate, endDate: params.endDate, withHeader: "true" });
    }
    let report;
    try {
      report = await KQI.api("GET", `${base}/usage` + query);
    } catch (err) {
      KQI.showError(messages, err);
      return;
    }
    KQI.$("#kqi-usage-start").value = report.startDate;
    KQI.$("#kqi-usage-end").value = report.endDate;
    const group = params.groupBy || "tenant";
    const label = (row) => group === "tenant" ? row.tenantName : group === "user" ? row.userName : row.kind;
    const head = KQI.$("#kqi-usage-totals-head");
    KQI.clear(head);
    ["resources.by_" + group, "resources.runs", "resources.cpu_hours", "resources.memory_hours", "resources.gpu_hours"]
      .forEach((key) => head.appendChild(KQI.el("th", { text: t(key) })));
    const body = KQI.$("#kqi-usage-totals tbody");
    KQI.clear(body);
    report.totals.forEach((row) => body.appendChild(KQI.el("tr", {}, KQI.el("td", { text: label(row) }),
      KQI.el("td", { text: String(row.runs) }), KQI.el("td", { text: String(hours(row.cpuSeconds)) }),
      KQI.el("td", { text: String(hours(row.memorySeconds)) }), KQI.el("td", { text: String(hours(row.gpuSeconds)) }))));
    const storage = KQI.$("#kqi-usage-storage tbody");
    KQI.clear(storage);
    report.storage.forEach((s) => storage.appendChild(KQI.el("tr", {}, KQI.el("td", { text: s.displayName }),
      KQI.el("td", { text: bytes(s.dataBytes) }), KQI.el("td", { text: bytes(s.outputBytes) }),
      KQI.el("td", { text: bytes(s.totalBytes) }))));
    drawChart(report, messages);
  }

  function drawChart(report, messages) {
    if (!window.Chart) {
      KQI.show(messages, "warning", t("resources.no_chart"));
      return;
    }
    const days = [];
    for (let d = new Date(report.startDate + "T00:00:00Z"); d <= new Date(report.endDate + "T00:00:00Z");
      d.setUTCDate(d.getUTCDate() + 1)) days.push(d.toISOString().slice(0, 10));
    const groups = Array.from(new Set(report.daily.map((d) => d.group))).sort();
    const datasets = groups.map((g) => ({
      label: g, data: days.map((day) => {
        const found = report.daily.find((d) => d.date === day && d.group === g);
        return found ? hours(found.cpuSeconds) : 0;
      }),
    }));
    if (chart) chart.destroy();
    chart = new window.Chart(KQI.$("#kqi-usage-chart"), {
      type: "bar",
      data: { labels: days, datasets: datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { title: { display: true, text: t("resources.chart_label") } },
        scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: t("resources.cpu_hours") } } } },
    });
  }

  function refresh() {
    loadContainers();
    loadNodes();
  }

  KQI.pages[page] = async function () {
    KQI.$("#kqi-res-refresh").addEventListener("click", () => { refresh(); loadUsage(); });
    KQI.$("#kqi-usage-form").addEventListener("submit", (e) => { e.preventDefault(); loadUsage(); });
    await Promise.all([loadContainers(), loadNodes(), loadUsage()]);
  };
})();
