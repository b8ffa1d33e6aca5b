/* KQI web UI: the training, inference and notebook screens (学習管理, 推論管理, ノートブック管理).
 *
 * Each screen has three views in its template: the list, the create form and an item's page;
 * the address chooses one (?id=N: the item, ?new / ?copy=N / ?training=N: the form, else the
 * list). As in kqi.js, data reaches the page only through textContent, attribute values and
 * form values, never as markup.
 */
"use strict";

(function () {
  const KQI = window.KQI;
  const t = KQI.t;
  const el = KQI.el;

  const JOB_ACTIVE = ["Queued", "Running"];
  const NOTEBOOK_ACTIVE = ["Pending", "Running"];
  const STATUS_STYLE = {
    Queued: "secondary", Pending: "secondary", Running: "primary", Completed: "success", Failed: "danger",
    Killed: "warning", Error: "danger", Stopped: "secondary",
  };

  const KINDS = {
    training: {
      name: "training", screen: "training", base: "/training", kindWord: "jobs.kind_training",
    },
    inference: {
      name: "inference", screen: "inference", base: "/inferences", kindWord: "jobs.kind_inference",
    },
  };

  // ---------------------------------------------------------------- helpers
  const query = new URLSearchParams(window.location.search);

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  const toDate = KQI.toDate;
  const formatDate = (value) => KQI.formatDate(value);

  function formatSize(bytes) {
    if (bytes === null || bytes === undefined) return t("common.none");
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = Number(bytes);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined) return t("common.none");
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h + ":" + String(m).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
  }

  function orNone(value) {
    return value === null || value === undefined || value === "" ? t("common.none") : String(value);
  }

  function statusText(status) {
    const key = "jobs.status_" + status;
    const text = t(key);
    return text === key ? String(status) : text;
  }

  function statusBadge(status) {
    return el("span", {
      class: "badge kqi-status text-bg-" + (STATUS_STYLE[status] || "secondary"),
      dataset: { status: status || "" }, text: statusText(status), title: status || null,
    });
  }

  function screenUrl(screen, params) {
    const qs = new URLSearchParams(params || {}).toString();
    return KQI.data.urls[screen] + (qs ? "?" + qs : "");
  }

  function enc(value) {
    return encodeURIComponent(String(value));
  }

  function showView(name) {
    KQI.$$(".kqi-view").forEach((v) => v.classList.toggle("d-none", v.id !== "kqi-view-" + name));
  }

  function splitList(text) {
    return String(text || "").split(",").map((s) => s.trim()).filter((s) => s);
  }

  function numberOrNull(value) {
    const text = String(value === undefined || value === null ? "" : value).trim();
    return text === "" ? null : Number(text);
  }

  /** Fill a <select> with {value, label} options; `empty` adds a first option with value "". */
  function setOptions(select, options, empty, selected) {
    KQI.clear(select);
    if (empty) select.appendChild(el("option", { value: "", text: empty }));
    for (const opt of options) {
      select.appendChild(el("option", { value: String(opt.value), text: opt.label }));
    }
    if (selected !== undefined && selected !== null) selectValue(select, selected);
  }

  /** Select a value, adding it as an option when the list lacks it (e.g. a copy of an old job). */
  function selectValue(select, value, label) {
    const text = value === null || value === undefined ? "" : String(value);
    if (text && !Array.from(select.options).some((o) => o.value === text)) {
      select.appendChild(el("option", { value: text, text: label || text }));
    }
    select.value = text;
  }

  /** GET a route the deployment may lack; `fallback` when it does or when it fails. */
  async function optional(feature, path, fallback) {
    if (!KQI.has(feature)) return fallback;
    try {
      const result = await KQI.api("GET", path);
      return result === null ? fallback : result;
    } catch (err) {
      return fallback;
    }
  }

  function describe(pairs) {
    const nodes = [];
    for (const [key, value] of pairs) {
      if (value === undefined) continue;
      nodes.push(el("dt", { class: "col-sm-4 text-body-secondary fw-normal", text: t(key) }));
      const dd = el("dd", { class: "col-sm-8", dataset: { key: key } });
      const empty = value === null || value === "" || (Array.isArray(value) && !value.length);
      KQI.append(dd, empty ? t("common.none") : value);
      nodes.push(dd);
    }
    return nodes;
  }

  function clearFieldErrors(form) {
    KQI.markFields(form, {});
  }

  /** Mark an input invalid with the browser's own message (client-side checks). */
  function markInvalid(input, message) {
    input.classList.add("is-invalid");
    const field = input.closest(".kqi-field");
    const feedback = field && field.querySelector(".invalid-feedback");
    if (feedback) feedback.textContent = message || input.validationMessage;
  }

  function checkInputs(root) {
    let ok = true;
    for (const input of KQI.$$("input, select, textarea", root)) {
      if (input.type === "checkbox" || input.type === "radio" || input.disabled) continue;
      if (!input.checkValidity()) {
        markInvalid(input);
        ok = false;
      } else {
        input.classList.remove("is-invalid");
      }
    }
    return ok;
  }

  function noTenant(account) {
    if (account.selectedTenant) return false;
    const box = KQI.$("#kqi-no-tenant");
    box.classList.remove("d-none");
    KQI.show(box, "warning", t("common.no_tenant"));
    return true;
  }

  // --------------------------------------------------------- form widgets
  /** A list of checkboxes (trainings or inferences to mount). */
  function checkList(container, items, chosen) {
    KQI.clear(container);
    const wanted = new Set((chosen || []).map(Number));
    const known = new Set(items.map((i) => Number(i.id)));
    const all = items.slice();
    for (const id of wanted) if (!known.has(id)) all.unshift({ id: id, name: "", status: null });
    if (!all.length) {
      container.appendChild(el("span", { class: "text-body-secondary small", text: t("jobs.nothing_to_mount") }));
    }
    for (const item of all) {
      const id = container.id + "-" + item.id;
      container.appendChild(el("div", { class: "form-check" },
        el("input", { class: "form-check-input", type: "checkbox", id: id, value: String(item.id),
          checked: wanted.has(Number(item.id)) }),
        el("label", { class: "form-check-label", for: id },
          el("span", { text: item.id + (item.name ? ":" + item.name : "") }),
          item.status ? " " : null, item.status ? statusBadge(item.status) : null)));
    }
  }

  function checkedIds(container) {
    return container ? KQI.$$("input:checked", container).map((i) => Number(i.value)) : [];
  }

  /** The trainings (or inferences) that can be mounted, as checkboxes: the newest page of the
   * kind's list (server paging, queued jobs left out) with a name filter that asks the server;
   * what is checked stays checked across filters. Returns {ready, set(ids, labels)}. */
  function mountPicker(container, path, opts) {
    if (!container) return { ready: Promise.resolve(), set: () => {} };
    const exclude = opts && opts.exclude !== undefined ? Number(opts.exclude) : null;
    const anyStatus = !!(opts && opts.anyStatus);
    const perPage = 50;
    const chosen = new Map(); // id -> name ("" when unknown)
    let items = [];
    let sequence = 0;
    const filter = el("input", {
      type: "search", class: "form-control form-control-sm mb-1 kqi-choice-filter", id: container.id + "-filter",
      autocomplete: "off", placeholder: t("choice.filter"), "aria-label": t("choice.filter"),
    });
    const note = el("div", { class: "form-text kqi-choice-more d-none" });
    container.before(filter);
    container.after(note);

    function render() {
      const shown = items.slice();
      const ids = new Set(shown.map((i) => Number(i.id)));
      for (const [id, name] of chosen) if (!ids.has(id) && id !== exclude) shown.unshift({ id: id, name: name, status: null });
      checkList(container, shown, Array.from(chosen.keys()));
    }
    container.addEventListener("change", (event) => {
      const box = event.target;
      if (!box || box.type !== "checkbox") return;
      const id = Number(box.value);
      if (box.checked) chosen.set(id, (items.find((i) => Number(i.id) === id) || {}).name || chosen.get(id) || "");
      else chosen.delete(id);
    });
    async function load(name) {
      const mine = ++sequence;
      if (!KQI.has("GET " + path)) return;
      const result = await KQI.fetchPage(path, { name: name || null, perPage: perPage, page: 1 });
      if (mine !== sequence) return;
      items = result.items.filter((j) => Number(j.id) !== exclude
        && (anyStatus || JOB_ACTIVE.indexOf(j.status) < 0 || j.status === "Running"));
      render();
      const more = result.total > result.items.length;
      note.classList.toggle("d-none", !more);
      note.textContent = more ? t("choice.more", { shown: result.items.length, total: result.total }) : "";
    }
    let timer = null;
    filter.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => load(filter.value.trim()).catch((err) => KQI.showError("kqi-alerts", err)), 250);
    });
    return {
      ready: load(""),
      set: (ids, names) => {
        chosen.clear();
        (ids || []).forEach((id, i) => chosen.set(Number(id), (names && names[i]) || ""));
        render();
      },
    };
  }

  /** Key/value rows for environment variables. */
  function envEditor(rowsId, addId) {
    const rows = KQI.$("#" + rowsId);
    function add(key, value) {
      const row = el("div", { class: "input-group input-group-sm mb-1 kqi-env-row" },
        el("input", { class: "form-control font-monospace kqi-env-key", autocomplete: "off",
          placeholder: t("jobs.env_name"), "aria-label": t("jobs.env_name"), value: key || "" }),
        el("span", { class: "input-group-text", text: "=" }),
        el("input", { class: "form-control font-monospace kqi-env-value", autocomplete: "off",
          placeholder: t("jobs.env_value"), "aria-label": t("jobs.env_value"), value: value || "" }));
      row.appendChild(el("button", { type: "button", class: "btn btn-outline-secondary kqi-env-remove",
        text: t("jobs.remove"), onclick: () => row.remove() }));
      rows.appendChild(row);
      return row;
    }
    KQI.$("#" + addId).addEventListener("click", () => KQI.$(".kqi-env-key", add("", "")).focus());
    return {
      add: add,
      set(options) {
        KQI.clear(rows);
        const pairs = Array.isArray(options) ? options.map((o) => [o.key, o.value]) : Object.entries(options || {});
        for (const [key, value] of pairs) add(key, value);
      },
      value() {
        const out = {};
        for (const row of KQI.$$(".kqi-env-row", rows)) {
          const key = KQI.$(".kqi-env-key", row).value.trim();
          if (key) out[key] = KQI.$(".kqi-env-value", row).value;
        }
        return out;
      },
    };
  }

  /** The model: git server, repository ("owner/name"), branch and commit, listed by the API. */
  function modelPicker(prefix, gits, required) {
    const server = KQI.$("#" + prefix + "-git");
    const repo = KQI.$("#" + prefix + "-repo");
    const repoList = KQI.$("#" + prefix + "-repo-list");
    const branch = KQI.$("#" + prefix + "-branch");
    const commit = KQI.$("#" + prefix + "-commit");
    const note = KQI.$("#" + prefix + "-model-note");
    const defaultGit = gits.find((g) => g.isDefault) || gits[0];
    setOptions(server, gits.map((g) => ({ value: g.id, label: g.name })), null, defaultGit ? defaultGit.id : null);
    setOptions(branch, [], t("jobs.branch_default"));
    setOptions(commit, [], t("jobs.commit_head"));
    let repoNames = new Set();
    let branchesOf = null;
    let generation = 0;

    function split() {
      const value = repo.value.trim();
      const cut = value.lastIndexOf("/");
      if (cut <= 0 || cut === value.length - 1) return null;
      return { owner: value.slice(0, cut), repository: value.slice(cut + 1) };
    }

    function repoPath(names) {
      return "/git/" + enc(server.value) + "/repos/" + names.owner.split("/").map(enc).join("/") + "/" +
        enc(names.repository);
    }

    function warn(key, err) {
      KQI.show(note, "warning", t(key, { reason: err.detail || err.message }));
    }

    async function loadRepos() {
      KQI.clear(repoList);
      repoNames = new Set();
      if (!server.value) return;
      try {
        const repos = await KQI.api("GET", "/git/" + enc(server.value) + "/repos");
        for (const r of repos || []) {
          const full = r.fullName || r.owner + "/" + r.name;
          repoNames.add(full);
          repoList.appendChild(el("option", { value: full }));
        }
        KQI.show(note, "info", "");
      } catch (err) {
        warn("jobs.repos_failed", err);
      }
    }

    async function loadBranches(wantedBranch, wantedCommit) {
      const names = split();
      const key = server.value + " " + repo.value.trim();
      if (branchesOf === key && wantedBranch === undefined) return;
      branchesOf = key;
      const mine = ++generation;
      setOptions(branch, [], t("jobs.branch_default"));
      setOptions(commit, [], t("jobs.commit_head"));
      if (!names || !server.value) return;
      try {
        const branches = await KQI.api("GET", repoPath(names) + "/branches");
        if (mine !== generation) return;
        setOptions(branch, (branches || []).map((b) => ({ value: b.branchName, label: b.branchName })),
          t("jobs.branch_default"));
        const list = (branches || []).map((b) => b.branchName);
        const pick = wantedBranch !== undefined ? wantedBranch
          : ["master", "main"].find((b) => list.indexOf(b) >= 0) || list[0] || "";
        selectValue(branch, pick);
        KQI.show(note, "info", "");
      } catch (err) {
        if (mine !== generation) return;
        if (wantedBranch) selectValue(branch, wantedBranch);
        warn("jobs.branches_failed", err);
      }
      await loadCommits(wantedCommit);
    }

    async function loadCommits(wantedCommit) {
      const names = split();
      const mine = ++generation;
      setOptions(commit, [], t("jobs.commit_head"));
      if (!names || !server.value) return;
      try {
        const qs = branch.value ? "?branch=" + enc(branch.value) : "";
        const commits = await KQI.api("GET", repoPath(names) + "/commits" + qs);
        if (mine !== generation) return;
        setOptions(commit, (commits || []).map((c) => ({
          value: c.commitId,
          label: c.commitId.slice(0, 10) + " " + String(c.message || c.comment || "").split("\n")[0].slice(0, 60),
        })), t("jobs.commit_head"));
      } catch (err) {
        if (mine !== generation) return;
        warn("jobs.commits_failed", err);
      }
      if (wantedCommit) selectValue(commit, wantedCommit);
    }

    server.addEventListener("change", () => {
      branchesOf = null;
      loadRepos();
      loadBranches();
    });
    repo.addEventListener("change", () => loadBranches());
    // a repository picked from the list loads its branches at once (not only when the field is left)
    repo.addEventListener("input", () => { if (repoNames.has(repo.value.trim())) loadBranches(); });
    branch.addEventListener("change", () => loadCommits());

    const ready = loadRepos();
    return {
      ready: ready,
      async set(git) {
        if (!git || !git.repository) return;
        await ready;
        if (git.gitId && String(git.gitId) !== server.value) {
          selectValue(server, git.gitId);
          await loadRepos();
        }
        repo.value = (git.owner ? git.owner + "/" : "") + git.repository;
        await loadBranches(git.branch || "", git.commitId || null);
      },
      value() {
        const names = split();
        if (!names) return null;
        return { gitId: numberOrNull(server.value), owner: names.owner, repository: names.repository,
          branch: branch.value || null, commitId: commit.value || null };
      },
      check() {
        const value = repo.value.trim();
        if ((required || value) && !split()) {
          markInvalid(repo, t("jobs.repository_invalid"));
          return false;
        }
        return true;
      },
    };
  }

  /** The container image inputs: registry (select), image, tag. */
  function imagePicker(prefix, registries, optionalImage) {
    const registry = KQI.$("#" + prefix + "-registry");
    const def = registries.find((r) => r.isDefault) || registries[0];
    setOptions(registry, registries.map((r) => ({ value: r.id, label: r.name })), null, def ? def.id : null);
    const image = KQI.$("#" + prefix + "-image");
    const tag = KQI.$("#" + prefix + "-tag");
    return {
      set(value) {
        if (!value) return;
        if (value.registryId) selectValue(registry, value.registryId, value.registryName);
        image.value = value.image || "";
        tag.value = value.tag || "";
      },
      value() {
        if (optionalImage && !image.value.trim()) return null;
        return { registryId: numberOrNull(registry.value), image: image.value.trim(), tag: tag.value.trim() };
      },
    };
  }

  function quotaText(quota) {
    if (!quota) return "";
    if (!quota.cpu && !quota.memory && !quota.gpu) return t("jobs.quota_none");
    const part = (v) => (v ? String(v) : t("common.unlimited"));
    return t("jobs.quota", { cpu: part(quota.cpu), memory: part(quota.memory), gpu: part(quota.gpu) });
  }

  function partitionOptions(partitions) {
    return (partitions || []).map((p) => (typeof p === "string" ? { value: p, label: p }
      : { value: p.name || p.partition, label: p.name || p.partition }));
  }

  // ------------------------------------------------------- container files
  /** A browser of a job's or notebook's /kqi/output (container-files), folders clickable. */
  function containerFiles(base, prefix) {
    const rows = KQI.$("#" + prefix + "-cfile-rows");
    const pathLabel = KQI.$("#" + prefix + "-cfiles-path");
    const messages = prefix + "-cfiles-messages";
    const state = { path: "/", loading: false };
    async function load(path) {
      if (path !== undefined) state.path = path;
      if (state.loading) return;
      state.loading = true;
      try {
        const result = await KQI.api("GET", base + "/container-files?withUrl=true&path=" + enc(state.path));
        pathLabel.textContent = state.path;
        KQI.clear(rows);
        KQI.show(messages, "info", "");
        if (state.path !== "/") {
          const up = state.path.replace(/\/[^/]+\/?$/, "") || "/";
          rows.appendChild(el("tr", {}, el("td", { colspan: "3" },
            el("a", { href: "#", class: "kqi-cfile-up", text: "..", onclick: (e) => { e.preventDefault(); load(up); } }))));
        }
        for (const dir of result.dirs || []) {
          rows.appendChild(el("tr", { class: "kqi-cfile-dir", dataset: { name: dir.dirName } },
            el("td", {}, el("a", { href: "#", text: dir.dirName + "/",
              onclick: (e) => { e.preventDefault(); load(dir.dirPath); } })),
            el("td"), el("td")));
        }
        for (const file of result.files || []) {
          rows.appendChild(el("tr", { class: "kqi-cfile", dataset: { name: file.fileName } },
            el("td", {}, file.url ? el("a", { href: file.url, download: file.fileName, text: file.fileName })
              : el("span", { text: file.fileName })),
            el("td", { class: "text-end text-nowrap", text: formatSize(file.size) }),
            el("td", { class: "text-nowrap", text: formatDate(file.lastModified) })));
        }
        if (!(result.dirs || []).length && !(result.files || []).length) {
          rows.appendChild(el("tr", {}, el("td", { colspan: "3", class: "text-body-secondary", text: t("jobs.no_files") })));
        }
        if (result.exceeded) KQI.show(messages, "warning", t("jobs.too_many_files"));
      } catch (err) {
        KQI.showError(messages, err);
      } finally {
        state.loading = false;
      }
    }
    KQI.$("#" + prefix + "-cfiles-refresh").addEventListener("click", () => load());
    return { load: load };
  }

  // =================================================== training and inference
  function jobPage(kind) {
    return async function (account) {
      if (noTenant(account)) return;
      if (query.has("id")) return jobDetail(kind, Number(query.get("id")));
      if (query.has("new") || query.has("copy") || query.has("training")) return jobForm(kind);
      return jobList(kind);
    };
  }
  KQI.pages.training = jobPage(KINDS.training);
  KQI.pages.inference = jobPage(KINDS.inference);

  // ------------------------------------------------------------------ list
  async function jobList(kind) {
    showView("list");
    const form = KQI.$("#job-filters");
    const rows = KQI.$("#job-rows");
    const state = { filters: new URLSearchParams(), timer: null };
    const columns = kind.name === "inference" ? 10 : 9;

    function readFilters() {
      const filters = new URLSearchParams();
      for (const [key, value] of new FormData(form)) {
        if (String(value).trim()) filters.append(key, String(value).trim());
      }
      return filters;
    }

    // filters given in the address (e.g. ?dataSet=name from a locked dataset's page)
    for (const field of form.elements) {
      if (field.name && query.has(field.name)) field.value = query.get(field.name);
    }
    state.filters = readFilters();

    const list = KQI.pagedList({
      nav: KQI.$("#job-pager"),
      perPage: 20,
      load: async (paging) => {
        clearTimeout(state.timer);
        const params = Object.fromEntries(Array.from(state.filters.keys()).map((k) => [k, state.filters.getAll(k)]));
        let result;
        try {
          result = await KQI.fetchPage(kind.base, { ...params, ...paging });
        } catch (err) {
          KQI.showError("job-list-messages", err);
          return null;
        }
        KQI.show("job-list-messages", "info", "");
        KQI.clear(rows);
        if (!result.items.length) {
          rows.appendChild(el("tr", {}, el("td", { colspan: String(columns), class: "text-body-secondary",
            text: state.filters.toString() ? t("jobs.no_match") : t(kind.name + ".none") })));
        }
        for (const job of result.items) rows.appendChild(jobRow(kind, job));
        if (result.items.some((j) => JOB_ACTIVE.indexOf(j.status) >= 0)) state.timer = setTimeout(() => list.reload(), 3000);
        return result.total;
      },
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.filters = readFilters();
      list.reset();
    });
    KQI.$("#job-filter-clear").addEventListener("click", () => {
      form.reset();
      state.filters = new URLSearchParams();
      list.reset();
    });
    await list.reload();
  }

  function jobRow(kind, job) {
    const href = screenUrl(kind.screen, { id: job.id });
    const tags = el("td", {}, (job.tags || []).map((tag) => el("span", { class: "badge text-bg-light border me-1", text: tag })));
    return el("tr", { dataset: { jobId: String(job.id), status: job.status } },
      el("td", {}, el("a", { href: href, text: String(job.id) })),
      el("td", {}, el("a", { href: href, class: "kqi-job-name", text: job.name }),
        job.favorite ? el("span", { class: "ms-1 text-warning", title: t("jobs.favorite"), text: "★" }) : null),
      el("td", {}, statusBadge(job.status)),
      kind.name === "inference"
        ? el("td", { class: "kqi-output-value font-monospace", text: orNone(job.outputValue) }) : null,
      el("td", { text: job.dataSet ? job.dataSet.id + ":" + job.dataSet.name : t("common.none") }),
      el("td", { class: "small", text: (job.parentFullNameList || []).join(", ") || t("common.none") }),
      tags,
      el("td", { text: orNone(job.createdBy) }),
      el("td", { class: "text-nowrap", text: formatDate(job.createdAt) }),
      el("td", { class: "kqi-memo", text: orNone(job.memo) }));
  }

  // ------------------------------------------------------------------ form
  async function jobForm(kind) {
    showView("form");
    const form = KQI.$("#job-form");
    const title = KQI.$("#job-form-title");
    const copyId = query.get("copy");
    const trainingId = kind.name === "inference" ? query.get("training") : null;
    if (copyId) title.textContent = title.dataset.copy;
    else if (trainingId) title.textContent = title.dataset.fromTraining;
    KQI.$("#job-form-cancel").href = copyId ? screenUrl(kind.screen, { id: copyId })
      : trainingId ? screenUrl("training", { id: trainingId }) : screenUrl(kind.screen);

    const datasetChoice = KQI.remoteSelect(KQI.$("#job-dataset"), {
      path: "/datasets", label: (d) => d.id + ":" + d.name, empty: t("jobs.choose"),
    });
    const parentPicker = mountPicker(KQI.$("#job-parents"), "/training");
    const inferencePicker = mountPicker(KQI.$("#job-inferences"), "/inferences");
    const [, registries, gits, partitions, quota, , , source] = await Promise.all([
      datasetChoice.ready,
      KQI.api("GET", "/tenant/registry/endpoints"),
      KQI.api("GET", "/tenant/git/endpoints"),
      optional("GET /tenant/partitions", "/tenant/partitions", []),
      optional("GET /tenant/quota", "/tenant/quota", null),
      parentPicker.ready,
      inferencePicker.ready,
      copyId ? KQI.api("GET", kind.base + "/" + enc(copyId))
        : trainingId ? KQI.api("GET", "/training/" + enc(trainingId)) : Promise.resolve(null),
    ]);

    const dataset = KQI.$("#job-dataset");
    const partition = KQI.$("#job-partition");
    setOptions(partition, partitionOptions(partitions), t("jobs.any_partition"));
    KQI.$("#job-quota").textContent = quotaText(quota);
    const image = imagePicker("job", registries, false);
    const model = modelPicker("job", gits, true);
    const env = envEditor("job-env", "job-env-add");
    const parents = KQI.$("#job-parents");
    const inferenceBox = KQI.$("#job-inferences");

    function fill(src, asCopy) {
      KQI.$("#job-name").value = src.name || "";
      if (asCopy) {
        parentPicker.set((src.parents || []).map((p) => p.id), (src.parents || []).map((p) => p.name));
        inferencePicker.set(src.inferenceIds || []);
        KQI.$("#job-memo").value = src.memo || "";
      } else {
        parentPicker.set([src.id], [src.name]);  // an inference from this training
      }
      return fillSettings(src);
    }

    /** The settings a parent or a copied job passes on (not its name, parents or memo). */
    function fillSettings(src) {
      if (src.dataSet) selectValue(dataset, src.dataSet.id, src.dataSet.id + ":" + src.dataSet.name);
      KQI.$(src.localDataSet ? "#job-method-copy" : "#job-method-symlink").checked = true;
      image.set(src.containerImage);
      KQI.$("#job-entry").value = src.entryPoint || "";
      KQI.$("#job-cpu").value = src.cpu;
      KQI.$("#job-memory").value = src.memory;
      KQI.$("#job-gpu").value = src.gpu;
      env.set(src.options || []);
      KQI.$("#job-ports").value = (src.ports || []).join(", ");
      KQI.$("#job-tags").value = (src.tags || []).join(", ");
      KQI.$("#job-zip").checked = src.zip !== false;
      selectValue(partition, src.partition || "");
      return model.set(src.gitModel);
    }

    // the guide: choosing a parent copies its settings, to be changed where needed
    parents.addEventListener("change", async (event) => {
      const box = event.target;
      if (!box.checked || checkedIds(parents).length !== 1) return;
      try {
        const parent = await KQI.api("GET", "/training/" + enc(box.value));
        await fillSettings(parent);
        KQI.show("job-parent-note", "info", t("jobs.settings_copied", { name: parent.id + ":" + parent.name }));
      } catch (err) {
        KQI.showError("job-parent-note", err);
      }
    });

    // ---- the four steps
    const fieldsets = KQI.$$("fieldset[data-step]", form);
    const tabs = KQI.$$("#job-steps button[data-step]");
    let step = 1;
    function goTo(n) {
      step = n;
      fieldsets.forEach((fs) => fs.classList.toggle("d-none", Number(fs.dataset.step) !== n));
      tabs.forEach((tab) => {
        const active = Number(tab.dataset.step) === n;
        tab.classList.toggle("active", active);
        if (active) tab.setAttribute("aria-current", "step");
        else tab.removeAttribute("aria-current");
      });
      KQI.$("#job-back").disabled = n === 1;
      KQI.$("#job-next").classList.toggle("d-none", n === fieldsets.length);
      KQI.$("#job-submit").classList.toggle("d-none", n !== fieldsets.length);
    }
    function checkStep(n) {
      const fs = fieldsets[n - 1];
      let ok = checkInputs(fs);
      if (n === 2) ok = model.check() && ok;
      if (n === 4) {
        const ports = KQI.$("#job-ports");
        if (!/^[\d\s,]*$/.test(ports.value)) {
          markInvalid(ports, t("jobs.ports_invalid"));
          ok = false;
        }
      }
      return ok;
    }
    function firstBadStep(upTo) {
      for (let n = 1; n <= upTo; n++) if (!checkStep(n)) return n;
      return 0;
    }
    tabs.forEach((tab) => tab.addEventListener("click", () => {
      const n = Number(tab.dataset.step);
      const bad = n > step ? firstBadStep(n - 1) : 0;
      goTo(bad || n);
    }));
    KQI.$("#job-back").addEventListener("click", () => goTo(Math.max(1, step - 1)));
    KQI.$("#job-next").addEventListener("click", () => {
      if (checkStep(step)) goTo(step + 1);
    });
    goTo(1);

    if (source) {
      await fill(source, Boolean(copyId));
      if (!copyId) {
        KQI.show("job-parent-note", "info", t("jobs.settings_copied", { name: source.id + ":" + source.name }));
      }
    }

    function body() {
      const out = {
        name: KQI.$("#job-name").value.trim(),
        parentIds: checkedIds(parents),
        dataSetId: numberOrNull(dataset.value),
        localDataSet: KQI.$("#job-method-copy").checked,
        containerImage: image.value(),
        gitModel: model.value(),
        entryPoint: KQI.$("#job-entry").value,
        cpu: numberOrNull(KQI.$("#job-cpu").value),
        memory: numberOrNull(KQI.$("#job-memory").value),
        gpu: numberOrNull(KQI.$("#job-gpu").value),
        options: env.value(),
        ports: (KQI.$("#job-ports").value.match(/\d+/g) || []).map(Number),
        tags: splitList(KQI.$("#job-tags").value),
        zip: KQI.$("#job-zip").checked,
        partition: partition.value || null,
        memo: KQI.$("#job-memo").value.trim() || null,
      };
      if (inferenceBox) out.inferenceIds = checkedIds(inferenceBox);
      return out;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      const bad = firstBadStep(fieldsets.length);
      if (bad) {
        goTo(bad);
        KQI.show("job-form-messages", "danger", t("jobs.form_invalid"));
        return;
      }
      await KQI.busy(KQI.$("#job-submit"), t("jobs.submitting"), async () => {
        try {
          const created = await KQI.api("POST", kind.base + "/run", body());
          window.location.href = screenUrl(kind.screen, { id: created.id });
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("job-form-messages", err);
          const invalid = KQI.$(".is-invalid", form);
          const fs = invalid && invalid.closest("fieldset[data-step]");
          if (fs) goTo(Number(fs.dataset.step));
        }
      });
    });
    document.body.setAttribute("data-kqi-form-ready", "true");
  }

  // --------------------------------------------------------------- details
  async function jobDetail(kind, id) {
    showView("detail");
    const base = kind.base + "/" + enc(id);
    const cfiles = containerFiles(base, "job");
    const state = { job: null, timer: null, logStarted: false, editFilled: false, ticks: 0 };

    KQI.$("#job-copy").href = screenUrl(kind.screen, { copy: id });
    if (kind.name === "training" && KQI.$("#tb-card") && KQI.has("GET /training/{}/tensorboard")) {
      tensorBoard(base, id);
    }
    const infer = KQI.$("#job-infer");
    if (infer) infer.href = screenUrl("inference", { training: id });

    KQI.$("#job-halt").addEventListener("click", async () => {
      const job = state.job;
      if (!window.confirm(t("jobs.confirm_halt", { kind: t(kind.kindWord), name: job.id + ":" + job.name }))) return;
      await KQI.busy(KQI.$("#job-halt"), null, async () => {
        try {
          await KQI.api("POST", base + "/halt");
          KQI.show("job-detail-messages", "success", t("jobs.halted", { name: job.id + ":" + job.name }));
          await refresh();
        } catch (err) {
          KQI.showError("job-detail-messages", err);
        }
      });
    });
    KQI.$("#job-delete").addEventListener("click", async () => {
      const job = state.job;
      if (!window.confirm(t("common.confirm_delete", { name: job.id + ":" + job.name }))) return;
      await KQI.busy(KQI.$("#job-delete"), null, async () => {
        try {
          await KQI.api("DELETE", base);
          window.location.href = screenUrl(kind.screen);
        } catch (err) {
          KQI.showError("job-detail-messages", err);
        }
      });
    });
    KQI.$("#job-edit").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = KQI.$("#job-edit");
      clearFieldErrors(form);
      if (!checkInputs(form)) return;
      await KQI.busy(KQI.$("#job-edit-save"), t("common.saving"), async () => {
        try {
          await KQI.api("PUT", base, {
            name: KQI.$("#job-edit-name").value.trim(),
            memo: KQI.$("#job-edit-memo").value,
            tags: splitList(KQI.$("#job-edit-tags").value),
            favorite: KQI.$("#job-edit-favorite").checked,
          });
          KQI.show("job-edit-messages", "success", t("common.saved"));
          state.editFilled = false;
          await refresh();
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("job-edit-messages", err);
        }
      });
    });

    async function refresh() {
      clearTimeout(state.timer);
      let job;
      try {
        job = await KQI.api("GET", base);
      } catch (err) {
        KQI.showError("job-detail-messages", err);
        if (err.status === 404) {
          KQI.$$("#kqi-view-detail .card").forEach((c) => c.classList.add("d-none"));
          return;
        }
        state.timer = setTimeout(refresh, 5000);
        return;
      }
      const before = state.job;
      state.job = job;
      if (kind.name === "inference" && !JOB_ACTIVE.includes(job.status)) {
        // the output value is a column of the list: ask the list for this one
        const rows = await optional("GET /inferences", "/inferences?id=" + enc(id), []);
        job.outputValue = rows.length ? rows[0].outputValue : null;
      }
      renderJob(kind, job);
      if (!state.editFilled) {
        state.editFilled = true;
        KQI.$("#job-edit-name").value = job.name;
        KQI.$("#job-edit-memo").value = job.memo || "";
        KQI.$("#job-edit-tags").value = (job.tags || []).join(", ");
        KQI.$("#job-edit-favorite").checked = !!job.favorite;
      }
      if (!state.logStarted) {
        state.logStarted = true;
        followLog(kind, id);
      }
      const active = JOB_ACTIVE.includes(job.status);
      const ended = before && JOB_ACTIVE.includes(before.status) && !active;
      if (!before || ended) {
        loadStoredFiles(base);
        cfiles.load();
      } else if (job.status === "Running" && state.ticks++ % 2 === 0) {
        cfiles.load();  // the output while it runs
      }
      if (active) state.timer = setTimeout(refresh, 1500);
    }
    await refresh();
  }

  /** The TensorBoard card of a training: its state, time left, open and stop, the start form. */
  function tensorBoard(base, id) {
    const card = KQI.$("#tb-card");
    const path = base + "/tensorboard";
    const state = { board: null, timer: null, tick: null, listed: false };
    card.classList.remove("d-none");

    async function listTrainings(chosen) {
      const picker = mountPicker(KQI.$("#tb-trainings"), "/training", { exclude: id, anyStatus: true });
      await picker.ready;
      picker.set(chosen);
    }

    function render(before) {
      const board = state.board;
      if (before && before.status !== "Running" && board.status === "Running") KQI.clear(KQI.$("#tb-messages"));
      const on = board.status !== "None";
      const label = t("tensorboard.state_" + board.status);
      KQI.append(KQI.clear(KQI.$("#tb-state")), describe([
        ["tensorboard.state", el("span", { class: "kqi-tb-status", dataset: { status: board.status },
          text: label.startsWith("tensorboard.") ? board.status : label })],
        ["tensorboard.remaining", on ? el("span", { class: "kqi-tb-remaining",
          text: formatSeconds(board.remainingTime) }) : undefined],
        ["tensorboard.mounted", on ? (board.mountedTrainingHistoryIds || []).map((i, n) => [n ? ", " : null,
          el("a", { href: screenUrl("training", { id: i }), text: String(i) })]) : undefined],
      ]));
      const open = KQI.$("#tb-open");
      open.classList.toggle("d-none", board.status !== "Running");
      if (board.url) open.href = board.url;
      KQI.$("#tb-stop").classList.toggle("d-none", !on);
      KQI.$("#tb-start").textContent = t(on ? "tensorboard.restart" : "tensorboard.start");
    }

    async function refresh() {
      clearTimeout(state.timer);
      const before = state.board;
      try {
        state.board = await KQI.api("GET", path);
      } catch (err) {
        KQI.showError("tb-messages", err);
        state.timer = setTimeout(refresh, 10000);
        return;
      }
      if (!state.listed) {
        state.listed = true;
        await listTrainings(state.board.mountedTrainingHistoryIds || []);
      }
      render(before);
      state.timer = setTimeout(refresh, state.board.status === "Running" || state.board.status === "None" ? 10000 : 1500);
    }

    // the time left counts down between refreshes
    state.tick = setInterval(() => {
      const board = state.board;
      if (!board || board.status === "None" || board.remainingTime === null) return;
      board.remainingTime = Math.max(0, board.remainingTime - 1);
      const shown = KQI.$(".kqi-tb-remaining", card);
      if (shown) shown.textContent = formatSeconds(board.remainingTime);
      if (board.remainingTime === 0) refresh();
    }, 1000);

    KQI.$("#tb-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      await KQI.busy(KQI.$("#tb-start"), null, async () => {
        try {
          state.board = await KQI.api("PUT", path, {
            expiresIn: Number(KQI.$("#tb-expires").value),
            selectedHistoryIds: checkedIds(KQI.$("#tb-trainings")),
          });
          KQI.show("tb-messages", "success", t("tensorboard.started"));
          render();
          state.timer = setTimeout(refresh, 1000);
        } catch (err) {
          KQI.showError("tb-messages", err);
        }
      });
    });
    KQI.$("#tb-stop").addEventListener("click", async () => {
      if (!window.confirm(t("tensorboard.confirm_stop"))) return;
      await KQI.busy(KQI.$("#tb-stop"), null, async () => {
        try {
          await KQI.api("DELETE", path);
          KQI.show("tb-messages", "success", t("tensorboard.stopped"));
          await refresh();
        } catch (err) {
          KQI.showError("tb-messages", err);
        }
      });
    });
    refresh();
  }

  function renderJob(kind, job) {
    KQI.$("#job-title").textContent = job.id + ":" + job.name;
    document.title = job.id + ":" + job.name + " - " + t(kind.name + ".title");
    KQI.append(KQI.clear(KQI.$("#job-status")), statusBadge(job.status));
    const active = JOB_ACTIVE.includes(job.status);
    KQI.$("#job-halt").classList.toggle("d-none", !active);
    if (window.KQIShell) {  // the web shell (shell.js): its button while it runs, its sessions for tenant admins
      window.KQIShell.show({ slot: KQI.$("#job-halt").parentNode, after: KQI.$("#job-detail-messages"),
        base: kind.base + "/" + job.id, jobId: job.id, kind: kind.name, running: job.status === "Running" });
    }
    KQI.$("#job-delete").classList.toggle("d-none", active);
    const infer = KQI.$("#job-infer");
    if (infer) infer.classList.toggle("d-none", job.status === "Queued" || !KQI.has("POST /inferences/run"));

    const image = job.containerImage || {};
    const git = job.gitModel || {};
    const parentLinks = (job.parents || []).map((p, i) => [i ? ", " : null,
      el("a", { href: screenUrl("training", { id: p.id }), text: p.id + ":" + p.name })]);
    const inferenceLinks = (job.inferenceIds || []).map((p, i) => [i ? ", " : null,
      el("a", { href: screenUrl("inference", { id: p }), text: String(p) })]);
    const env = (job.options || []).map((o) => el("div", { class: "font-monospace small kqi-env", text: o.key + "=" + o.value }));
    KQI.append(KQI.clear(KQI.$("#job-info")), describe([
      ["common.id", String(job.id)],
      [kind.name + ".name", job.name],
      ["inference.container_name", kind.name === "inference" ? el("code", { text: job.containerName || "" }) : undefined],
      ["jobs.parents_to_mount", parentLinks.length ? parentLinks : null],
      ["jobs.inferences_to_mount", kind.name === "inference" ? (inferenceLinks.length ? inferenceLinks : null) : undefined],
      ["jobs.dataset", job.dataSet ? job.dataSet.id + ":" + job.dataSet.name : null],
      ["jobs.dataset_method", t(job.localDataSet ? "jobs.method_copy" : "jobs.method_symlink")],
      ["jobs.image", el("code", { text: image.url || (image.image + ":" + image.tag) })],
      ["jobs.repository", git.owner ? el("span", {}, el("code", { text: git.owner + "/" + git.repository }),
        git.url ? el("div", { class: "small text-body-secondary kqi-url", text: git.url }) : null) : null],
      ["jobs.branch", git.branch],
      ["jobs.commit", git.commitId ? el("code", { class: "kqi-commit", text: git.commitId }) : null],
      ["jobs.command", el("pre", { class: "mb-0 small kqi-command", text: job.entryPoint || "" })],
      ["jobs.resources", t("jobs.resources_value", { cpu: job.cpu, memory: job.memory, gpu: job.gpu })],
      ["jobs.partition", job.partition],
      ["jobs.env", env.length ? env : null],
      ["jobs.ports", (job.ports || []).join(", ")],
      ["jobs.tags", (job.tags || []).map((tag) => el("span", { class: "badge text-bg-light border me-1", text: tag }))],
      ["jobs.zip", t(job.zip ? "common.yes" : "common.no")],
      ["common.memo", job.memo],
      ["jobs.started_by", job.createdBy],
      ["common.created_at", formatDate(job.createdAt)],
    ]));
    KQI.append(KQI.clear(KQI.$("#job-state")), describe([
      ["jobs.status", statusBadge(job.status)],
      ["inference.output_value", kind.name === "inference" && !active
        ? el("span", { class: "font-monospace kqi-output-value", text: orNone(job.outputValue) }) : undefined],
      ["jobs.queue_position", job.status === "Queued" ? orNone(job.queuePosition) : undefined],
      ["jobs.wait_reason", job.status === "Queued" ? job.waitReason : undefined],
      ["available.wait_advice", job.status === "Queued" && job.waitAdvice ? job.waitAdvice : undefined],
      ["jobs.open_ports", job.status === "Running" && (job.nodePorts || []).length
        ? (job.nodePorts || []).map((p) => el("a", { class: "kqi-port-link me-3", href: p.url, target: "_blank",
          rel: "noopener", dataset: { port: p.key }, text: t("jobs.open_port", { port: p.key }) }))
        : undefined],
      ["jobs.condition", job.conditionNote],
      ["jobs.exit_code", job.exitCode === null || job.exitCode === undefined ? null : String(job.exitCode)],
      ["jobs.queued_at", formatDate(job.queuedAt)],
      ["jobs.started_at", formatDate(job.startedAt)],
      ["jobs.completed_at", formatDate(job.completedAt)],
      ["jobs.waiting_time", job.waitingTime],
      ["jobs.execution_time", job.executionTime],
      ["jobs.node", job.node],
    ]));
  }

  /** The stored files (log, output.zip, attached files), with download links. */
  async function loadStoredFiles(base) {
    const rows = KQI.$("#job-file-rows");
    let files;
    try {
      files = await KQI.api("GET", base + "/files?withUrl=true");
    } catch (err) {
      KQI.showError("job-files-messages", err);
      return;
    }
    KQI.clear(rows);
    if (!files.length) {
      rows.appendChild(el("tr", {}, el("td", { colspan: "3", class: "text-body-secondary", text: t("jobs.no_stored_files") })));
    }
    const logLink = KQI.$("#job-log-download");
    for (const file of files) {
      rows.appendChild(el("tr", { class: "kqi-file", dataset: { fileName: file.fileName } },
        el("td", {}, el("span", { text: file.fileName }),
          file.isLocked ? el("span", { class: "badge text-bg-light border ms-1", text: t("jobs.platform_file") }) : null),
        el("td", { class: "text-end text-nowrap", text: formatSize(file.size) }),
        el("td", { class: "text-end" }, file.url ? el("a", {
          class: "btn btn-sm btn-outline-primary kqi-download", href: file.url, download: file.fileName,
          dataset: { fileName: file.fileName }, text: t("jobs.download"),
        }) : null)));
      if (file.isLocked && /_stdout_stderr_\d+\.log$/.test(file.fileName) && file.url) {
        logLink.href = file.url;
        logLink.setAttribute("download", file.fileName);
        logLink.classList.remove("d-none");
      }
    }
  }

  /** The log, followed while the job runs (GET .../log?follow=true streams new lines). */
  async function followLog(kind, id) {
    const pre = KQI.$("#job-log");
    const label = KQI.$("#job-log-state");
    const decoder = new TextDecoder();
    let offset = 0;
    let received = false;
    pre.textContent = t("jobs.log_empty");
    pre.classList.add("kqi-log-empty");
    label.textContent = t("jobs.log_following");
    pre.setAttribute("data-following", "true");

    function append(text) {
      if (!text) return;
      if (!received) {
        received = true;
        pre.textContent = "";
        pre.classList.remove("kqi-log-empty");
      }
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
      pre.appendChild(document.createTextNode(text));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }

    for (;;) {
      let response;
      try {
        response = await fetch(KQI.data.apiBase + kind.base + "/" + enc(id) + "/log?follow=true&offset=" + offset, {
          headers: { Accept: "text/plain", "X-XSRFToken": KQI.data.xsrf }, credentials: "same-origin",
        });
      } catch (err) {
        response = null;
      }
      if (response && !response.ok) {
        let detail = null;
        try {
          detail = (await response.json()).detail;
        } catch (e) {
          detail = null;
        }
        KQI.show("job-detail-messages", "danger", detail || t("common.error_status", { status: response.status }));
        break;
      }
      if (response) {
        const reader = response.body.getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            offset += value.byteLength;
            append(decoder.decode(value, { stream: true }));
          }
        } catch (err) {
          // the connection dropped: ask again from where we are
        }
      }
      // the stream ends with the job, or when the connection drops: which one?
      let job = null;
      try {
        job = await KQI.api("GET", kind.base + "/" + enc(id));
      } catch (err) {
        job = null;
      }
      if (job && !JOB_ACTIVE.includes(job.status)) break;
      await sleep(1000);
    }
    append(decoder.decode());
    label.textContent = t("jobs.log_ended");
    pre.setAttribute("data-following", "false");
  }

  // =============================================================== notebooks
  KQI.pages.notebooks = async function (account) {
    if (noTenant(account)) return;
    if (query.has("id")) return notebookDetail(Number(query.get("id")));
    if (query.has("new")) return notebookForm();
    return notebookList();
  };

  /** The actions a notebook offers in its state: open, stop, re-run, delete. */
  function notebookActions(nb, done, messages, compact) {
    const size = compact ? " btn-sm" : "";
    const out = [];
    if (openable(nb)) {
      out.push(el("a", { class: "btn btn-jupyter kqi-open-notebook" + size, href: nb.url, target: "_blank",
        rel: "noopener", text: t("notebooks.open") }));
    }
    if (NOTEBOOK_ACTIVE.includes(nb.status) && KQI.has("POST /notebook/{}/halt")) {
      const stop = el("button", { type: "button", class: "btn btn-outline-danger kqi-stop-notebook" + size, text: t("notebooks.stop") });
      stop.addEventListener("click", async () => {
        if (!window.confirm(t("notebooks.confirm_stop", { name: nb.id + ":" + nb.name }))) return;
        await KQI.busy(stop, t("notebooks.stopping"), async () => {
          try {
            await KQI.api("POST", "/notebook/" + enc(nb.id) + "/halt");
            KQI.show(messages, "success", t("notebooks.stopped", { name: nb.id + ":" + nb.name }));
          } catch (err) {
            KQI.showError(messages, err);
          }
        });
        await done();
      });
      out.push(stop);
    }
    if (!NOTEBOOK_ACTIVE.includes(nb.status) && KQI.has("POST /notebook/{}/rerun")) {
      const rerun = el("button", { type: "button", class: "btn btn-outline-primary kqi-rerun-notebook" + size, text: t("notebooks.rerun") });
      rerun.addEventListener("click", async () => {
        await KQI.busy(rerun, t("notebooks.starting"), async () => {
          try {
            await KQI.api("POST", "/notebook/" + enc(nb.id) + "/rerun", {});
            KQI.show(messages, "success", t("notebooks.restarted", { name: nb.id + ":" + nb.name }));
          } catch (err) {
            KQI.showError(messages, err);
          }
        });
        await done();
      });
      out.push(rerun);
    }
    if (!NOTEBOOK_ACTIVE.includes(nb.status) && KQI.has("DELETE /notebook/{}")) {
      const remove = el("button", { type: "button", class: "btn btn-outline-danger kqi-delete-notebook" + size, text: t("common.delete") });
      remove.addEventListener("click", async () => {
        if (!window.confirm(t("notebooks.confirm_delete", { name: nb.id + ":" + nb.name }))) return;
        await KQI.busy(remove, null, async () => {
          try {
            await KQI.api("DELETE", "/notebook/" + enc(nb.id));
            KQI.show(messages, "success", t("common.deleted", { name: nb.id + ":" + nb.name }));
          } catch (err) {
            KQI.showError(messages, err);
          }
        });
        await done(true);
      });
      out.push(remove);
    }
    return out;
  }

  /** "id:name" of the datasets, trainings and inferences a page of notebooks names: one filtered
   * list request per id not seen before (never the whole lists). */
  const nameCache = { "/datasets": new Map(), "/training": new Map(), "/inferences": new Map() };
  async function lookUpNames(path, ids) {
    const cache = nameCache[path];
    const wanted = Array.from(new Set(ids.filter((id) => id !== null && id !== undefined).map(Number)))
      .filter((id) => !cache.has(id));
    await Promise.all(wanted.map(async (id) => {
      try {
        const page = await KQI.api("GET", path + "?id=" + enc(id) + "&perPage=1");
        const item = (page || [])[0];
        cache.set(id, item ? item.id + ":" + item.name : String(id));
      } catch (err) {
        cache.set(id, String(id));
      }
    }));
    return cache;
  }

  async function notebookNames(notebooks) {
    const has = (feature) => KQI.has(feature);
    const ids = (key) => [].concat(...notebooks.map((nb) => [].concat(nb[key] === undefined ? [] : nb[key])));
    const [datasets, trainings, inferences] = await Promise.all([
      has("GET /datasets") ? lookUpNames("/datasets", ids("dataSetId")) : new Map(),
      has("GET /training") ? lookUpNames("/training", ids("parentIds")) : new Map(),
      has("GET /inferences") ? lookUpNames("/inferences", ids("inferenceIds")) : new Map(),
    ]);
    return { datasets: datasets, trainings: trainings, inferences: inferences };
  }

  function nameOf(map, id) {
    return id === null || id === undefined ? null : map.get(Number(id)) || String(id);
  }

  /** A notebook is served to its owner only (the hub refuses the others). */
  function openable(nb) {
    return nb.status === "Running" && !!nb.url && nb.createdBy === KQI.data.user;
  }

  function remaining(nb) {
    if (!NOTEBOOK_ACTIVE.includes(nb.status)) return t("common.none");
    if (!nb.expiresIn) return t("notebooks.no_lifetime");
    return formatSeconds(nb.remainingTime);
  }

  // ------------------------------------------------------------------ list
  async function notebookList() {
    showView("list");
    const rows = KQI.$("#nb-rows");
    const status = KQI.$("#nb-filter-status");
    const state = { timer: null };

    const list = KQI.pagedList({
      nav: KQI.$("#nb-pager"),
      perPage: 20,
      load: async (paging) => {
        clearTimeout(state.timer);
        let result;
        try {
          result = await KQI.fetchPage("/notebook", { status: status.value, ...paging });
        } catch (err) {
          KQI.showError("nb-list-messages", err);
          state.timer = setTimeout(() => list.reload(), 5000);
          return null;
        }
        const items = result.items;
        const names = await notebookNames(items);
        KQI.clear(rows);
        if (!items.length) {
          rows.appendChild(el("tr", {}, el("td", { colspan: "10", class: "text-body-secondary",
            text: status.value ? t("jobs.no_match") : t("notebooks.none") })));
        }
        for (const nb of items) {
          const href = screenUrl("notebooks", { id: nb.id });
          const open = openable(nb)
            ? el("a", { class: "btn btn-sm btn-jupyter kqi-open-notebook", href: nb.url, target: "_blank", rel: "noopener",
              text: t("notebooks.open") })
            : el("span", { class: "text-body-secondary small", text: nb.status === "Pending" ? t("notebooks.starting_up") : t("common.none") });
          rows.appendChild(el("tr", { dataset: { notebookId: String(nb.id), status: nb.status } },
            el("td", {}, el("a", { href: href, text: String(nb.id) })),
            el("td", {}, el("a", { href: href, class: "kqi-notebook-name", text: nb.name })),
            el("td", {}, statusBadge(nb.status),
              nb.conditionNote ? el("div", { class: "small text-body-secondary", text: nb.conditionNote }) : null),
            el("td", { class: "kqi-open-cell" }, open),
            el("td", { text: orNone(nameOf(names.datasets, nb.dataSetId)) }),
            el("td", { class: "text-nowrap small", text: t("jobs.resources_value", { cpu: nb.cpu, memory: nb.memory, gpu: nb.gpu }) }),
            el("td", { class: "text-nowrap", text: remaining(nb) }),
            el("td", { class: "text-nowrap", text: formatDate(nb.startedAt) }),
            el("td", { class: "kqi-memo", text: orNone(nb.memo) }),
            el("td", {}, el("div", { class: "d-flex flex-wrap gap-1" },
              notebookActions(nb, () => list.reload(), "nb-list-messages", true).filter((b) => !b.classList.contains("kqi-open-notebook"))))));
        }
        const pending = items.some((nb) => nb.status === "Pending");
        const running = items.some((nb) => nb.status === "Running");
        if (pending || running) state.timer = setTimeout(() => list.reload(), pending ? 2000 : 10000);
        return result.total;
      },
    });

    status.addEventListener("change", () => list.reset());
    await list.reload();
  }

  // ------------------------------------------------------------------ form
  async function notebookForm() {
    showView("form");
    const form = KQI.$("#nb-form");
    const datasetChoice = KQI.remoteSelect(KQI.$("#nb-dataset"), {
      path: "/datasets", label: (d) => d.id + ":" + d.name, empty: t("common.none"),
    });
    const [, registries, gits, partitions, quota, , , infinite] = await Promise.all([
      datasetChoice.ready,
      KQI.api("GET", "/tenant/registry/endpoints"),
      KQI.api("GET", "/tenant/git/endpoints"),
      optional("GET /tenant/partitions", "/tenant/partitions", []),
      optional("GET /tenant/quota", "/tenant/quota", null),
      mountPicker(KQI.$("#nb-parents"), "/training").ready,
      mountPicker(KQI.$("#nb-inferences"), "/inferences").ready,
      optional("GET /notebook/available-infinite-time", "/notebook/available-infinite-time", false),
    ]);
    const dataset = KQI.$("#nb-dataset");
    const partition = KQI.$("#nb-partition");
    setOptions(partition, partitionOptions(partitions), t("jobs.any_partition"));
    KQI.$("#nb-quota").textContent = quotaText(quota);
    const image = imagePicker("nb", registries, true);
    // a model is optional: the git servers start with "none" (the default server is chosen)
    const model = modelPicker("nb", [{ id: "", name: t("common.none") }].concat(gits), false);
    const env = envEditor("nb-env", "nb-env-add");

    const lifetimeOn = KQI.$("#nb-lifetime-on");
    const lifetime = KQI.$("#nb-lifetime");
    if (!infinite) {
      lifetimeOn.checked = true;
      lifetimeOn.disabled = true;
      KQI.$("#nb-lifetime-help").textContent = t("notebooks.lifetime_required");
    }
    lifetimeOn.addEventListener("change", () => { lifetime.disabled = !lifetimeOn.checked; });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      const inputsOk = checkInputs(form);
      const modelOk = model.check();
      if (!inputsOk || !modelOk) {
        KQI.show("nb-form-messages", "danger", t("jobs.form_invalid"));
        return;
      }
      const body = {
        name: KQI.$("#nb-name").value.trim(),
        cpu: numberOrNull(KQI.$("#nb-cpu").value),
        memory: numberOrNull(KQI.$("#nb-memory").value),
        gpu: numberOrNull(KQI.$("#nb-gpu").value),
        expiresIn: lifetimeOn.checked ? Math.round(Number(lifetime.value) * 3600) : 0,
        jupyterLabVersion: KQI.$("#nb-jupyterlab").value.trim() || null,
        dataSetId: numberOrNull(dataset.value),
        localDataSet: KQI.$("#nb-method-copy").checked,
        parentIds: checkedIds(KQI.$("#nb-parents")),
        inferenceIds: checkedIds(KQI.$("#nb-inferences")),
        gitModel: KQI.$("#nb-git").value ? model.value() : null,
        entryPoint: KQI.$("#nb-entry").value.trim() || null,
        options: env.value(),
        partition: partition.value || null,
        memo: KQI.$("#nb-memo").value.trim() || null,
      };
      const img = image.value();
      if (img) body.containerImage = img;
      await KQI.busy(KQI.$("#nb-submit"), t("notebooks.starting"), async () => {
        try {
          await KQI.api("POST", "/notebook/run", body);
          window.location.href = screenUrl("notebooks");
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("nb-form-messages", err);
        }
      });
    });
    document.body.setAttribute("data-kqi-form-ready", "true");
  }

  // --------------------------------------------------------------- details
  async function notebookDetail(id) {
    showView("detail");
    const base = "/notebook/" + enc(id);
    const cfiles = containerFiles(base, "nb");
    const state = { timer: null, status: null };
    async function refresh(deleted) {
      clearTimeout(state.timer);
      if (deleted === true) {
        window.location.href = screenUrl("notebooks");
        return;
      }
      let nb;
      try {
        nb = await KQI.api("GET", base);
      } catch (err) {
        KQI.showError("nb-detail-messages", err);
        if (err.status !== 404) state.timer = setTimeout(refresh, 5000);
        return;
      }
      const names = await notebookNames([nb]);
      KQI.$("#nb-title").textContent = nb.id + ":" + nb.name;
      KQI.append(KQI.clear(KQI.$("#nb-status")), statusBadge(nb.status));
      const actions = KQI.$("#nb-actions");
      KQI.$$("#nb-actions > :not(:first-child)").forEach((n) => n.remove());
      KQI.append(actions, notebookActions(nb, refresh, "nb-detail-messages", false));
      const git = nb.gitModel || {};
      KQI.append(KQI.clear(KQI.$("#nb-info")), describe([
        ["common.id", String(nb.id)],
        ["notebooks.name", nb.name],
        ["jobs.resources", t("jobs.resources_value", { cpu: nb.cpu, memory: nb.memory, gpu: nb.gpu })],
        ["notebooks.lifetime_hours", nb.expiresIn ? String(Math.round(nb.expiresIn / 36) / 100) : t("notebooks.no_lifetime")],
        ["notebooks.jupyterlab_version", nb.jupyterLabVersion],
        ["jobs.dataset", nameOf(names.datasets, nb.dataSetId)],
        ["jobs.dataset_method", nb.dataSetId === null ? undefined : t(nb.localDataSet ? "jobs.method_copy" : "jobs.method_symlink")],
        ["jobs.parents_to_mount", (nb.parentIds || []).map((p, i) => [i ? ", " : null,
          el("a", { href: screenUrl("training", { id: p }), text: nameOf(names.trainings, p) })])],
        ["jobs.inferences_to_mount", (nb.inferenceIds || []).map((p, i) => [i ? ", " : null,
          el("a", { href: screenUrl("inference", { id: p }), text: nameOf(names.inferences, p) })])],
        ["jobs.repository", git.repository ? el("code", { text: git.owner + "/" + git.repository }) : null],
        ["jobs.branch", git.branch],
        ["jobs.commit", git.commitId],
        ["notebooks.startup_command", nb.entryPoint ? el("pre", { class: "mb-0 small", text: nb.entryPoint }) : null],
        ["jobs.partition", nb.partition],
        ["common.memo", nb.memo],
        ["jobs.started_by", nb.createdBy],
        ["common.created_at", formatDate(nb.createdAt)],
      ]));
      KQI.append(KQI.clear(KQI.$("#nb-state")), describe([
        ["jobs.status", statusBadge(nb.status)],
        ["jobs.condition", nb.conditionNote],
        ["jobs.started_at", formatDate(nb.startedAt)],
        ["notebooks.expires_at", nb.expiresAt ? formatDate(nb.expiresAt) : t("notebooks.no_lifetime")],
        ["notebooks.remaining", remaining(nb)],
        ["jobs.completed_at", formatDate(nb.completedAt)],
      ]));
      if (state.status !== nb.status) cfiles.load();
      state.status = nb.status;
      if (NOTEBOOK_ACTIVE.includes(nb.status)) state.timer = setTimeout(refresh, nb.status === "Pending" ? 2000 : 10000);
    }
    await refresh();
  }
})();
