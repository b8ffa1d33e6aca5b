/* "What can I use now" beside the cpu / memory / gpu fields of the create forms (training,
 * inference, preprocessing run, notebook): the tenant quota, what runs against it, what is
 * free, and whether the request as filled in would start now, wait (and why, and what would
 * let it run) or never run. Reads GET /tenant/resource/available; self-contained: it finds the
 * forms by their fields' ids and adds one box after the gpu field's row. */
(function () {
  "use strict";
  const KQI = window.KQI;
  if (!KQI || KQI.availableBoxes) return;  // (once, even when a page loads this script twice)
  KQI.availableBoxes = true;
  const FORMS = [["job-cpu", "job-memory", "job-gpu", "job-partition"],
    ["nb-cpu", "nb-memory", "nb-gpu", "nb-partition"],
    ["run-cpu", "run-memory", "run-gpu", "run-partition"]];

  function number(id) {
    const input = document.getElementById(id);
    const value = input ? parseFloat(input.value) : NaN;
    return isNaN(value) || value < 0 ? null : value;
  }

  function attach(ids) {
    const gpu = document.getElementById(ids[2]);
    if (!gpu || !KQI.has || !KQI.has("GET /tenant/resource/available")) return;
    const row = gpu.closest(".row") || gpu.parentElement;
    const box = KQI.el("div", { class: "form-text kqi-available mb-2", "aria-live": "polite",
      dataset: { for: ids[0] } });
    row.parentNode.insertBefore(box, row.nextSibling);
    let timer = null;
    let asked = 0;

    async function update() {
      const params = { cpu: number(ids[0]), memory: number(ids[1]), gpu: number(ids[2]) };
      const partition = document.getElementById(ids[3]);
      if (partition && partition.value) params.partition = partition.value;
      const mine = ++asked;
      let can;
      try {
        can = await KQI.api("GET", "/tenant/resource/available" + KQI.queryString(params));
      } catch (err) {
        return;
      }
      if (mine !== asked) return;
      render(box, can);
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(update, 300);
    }
    ids.forEach((id) => {
      const input = document.getElementById(id);
      if (input) {
        input.addEventListener("input", later);
        input.addEventListener("change", later);
      }
    });
    update();
  }

  function render(box, can) {
    const t = KQI.t;
    const limit = (value) => value === null || value === undefined ? t("available.unlimited") : String(value);
    const triple = (x) => `cpu ${limit(x.cpu)}, ${limit(x.memory)} GiB, gpu ${limit(x.gpu)}`;
    const quota = can.quota;
    const lines = [
      `${t("available.quota")}: ${quota.cpu || quota.memory || quota.gpu
        ? triple({ cpu: quota.cpu || null, memory: quota.memory || null, gpu: quota.gpu || null })
        : t("available.unlimited")}`,
      `${t("available.used")}: ${triple(can.used)}`,
      `${t("available.free")}: ${triple(can.free)}`,
      `${t("available.capacity_free")}: ${triple(can.capacityFree)}`,
      `${t("available.at_most")}: ${triple(can.startsNowAtMost)}`,
    ];
    if (can.queued.count) lines.push(t("available.queued", { count: can.queued.count }));
    can.partitions.forEach((p) => p.nodes.forEach((n) => {
      if (n.freeCpu !== null) {
        lines.push((p.partition ? p.partition + " / " : "") + t("available.node", { name: n.name, cpu: n.freeCpu,
          memory: limit(n.freeMemory), gpu: limit(n.freeGpu) }));
      }
    }));
    KQI.clear(box);
    box.appendChild(KQI.el("div", { class: "fw-semibold", text: t("available.title") }));
    lines.forEach((line) => box.appendChild(KQI.el("div", { text: line })));
    const check = can.check;
    if (check) {
      const reason = check.reasons.join("; ");
      const key = check.outcome === "startsNow" ? "available.starts_now"
        : check.outcome === "waits" ? "available.waits" : "available.never";
      const cls = check.outcome === "startsNow" ? "text-success" : check.outcome === "waits" ? "text-warning-emphasis"
        : "text-danger";
      box.appendChild(KQI.el("div", { class: "fw-semibold kqi-available-outcome " + cls,
        dataset: { outcome: check.outcome }, text: t(key, { reason: reason }) }));
      if (check.advice) box.appendChild(KQI.el("div", { text: t("available.advice", { advice: check.advice }) }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    // after kqi.js has read the account (KQI.has needs the page data only)
    FORMS.forEach(attach);
  });
})();
