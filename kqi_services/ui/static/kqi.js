/* KQI web UI: the shared part (API calls, messages, DOM helpers, the header) and the
 * home and user-settings screens. The admin screens are in admin.js.
 *
 * Nothing here writes HTML from data: every element is made with KQI.el and every text
 * goes in through textContent, so names, URLs and server messages cannot inject markup.
 */
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("kqi-page").textContent);
  const KQI = (window.KQI = { data: data, pages: {}, account: null });

  // ---------------------------------------------------------------- messages
  KQI.t = function (key, params) {
    let text = Object.prototype.hasOwnProperty.call(data.messages, key) ? data.messages[key] : key;
    if (params) {
      for (const name of Object.keys(params)) {
        text = text.split("{" + name + "}").join(String(params[name]));
      }
    }
    return text;
  };

  /** Does the API offer this, e.g. KQI.has("DELETE /admin/users/{}")? */
  KQI.has = function (feature) {
    return data.features.indexOf(feature) >= 0;
  };

  // -------------------------------------------------------------------- DOM
  /** KQI.el("a", {class: "x", href: url, text: "label", onclick: fn}, child, ...) */
  KQI.el = function (tag, attrs) {
    const node = document.createElement(tag);
    const props = attrs || {};
    for (const key of Object.keys(props)) {
      const value = props[key];
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "checked" || key === "disabled" || key === "selected" || key === "required") node[key] = !!value;
      else if (key === "value") node.value = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (let i = 2; i < arguments.length; i++) KQI.append(node, arguments[i]);
    return node;
  };

  KQI.append = function (parent, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) child.forEach((c) => KQI.append(parent, c));
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  };

  KQI.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  KQI.$ = (selector, root) => (root || document).querySelector(selector);
  KQI.$$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  // -------------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && typeof body.detail === "string" && body.detail
        ? body.detail
        : status ? KQI.t("common.error_status", { status: status }) : KQI.t("common.error");
      super(detail);
      this.status = status;
      this.detail = detail;
      this.errors = (body && body.errors && typeof body.errors === "object") ? body.errors : {};
    }
  }
  KQI.ApiError = ApiError;

  /** Call the JSON API with the browser's session: KQI.api("PUT", "/account/webhook/slack", {...}). */
  KQI.api = async function (method, path, body) {
    return (await KQI.request(method, path, body)).payload;
  };

  /** KQI.api with the whole answer: {payload, text, headers} (for X-Total-Count, text/plain logs). */
  KQI.request = async function (method, path, body) {
    const headers = { Accept: "application/json", "X-XSRFToken": data.xsrf };
    const init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(data.apiBase + path, init);
    } catch (e) {
      throw new ApiError(0, { detail: KQI.t("common.network_error", { reason: e.message }) });
    }
    const text = await response.text();
    let payload = null;
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch (e) {
        payload = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, payload);
    return { payload: payload, text: text, headers: response.headers };
  };

  // --------------------------------------------------------------- feedback
  /** An alert box: kind is success | danger | warning | info; errors are the API's field errors. */
  KQI.alertBox = function (kind, message, errors) {
    const box = KQI.el("div", { class: "alert alert-" + kind + " kqi-alert", role: kind === "danger" ? "alert" : "status" },
      KQI.el("span", { class: "kqi-alert-text", text: message }));
    // every field message in a list, unless the message above says all there is to say
    const items = [];
    for (const field of errors ? Object.keys(errors) : []) {
      for (const msg of [].concat(errors[field])) {
        items.push(KQI.t("common.field_error", { field: field, message: msg }));
      }
    }
    if (items.length > 1 || (items.length === 1 && message.indexOf(items[0]) !== 0)) {
      box.appendChild(KQI.el("ul", { class: "mb-0 mt-1 kqi-field-errors" },
        items.map((text) => KQI.el("li", { text: text }))));
    }
    return box;
  };

  /** Show a message in a container (replacing what was there). */
  KQI.show = function (container, kind, message, errors) {
    if (typeof container === "string") container = document.getElementById(container);
    KQI.clear(container);
    if (message) container.appendChild(KQI.alertBox(kind, message, errors));
  };

  KQI.showError = function (container, err) {
    const message = err instanceof ApiError ? err.detail : (err && err.message) || String(err);
    KQI.show(container, "danger", message, err && err.errors);
  };

  /** Put the API's field errors next to the inputs that have [data-field=name] feedback. */
  KQI.markFields = function (form, errors) {
    KQI.$$(".is-invalid", form).forEach((n) => n.classList.remove("is-invalid"));
    KQI.$$(".invalid-feedback[data-field]", form).forEach((n) => KQI.clear(n));
    for (const field of Object.keys(errors || {})) {
      const feedback = KQI.$('.invalid-feedback[data-field="' + CSS.escape(field) + '"]', form);
      if (!feedback) continue;
      feedback.textContent = [].concat(errors[field]).join(" ");
      const input = feedback.parentElement.querySelector("input, select, textarea");
      if (input) input.classList.add("is-invalid");
    }
  };

  /** Run fn with the button disabled (and a busy label); returns fn's result. */
  KQI.busy = async function (button, label, fn) {
    const old = button.textContent;
    button.disabled = true;
    if (label) button.textContent = label;
    try {
      return await fn();
    } finally {
      button.disabled = false;
      button.textContent = old;
    }
  };

  KQI.roleName = function (role) {
    const key = "role." + role.name;
    const text = KQI.t(key);
    return text === key ? role.displayName || role.name : text;
  };

  KQI.isTenantAdmin = function (account) {
    const tenant = account && account.selectedTenant;
    return !!(tenant && (tenant.roles || []).some((r) => r.name === "tenant-admin"));
  };

  // ------------------------------------------------------------------ dates
  /* One formatter for every date the UI shows. Its locale is the browser's own language when
   * that is the UI's language (so en-US reads 11/30/2026, like the browser's own date inputs,
   * and en-GB reads 30/11/2026), else the UI language's usual region. */
  KQI.locale = (function () {
    const wanted = data.lang || "en";
    const langs = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language];
    for (const tag of langs) {
      if (tag && tag.toLowerCase().split("-")[0] === wanted) return tag.indexOf("-") > 0 ? tag : (wanted === "ja" ? "ja-JP" : "en-US");
    }
    return wanted === "ja" ? "ja-JP" : "en-US";
  })();

  /** The API's times are UTC, most without a zone suffix. */
  KQI.toDate = function (value) {
    if (value === null || value === undefined || value === "") return null;
    if (value instanceof Date) return isNaN(value.getTime()) ? null : value;
    let text = String(value);
    if (/^\d{4}-\d\d-\d\d[T ][\d:.]+$/.test(text)) text = text.replace(" ", "T") + "Z";
    const date = new Date(text);
    return isNaN(date.getTime()) ? null : date;
  };

  const DATE_PARTS = { year: "numeric", month: "2-digit", day: "2-digit" };
  const TIME_PARTS = { hour: "2-digit", minute: "2-digit", second: "2-digit" };

  /** "11/30/2026, 14:05:09" (en-US), "2026/11/30 14:05:09" (ja); what: "datetime" | "date" | "time". */
  KQI.formatDate = function (value, what) {
    const date = KQI.toDate(value);
    if (!date) return value ? String(value) : KQI.t("common.none");
    const parts = what === "date" ? DATE_PARTS : what === "time" ? TIME_PARTS : { ...DATE_PARTS, ...TIME_PARTS };
    return date.toLocaleString(KQI.locale, parts);
  };

  /** How a date is written in this locale, e.g. "mm/dd/yyyy" or "yyyy/mm/dd" (for hints). */
  KQI.dateFormatHint = function () {
    const parts = new Intl.DateTimeFormat(KQI.locale, DATE_PARTS).formatToParts(new Date(2026, 10, 30));
    const names = { year: "yyyy", month: "mm", day: "dd" };
    return parts.map((p) => (names[p.type] || p.value)).join("");
  };

  // ----------------------------------------------------------------- paging
  /* The one pager of every list: the API's server paging (perPage, page, withTotal=true and the
   * X-Total-Count header) with « 1 2 3 », the page size and the total. */
  KQI.PAGE_SIZES = [10, 20, 50, 100];

  function queryString(params) {
    const q = new URLSearchParams();
    for (const key of Object.keys(params || {})) {
      const value = params[key];
      if (value === undefined || value === null || value === "") continue;
      for (const v of [].concat(value)) {
        if (v !== undefined && v !== null && v !== "") q.append(key, String(v));
      }
    }
    const text = q.toString();
    return text ? "?" + text : "";
  }
  KQI.queryString = queryString;

  /** One page of a list route: {items, total}; params are the filters plus page and perPage. */
  KQI.fetchPage = async function (path, params) {
    const qs = queryString({ ...params, withTotal: "true" });
    const answer = await KQI.request("GET", path + (path.indexOf("?") >= 0 ? "&" + qs.slice(1) : qs));
    const header = answer.headers.get("X-Total-Count");
    const items = Array.isArray(answer.payload) ? answer.payload : [];
    let total = header === null || header === "" ? NaN : Number(header);
    if (!Number.isFinite(total)) {
      // a route that gives no total: what it returned, and one page more while pages come full
      const perPage = Number(params && params.perPage) || items.length;
      const before = ((Number(params && params.page) || 1) - 1) * perPage;
      total = before + items.length + (items.length && items.length >= perPage ? 1 : 0);
    }
    return { items: items, total: total };
  };

  /** page and perPage from URLSearchParams (or defaults). */
  KQI.pageState = function (params, defaults) {
    const perPage = Number(params && params.get("perPage"));
    const page = Number(params && params.get("page"));
    return {
      page: Number.isInteger(page) && page > 0 ? page : 1,
      perPage: KQI.PAGE_SIZES.indexOf(perPage) >= 0 ? perPage : ((defaults && defaults.perPage) || 20),
    };
  };

  /** Draw the pager into nav; onChange({page}) or onChange({page: 1, perPage}). */
  KQI.renderPager = function (nav, state, total, onChange) {
    KQI.clear(nav);
    nav.classList.add("kqi-pager");
    nav.setAttribute("aria-label", KQI.t("pager.label"));
    const pages = Math.max(1, Math.ceil(total / state.perPage));
    const list = KQI.el("ul", { class: "pagination pagination-sm mb-0" });
    function item(label, page, opts) {
      const disabled = opts && opts.disabled;
      const active = opts && opts.active;
      const link = KQI.el("a", {
        class: "page-link" + (opts && opts.cls ? " " + opts.cls : ""), href: "#", text: label,
        "aria-current": active ? "page" : null, "aria-label": opts && opts.aria,
        "aria-disabled": disabled ? "true" : null,
        dataset: { page: String(page) },
        onclick: (event) => {
          event.preventDefault();
          if (!disabled && !active) onChange({ page: page });
        },
      });
      list.appendChild(KQI.el("li", { class: "page-item" + (disabled ? " disabled" : "") + (active ? " active" : "") }, link));
    }
    item("«", state.page - 1, { disabled: state.page <= 1, aria: KQI.t("pager.previous"), cls: "kqi-page-prev" });
    const first = Math.max(1, Math.min(state.page - 2, pages - 4));
    const last = Math.min(pages, first + 4);
    for (let p = first; p <= last; p++) item(String(p), p, { active: p === state.page });
    item("»", state.page + 1, { disabled: state.page >= pages, aria: KQI.t("pager.next"), cls: "kqi-page-next" });
    const size = KQI.el("select", {
      class: "form-select form-select-sm w-auto kqi-page-size", "aria-label": KQI.t("pager.per_page"),
      onchange: (event) => onChange({ page: 1, perPage: Number(event.target.value) }),
    },
    KQI.PAGE_SIZES.map((n) => KQI.el("option", { value: String(n), text: KQI.t("pager.per_page_n", { count: n }), selected: n === state.perPage })));
    nav.appendChild(KQI.el("div", { class: "d-flex flex-wrap align-items-center gap-3" },
      list, size,
      KQI.el("span", { class: "small text-body-secondary kqi-total", text: KQI.t("pager.total", { count: total }) })));
  };

  /** The choices of a form from a list route, at most `limit` of them (the API's paging: the
   * first page), with {items, total, more} so a form can say that it shows only part. */
  KQI.fetchChoices = async function (path, params, limit) {
    const result = await KQI.fetchPage(path, { ...(params || {}), perPage: limit || 1000, page: 1 });
    return { items: result.items, total: result.total, more: result.total > result.items.length };
  };

  /** A <select> filled from a list route a page at a time (the route's own order, e.g. newest
   * first), with a name filter above it that asks the server: never the whole list.
   * opts: path, label(item), empty (text of a first "" option), perPage, onItems(items), lazy (no
   * load until reload()).
   * Returns {ready, reload(name), filter}. */
  KQI.remoteSelect = function (select, opts) {
    const perPage = opts.perPage || 50;
    const filter = KQI.el("input", {
      type: "search", class: "form-control form-control-sm mb-1 kqi-choice-filter", autocomplete: "off",
      id: select.id ? select.id + "-filter" : null,
      placeholder: KQI.t("choice.filter"), "aria-label": KQI.t("choice.filter"),
    });
    const note = KQI.el("div", { class: "form-text kqi-choice-more d-none" });
    select.parentNode.insertBefore(filter, select);
    select.after(note);
    let sequence = 0;
    async function load(name) {
      const mine = ++sequence;
      const result = await KQI.fetchPage(opts.path, { name: name || null, perPage: perPage, page: 1 });
      if (mine !== sequence) return;
      if (opts.onItems) opts.onItems(result.items);
      const keep = select.value;
      const keepOption = keep ? Array.from(select.options).find((o) => o.value === keep) : null;
      const keepLabel = keepOption ? keepOption.textContent : null;
      KQI.clear(select);
      if (opts.empty !== undefined && opts.empty !== null) select.appendChild(KQI.el("option", { value: "", text: opts.empty }));
      for (const item of result.items) {
        select.appendChild(KQI.el("option", { value: String(item.id), text: opts.label(item) }));
      }
      if (keep && !Array.from(select.options).some((o) => o.value === keep)) {
        select.appendChild(KQI.el("option", { value: keep, text: keepLabel || keep })); // the choice stays
      }
      select.value = keep;
      const more = result.total > result.items.length;
      note.classList.toggle("d-none", !more);
      note.textContent = more ? KQI.t("choice.more", { shown: result.items.length, total: result.total }) : "";
    }
    let timer = null;
    filter.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => load(filter.value.trim()).catch((err) => KQI.showError("kqi-alerts", err)), 250);
    });
    return { ready: opts.lazy ? Promise.resolve() : load(""), reload: load, filter: filter };
  };

  /** A list kept in memory state: KQI.pagedList({nav, perPage, load: async ({page, perPage}) => total}).
   * Returns {state, reload(), reset()}; the pager redraws after every load. */
  KQI.pagedList = function (opts) {
    const state = { page: 1, perPage: opts.perPage || 20 };
    async function reload() {
      const total = await opts.load({ page: state.page, perPage: state.perPage });
      if (total === undefined || total === null) return;
      const pages = Math.max(1, Math.ceil(total / state.perPage));
      if (state.page > pages) { // the last page emptied (deletions): show the new last one
        state.page = pages;
        return reload();
      }
      KQI.renderPager(opts.nav, state, total, (change) => {
        Object.assign(state, change);
        reload();
      });
    }
    return {
      state: state,
      reload: reload,
      reset: () => { state.page = 1; return reload(); },
    };
  };

  // ----------------------------------------------------------------- header
  async function switchTenant(tenant) {
    const label = KQI.$("#kqi-current-tenant");
    label.textContent = KQI.t("header.switching", { tenant: tenant.displayName || tenant.name });
    try {
      await KQI.api("POST", "/account/tenants/" + encodeURIComponent(tenant.id) + "/token", {});
      window.location.reload();
    } catch (err) {
      label.textContent = KQI.account && KQI.account.selectedTenant
        ? KQI.account.selectedTenant.displayName : KQI.t("header.no_tenant");
      KQI.showError("kqi-alerts", err);
    }
  }
  KQI.switchTenant = switchTenant;

  function renderHeader(account) {
    const current = account.selectedTenant;
    const label = KQI.$("#kqi-current-tenant");
    label.textContent = current ? current.displayName || current.name : KQI.t("header.no_tenant");
    if (current) label.setAttribute("data-tenant-id", current.id);
    const list = KQI.$("#kqi-tenant-list");
    KQI.$$("li.kqi-tenant-item", list).forEach((li) => li.remove());
    const adminStart = KQI.$("#kqi-tenant-admin-start", list); // the tenant administration links go last
    for (const tenant of account.tenants || []) {
      const active = current && tenant.id === current.id;
      const item = KQI.el("button", {
        type: "button",
        class: "dropdown-item d-flex align-items-center gap-2" + (active ? " active" : ""),
        "aria-current": active ? "true" : null,
        dataset: { tenantId: String(tenant.id), tenantName: tenant.name },
        onclick: () => { if (!active) switchTenant(tenant); },
      },
      KQI.el("span", { class: "kqi-tenant-display", text: tenant.displayName || tenant.name }),
      KQI.el("small", { class: active ? "" : "text-body-secondary", text: tenant.name }),
      tenant.default ? KQI.el("span", { class: "badge text-bg-secondary ms-auto", text: KQI.t("common.default") }) : null);
      list.insertBefore(KQI.el("li", { class: "kqi-tenant-item" }, item), adminStart);
    }
    if (!(account.tenants || []).length) {
      list.insertBefore(KQI.el("li", { class: "kqi-tenant-item" },
        KQI.el("span", { class: "dropdown-item-text text-body-secondary", text: KQI.t("common.no_tenant") })), adminStart);
    }
    const tenantAdmin = KQI.isTenantAdmin(account);
    KQI.$$(".kqi-tenant-admin-only").forEach((n) => n.classList.toggle("d-none", !tenantAdmin));
  }

  // ------------------------------------------------------------------- home
  KQI.pages.home = function (account) {
    const tenant = account.selectedTenant;
    const card = KQI.$("#kqi-home-tenant");
    const placeholder = KQI.$(".kqi-placeholder", card);
    if (!tenant) {
      placeholder.textContent = KQI.t("common.no_tenant");
    } else {
      placeholder.classList.add("d-none");
      KQI.$("#kqi-home-tenant-details").classList.remove("d-none");
      KQI.$("#kqi-home-tenant-display").textContent = tenant.displayName || tenant.name;
      KQI.$("#kqi-home-tenant-name").textContent = tenant.name;
      const roles = KQI.clear(KQI.$("#kqi-home-tenant-roles"));
      for (const role of tenant.roles || []) {
        roles.appendChild(KQI.el("span", { class: "badge text-bg-primary me-1", text: KQI.roleName(role) }));
      }
      if (account.isSystemAdmin) {
        roles.appendChild(KQI.el("span", { class: "badge text-bg-dark me-1", text: KQI.t("role.system-admin") }));
      }
    }
    renderTenantList(account);
  };

  function renderTenantList(account) {
    const list = KQI.clear(KQI.$("#kqi-home-tenant-list"));
    const current = account.selectedTenant;
    if (!(account.tenants || []).length) {
      list.appendChild(KQI.el("li", { class: "list-group-item text-body-secondary", text: KQI.t("common.no_tenant") }));
      return;
    }
    for (const tenant of account.tenants) {
      const isCurrent = current && current.id === tenant.id;
      const actions = KQI.el("div", { class: "ms-auto d-flex gap-1" });
      if (!isCurrent) {
        actions.appendChild(KQI.el("button", {
          type: "button", class: "btn btn-sm btn-outline-secondary kqi-switch", text: KQI.t("home.switch"),
          onclick: () => switchTenant(tenant),
        }));
      }
      if (!tenant.default) {
        const makeDefault = KQI.el("button", {
          type: "button", class: "btn btn-sm btn-outline-secondary kqi-make-default", text: KQI.t("home.make_default"),
        });
        makeDefault.addEventListener("click", () => KQI.busy(makeDefault, null, async () => {
          try {
            const updated = await KQI.api("PUT", "/account?defaultTenant=" + encodeURIComponent(tenant.id));
            KQI.account = updated;
            renderHeader(updated);
            renderTenantList(updated);
            KQI.show("kqi-alerts", "success", KQI.t("home.default_set", { tenant: tenant.displayName || tenant.name }));
          } catch (err) {
            KQI.showError("kqi-alerts", err);
          }
        }));
        actions.appendChild(makeDefault);
      }
      list.appendChild(KQI.el("li", {
        class: "list-group-item d-flex align-items-center gap-2", dataset: { tenantId: String(tenant.id) },
      },
      KQI.el("span", { class: "fw-semibold", text: tenant.displayName || tenant.name }),
      KQI.el("small", { class: "text-body-secondary", text: tenant.name }),
      isCurrent ? KQI.el("span", { class: "badge text-bg-primary", text: KQI.t("home.current") }) : null,
      tenant.default ? KQI.el("span", { class: "badge text-bg-secondary", text: KQI.t("common.default") }) : null,
      actions));
    }
  }

  // -------------------------------------------------------- user settings
  KQI.pages.settings = function (account) {
    selectTabFromHash();
    window.addEventListener("hashchange", selectTabFromHash);
    KQI.$$("#kqi-settings-tabs [data-kqi-tab]").forEach((button) => {
      button.addEventListener("shown.bs.tab", () => history.replaceState(null, "", "#" + button.dataset.kqiTab));
    });
    if (account.selectedTenant) {
      loadGits();
      loadRegistries();
    } else {
      for (const what of ["git", "registry"]) {
        KQI.clear(KQI.$("#" + what + "-rows"));
        KQI.show(what + "-messages", "warning", KQI.t("common.no_tenant"));
        KQI.$("#" + what + "-save").disabled = true;
      }
    }
    loadWebhook();
    KQI.$("#git-form").addEventListener("submit", saveGits);
    KQI.$("#registry-form").addEventListener("submit", saveRegistries);
    KQI.$("#webhook-form").addEventListener("submit", saveWebhook);
    KQI.$("#webhook-test").addEventListener("click", testWebhook);
  };

  function selectTabFromHash() {
    const name = window.location.hash.replace("#", "");
    const button = name && KQI.$('#kqi-settings-tabs [data-kqi-tab="' + CSS.escape(name) + '"]');
    if (button && window.bootstrap) window.bootstrap.Tab.getOrCreateInstance(button).show();
  }

  function statusBadge(isSet) {
    return KQI.el("span", {
      class: "badge kqi-secret-state " + (isSet ? "text-bg-success" : "text-bg-secondary"),
      text: isSet ? KQI.t("common.set") : KQI.t("common.not_set"),
    });
  }

  function emptyRow(colspan, text) {
    return KQI.el("tr", {}, KQI.el("td", { colspan: colspan, class: "text-body-secondary", text: text }));
  }

  async function loadGits() {
    const rows = KQI.$("#git-rows");
    try {
      const result = await KQI.api("GET", "/account/gits");
      KQI.clear(rows);
      if (!result.gits.length) rows.appendChild(emptyRow(3, KQI.t("git.none")));
      for (const git of result.gits) {
        const inputId = "git-token-" + git.id;
        rows.appendChild(KQI.el("tr", { dataset: { gitId: String(git.id) } },
          KQI.el("td", {},
            KQI.el("label", { for: inputId, class: "fw-semibold", text: git.name }),
            git.id === result.defaultGitId
              ? KQI.el("span", { class: "badge text-bg-secondary ms-2", text: KQI.t("common.default") }) : null),
          KQI.el("td", {}, KQI.el("code", { class: "kqi-url", text: git.repositoryUrl || "" })),
          KQI.el("td", {},
            KQI.el("div", { class: "d-flex align-items-center gap-2" },
              KQI.el("input", {
                type: "password", class: "form-control form-control-sm kqi-git-token", id: inputId,
                autocomplete: "off", placeholder: git.tokenSet ? KQI.t("git.token_keep") : KQI.t("git.token_new"),
              }),
              statusBadge(git.tokenSet)),
            git.tokenSet ? KQI.el("div", { class: "form-check mt-1" },
              KQI.el("input", { type: "checkbox", class: "form-check-input kqi-git-clear", id: inputId + "-clear" }),
              KQI.el("label", { class: "form-check-label small", for: inputId + "-clear", text: KQI.t("git.clear") }))
              : null)));
      }
    } catch (err) {
      KQI.clear(rows);
      KQI.showError("git-messages", err);
    }
  }

  async function saveGits(event) {
    event.preventDefault();
    const changes = [];
    for (const row of KQI.$$("#git-rows tr[data-git-id]")) {
      const id = Number(row.dataset.gitId);
      const token = KQI.$(".kqi-git-token", row).value;
      const clear = KQI.$(".kqi-git-clear", row);
      if (token) changes.push({ id: id, token: token });
      else if (clear && clear.checked) changes.push({ id: id, token: null });
    }
    await KQI.busy(KQI.$("#git-save"), KQI.t("common.saving"), async () => {
      try {
        if (changes.length) await KQI.api("PUT", "/account/gits", changes);
        KQI.show("git-messages", "success", KQI.t("common.saved"));
        await loadGits();
      } catch (err) {
        KQI.showError("git-messages", err);
      }
    });
  }

  async function loadRegistries() {
    const rows = KQI.$("#registry-rows");
    try {
      const result = await KQI.api("GET", "/account/registries");
      KQI.clear(rows);
      if (!result.registries.length) rows.appendChild(emptyRow(3, KQI.t("registry.none")));
      for (const reg of result.registries) {
        const base = "registry-" + reg.id;
        rows.appendChild(KQI.el("tr", { dataset: { registryId: String(reg.id), userName: reg.userName || "" } },
          KQI.el("td", {},
            KQI.el("span", { class: "fw-semibold", text: reg.name }),
            reg.id === result.defaultRegistryId
              ? KQI.el("span", { class: "badge text-bg-secondary ms-2", text: KQI.t("common.default") }) : null),
          KQI.el("td", {},
            KQI.el("input", {
              type: "text", class: "form-control form-control-sm kqi-registry-user", id: base + "-user",
              autocomplete: "off", value: reg.userName || "", "aria-label": KQI.t("registry.user_name"),
            })),
          KQI.el("td", {},
            KQI.el("div", { class: "d-flex align-items-center gap-2" },
              KQI.el("input", {
                type: "password", class: "form-control form-control-sm kqi-registry-password", id: base + "-password",
                autocomplete: "off", "aria-label": KQI.t("registry.password"),
                placeholder: reg.passwordSet ? KQI.t("registry.password_keep") : KQI.t("registry.password_new"),
              }),
              statusBadge(reg.passwordSet)))));
      }
    } catch (err) {
      KQI.clear(rows);
      KQI.showError("registry-messages", err);
    }
  }

  async function saveRegistries(event) {
    event.preventDefault();
    const changes = [];
    for (const row of KQI.$$("#registry-rows tr[data-registry-id]")) {
      const userName = KQI.$(".kqi-registry-user", row).value.trim();
      const password = KQI.$(".kqi-registry-password", row).value;
      const change = { id: Number(row.dataset.registryId), userName: userName || null };
      if (password) change.password = password;
      if (password || userName !== row.dataset.userName) changes.push(change);
    }
    await KQI.busy(KQI.$("#registry-save"), KQI.t("common.saving"), async () => {
      try {
        if (changes.length) await KQI.api("PUT", "/account/registries", changes);
        KQI.show("registry-messages", "success", KQI.t("common.saved"));
        await loadRegistries();
      } catch (err) {
        KQI.showError("registry-messages", err);
      }
    });
  }

  async function loadWebhook() {
    try {
      const hook = await KQI.api("GET", "/account/webhook/slack");
      KQI.$("#webhook-mention").value = hook.mention || "";
      KQI.$("#webhook-url").value = "";
      KQI.$("#webhook-url-set").classList.toggle("d-none", !hook.slackUrlSet);
      KQI.$("#webhook-url-clear-box").classList.toggle("d-none", !hook.slackUrlSet);
      KQI.$("#webhook-url-clear").checked = false;
    } catch (err) {
      KQI.showError("webhook-messages", err);
    }
  }

  async function saveWebhook(event) {
    event.preventDefault();
    const form = KQI.$("#webhook-form");
    const url = KQI.$("#webhook-url").value.trim();
    const body = { mention: KQI.$("#webhook-mention").value.trim() || null };
    if (url) body.slackUrl = url;
    else if (KQI.$("#webhook-url-clear").checked) body.slackUrl = null;
    KQI.show("webhook-test-result", "info", "");
    await KQI.busy(KQI.$("#webhook-save"), KQI.t("common.saving"), async () => {
      try {
        await KQI.api("PUT", "/account/webhook/slack", body);
        KQI.markFields(form, {});
        KQI.show("webhook-messages", "success", KQI.t("common.saved"));
        await loadWebhook();
      } catch (err) {
        KQI.markFields(form, err.errors);
        KQI.showError("webhook-messages", err);
      }
    });
  }

  async function testWebhook() {
    const form = KQI.$("#webhook-form");
    const url = KQI.$("#webhook-url").value.trim();
    const body = { mention: KQI.$("#webhook-mention").value.trim() || null };
    if (url) body.slackUrl = url;
    const button = KQI.$("#webhook-test");
    KQI.show("webhook-test-result", "info", KQI.t("webhook.testing"));
    await KQI.busy(button, null, async () => {
      try {
        const result = await KQI.api("POST", "/account/webhook/slack/test", body);
        KQI.markFields(form, {});
        if (result && result.success) {
          KQI.show("webhook-test-result", "success", KQI.t("webhook.test_ok"));
        } else {
          KQI.show("webhook-test-result", "danger",
            KQI.t("webhook.test_failed", { reason: (result && result.reason) || KQI.t("common.error") }));
        }
      } catch (err) {
        KQI.markFields(form, err.errors);
        KQI.show("webhook-test-result", "danger", KQI.t("webhook.test_failed", { reason: err.detail || err.message }),
          err.errors);
      }
    });
  }

  // ------------------------------------------------------------------ start
  async function start() {
    let account = null;
    try {
      account = await KQI.api("GET", "/account");
    } catch (err) {
      KQI.$("#kqi-current-tenant").textContent = KQI.t("header.no_tenant");
      KQI.showError("kqi-alerts", err);
      return;
    }
    KQI.account = account;
    renderHeader(account);
    const page = KQI.pages[data.page];
    if (page) {
      try {
        await page(account);
      } catch (err) {
        KQI.showError("kqi-alerts", err);
      }
    }
    document.body.setAttribute("data-kqi-ready", "true");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
