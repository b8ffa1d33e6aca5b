/* KQI web UI: the administration screens (tenants, git servers, registries, nodes and
 * partitions, users) and the tenant administrator's members screen.
 *
 * Each screen is a list with an editor, described by a spec for KQI.crud. As in kqi.js,
 * data only ever reaches the page through textContent and form values.
 */
"use strict";

(function () {
  const KQI = window.KQI;
  const t = KQI.t;
  const el = KQI.el;

  // ----------------------------------------------------------------- helpers
  const formatDate = (value) => KQI.formatDate(value);

  function orNone(value) {
    return value === null || value === undefined || value === "" ? t("common.none") : String(value);
  }

  function code(value) {
    return value ? el("code", { text: value }) : t("common.none");
  }

  function badge(text, kind) {
    return el("span", { class: "badge me-1 text-bg-" + (kind || "secondary"), text: text });
  }

  /** The choices a form offers (git servers, registries, tenants, ...): the first page of up to
   * 1000 (the API's largest page), never an unbounded list. */
  const PAGED = /^\/admin\/(tenants|git\/endpoints|registry\/endpoints|storage\/endpoints|nodes|users)$/;
  async function optionalList(feature, path) {
    if (!KQI.has(feature)) return [];
    if (PAGED.test(path)) return (await KQI.fetchChoices(path)).items;
    return (await KQI.api("GET", path)) || []; // a short fixed list (types, partition names)
  }

  // ------------------------------------------------------------ form fields
  /* A field spec: {key, label, type, required, help, createOnly, editOnly, options(ctx, item),
   *   placeholder, step, min, datalist(ctx)}
   * types: text | password | number | url | textarea | select | checkbox | checks | tenantRoles */

  function fieldId(key) {
    return "field-" + key;
  }

  function renderField(field, ctx, item) {
    const id = fieldId(field.key);
    const value = item ? field.get ? field.get(item) : item[field.key] : field.initial;
    const wrap = el("div", { class: "mb-3 kqi-field", dataset: { key: field.key, type: field.type || "text" } });
    const labelText = t(field.label) + (field.required && !(item && field.requiredOnCreate) ? " *" : "");
    const help = field.help ? el("div", { class: "form-text", text: t(field.help) }) : null;
    const feedback = el("div", { class: "invalid-feedback", dataset: { field: field.key } });
    const type = field.type || "text";

    if (type === "checkbox") {
      wrap.className = "mb-3 form-check kqi-field";
      KQI.append(wrap, [
        el("input", { class: "form-check-input", type: "checkbox", id: id, checked: value === undefined ? field.initial : !!value }),
        el("label", { class: "form-check-label", for: id, text: t(field.label) }),
        feedback, help]);
      return wrap;
    }
    wrap.appendChild(el("label", { class: "form-label", for: id, text: labelText }));
    if (type === "select") {
      const select = el("select", { class: "form-select", id: id });
      if (!field.required || field.emptyOption) select.appendChild(el("option", { value: "", text: t("common.none") }));
      for (const opt of field.options(ctx, item)) {
        select.appendChild(el("option", { value: String(opt.value), text: opt.label, selected: value !== null && value !== undefined && String(value) === String(opt.value) }));
      }
      wrap.appendChild(select);
    } else if (type === "checks") {
      const chosen = new Set((value || []).map(String));
      const box = el("div", { class: "kqi-checks border rounded p-2", id: id });
      const options = field.options(ctx, item);
      if (!options.length) box.appendChild(el("span", { class: "text-body-secondary", text: t("common.empty") }));
      options.forEach((opt, i) => {
        const optId = id + "-" + i;
        box.appendChild(el("div", { class: "form-check form-check-inline" },
          el("input", { class: "form-check-input", type: "checkbox", id: optId, value: String(opt.value), checked: chosen.has(String(opt.value)) }),
          el("label", { class: "form-check-label", for: optId, text: opt.label })));
      });
      wrap.appendChild(box);
    } else if (type === "tenantRoles") {
      const current = new Map((value || []).map((m) => [String(m.id), !!m.isTenantAdmin]));
      const table = el("table", { class: "table table-sm mb-0 kqi-tenant-roles", id: id },
        el("thead", {}, el("tr", {},
          el("th", { text: t("tenants.display_name") }),
          el("th", { text: t("users.member") }),
          el("th", { text: t("users.tenant_admin") }))));
      const body = el("tbody");
      for (const tenant of ctx.tenants) {
        const key = String(tenant.id);
        const member = el("input", { class: "form-check-input kqi-member", type: "checkbox", checked: current.has(key),
          "aria-label": t("users.member") + " " + tenant.displayName });
        const admin = el("input", { class: "form-check-input kqi-admin", type: "checkbox", checked: current.get(key) === true,
          "aria-label": t("users.tenant_admin") + " " + tenant.displayName });
        admin.addEventListener("change", () => { if (admin.checked) member.checked = true; });
        member.addEventListener("change", () => { if (!member.checked) admin.checked = false; });
        body.appendChild(el("tr", { dataset: { tenantId: key } },
          el("td", {}, el("span", { text: tenant.displayName }), " ", el("small", { class: "text-body-secondary", text: tenant.name })),
          el("td", {}, member), el("td", {}, admin)));
      }
      table.appendChild(body);
      wrap.appendChild(el("div", { class: "border rounded" }, table));
    } else if (type === "textarea") {
      wrap.appendChild(el("textarea", { class: "form-control", id: id, rows: "3", value: value === null || value === undefined ? "" : value }));
    } else {
      const input = el("input", {
        class: "form-control", id: id, type: type === "number" ? "number" : type,
        value: value === null || value === undefined ? "" : value,
        placeholder: field.placeholder ? t(field.placeholder) : null,
        step: field.step || (type === "number" ? "any" : null), min: field.min,
        autocomplete: type === "password" ? "new-password" : "off",
        list: field.datalist ? id + "-list" : null,
      });
      wrap.appendChild(input);
      if (field.datalist) {
        wrap.appendChild(el("datalist", { id: id + "-list" },
          field.datalist(ctx).map((v) => el("option", { value: v }))));
      }
    }
    KQI.append(wrap, [feedback, help]);
    return wrap;
  }

  function readField(field, form) {
    const id = fieldId(field.key);
    const type = field.type || "text";
    const node = form.querySelector("#" + CSS.escape(id));
    if (type === "checkbox") return node.checked;
    if (type === "checks") {
      return KQI.$$("input:checked", node).map((i) => (isNaN(Number(i.value)) ? i.value : Number(i.value)));
    }
    if (type === "tenantRoles") {
      return KQI.$$("tbody tr", node)
        .filter((row) => KQI.$(".kqi-member", row).checked)
        .map((row) => ({ id: Number(row.dataset.tenantId), isTenantAdmin: KQI.$(".kqi-admin", row).checked }));
    }
    const raw = node.value;
    if (type === "password") return raw || null;
    const text = raw.trim();
    if (text === "") return null;
    if (type === "number") return Number(text);
    if (type === "select") return field.stringValues ? text : Number(text);
    return text;
  }

  // ------------------------------------------------------------------- crud
  /* spec: {
   *   list: async (ctx) => items, context: async () => ctx, columns: [{label, value(item, ctx)}],
   *   fields: [...], idOf(item), nameOf(item),
   *   create: async (body) | null, update: async (item, body) | null, remove: async (item) | null,
   *   details: async (item) => item (the item to edit), editable(item), titleNew, titleEdit,
   *   toBody(values, item) -> body, afterLoad(ctx, items)
   * } */
  KQI.crud = async function (spec) {
    const newButton = KQI.$("#kqi-new");
    const editor = KQI.$("#kqi-editor");
    const form = KQI.$("#kqi-editor-form");
    const fieldsBox = KQI.$("#kqi-editor-fields");
    const head = KQI.$("#kqi-list-head");
    const body = KQI.$("#kqi-list-body");
    const idOf = spec.idOf || ((item) => item.id);
    const nameOf = spec.nameOf || ((item) => item.name);
    let ctx = {};
    let editing = null; // the item being edited, null when creating

    KQI.clear(head);
    for (const column of spec.columns) head.appendChild(el("th", { scope: "col", text: t(column.label) }));
    if (spec.update || spec.remove) head.appendChild(el("th", { scope: "col", class: "text-end", text: t("common.actions") }));

    function closeEditor() {
      editor.classList.add("d-none");
      KQI.clear(fieldsBox);
      KQI.clear(KQI.$("#kqi-editor-messages"));
      editing = null;
    }

    function openEditor(item) {
      editing = item;
      KQI.clear(fieldsBox);
      KQI.clear(KQI.$("#kqi-editor-messages"));
      KQI.$("#kqi-editor-title").textContent = item ? t(spec.titleEdit, { name: nameOf(item) }) : t(spec.titleNew);
      for (const field of spec.fields) {
        if (item && field.createOnly) continue;
        if (!item && field.editOnly) continue;
        fieldsBox.appendChild(renderField(field, ctx, item));
      }
      editor.classList.remove("d-none");
      editor.scrollIntoView({ block: "start" });
      const first = fieldsBox.querySelector("input, select, textarea");
      if (first) first.focus();
    }

    // the list comes a page at a time (the API's perPage/page/withTotal) under the one pager
    let contextLoaded = false;
    let lastTotal = 0;
    const pages = KQI.pagedList({
      nav: KQI.$("#kqi-list-pager"),
      perPage: spec.perPage || 50,
      load: async (paging) => {
        try {
          if (!contextLoaded) {
            ctx = spec.context ? await spec.context() : {};
            contextLoaded = true;
          }
          const result = await KQI.fetchPage(spec.listPath, paging);
          if (spec.afterLoad) spec.afterLoad(ctx, result.items);
          renderList(result.items);
          lastTotal = result.total;
          return result.total;
        } catch (err) {
          KQI.clear(body);
          KQI.showError("kqi-alerts", err);
          return null;
        }
      },
    });

    async function load() {
      contextLoaded = false; // a change can change the choices too (e.g. a new tenant for the nodes)
      await pages.reload();
    }
    document.addEventListener("kqi:reload-list", load); // another part of the page changed the rows (identity.js)

    function renderList(items) {
      KQI.clear(body);
      const span = spec.columns.length + (spec.update || spec.remove ? 1 : 0);
      if (!items.length) {
        body.appendChild(el("tr", {}, el("td", { colspan: String(span), class: "text-body-secondary", text: t("common.empty") })));
      }
      for (const item of items) {
        const row = el("tr", { dataset: { id: String(idOf(item)), name: String(nameOf(item)) } });
        for (const column of spec.columns) {
          row.appendChild(el("td", {}, column.value(item, ctx)));
        }
        if (spec.update || spec.remove) {
          const cell = el("td", { class: "text-end text-nowrap" });
          const editable = spec.editable ? spec.editable(item) : true;
          if (spec.update && editable) {
            cell.appendChild(el("button", {
              type: "button", class: "btn btn-sm btn-outline-secondary me-1 kqi-edit", text: t("common.edit"),
              onclick: async () => {
                try {
                  openEditor(spec.details ? await spec.details(item) : item);
                } catch (err) {
                  KQI.showError("kqi-alerts", err);
                }
              },
            }));
          }
          if (spec.remove && editable) {
            const removeLabel = spec.removeLabel ? t(spec.removeLabel) : t("common.delete");
            cell.appendChild(el("button", {
              type: "button", class: "btn btn-sm btn-outline-danger kqi-delete", text: removeLabel,
              onclick: async (event) => {
                const question = t(spec.confirmRemove || "common.confirm_delete", { name: nameOf(item) });
                if (!window.confirm(question)) return;
                await KQI.busy(event.currentTarget, null, async () => {
                  try {
                    await spec.remove(item);
                    closeEditor();
                    KQI.show("kqi-alerts", "success", t(spec.removed || "common.deleted", { name: nameOf(item) }));
                    await load();
                  } catch (err) {
                    KQI.showError("kqi-alerts", err);
                  }
                });
              },
            }));
          }
          row.appendChild(cell);
        }
        body.appendChild(row);
      }
    }

    if (spec.create) {
      if (spec.newLabel) newButton.textContent = t(spec.newLabel);
      newButton.classList.remove("d-none");
      newButton.addEventListener("click", () => openEditor(null));
    }
    KQI.$("#kqi-editor-cancel").addEventListener("click", closeEditor);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const field of spec.fields) {
        if (editing && field.createOnly) continue;
        if (!editing && field.editOnly) continue;
        values[field.key] = readField(field, form);
      }
      const payload = spec.toBody ? spec.toBody(values, editing) : values;
      await KQI.busy(KQI.$("#kqi-editor-save"), t("common.saving"), async () => {
        try {
          let saved;
          if (editing) saved = await spec.update(editing, payload, values);
          else saved = await spec.create(payload, values);
          const name = (saved && nameOf(saved)) || (editing && nameOf(editing)) || values.name || values.tenantName || "";
          const message = t(editing ? "common.updated" : "common.created", { name: name });
          const created = !editing;
          closeEditor();
          KQI.show("kqi-alerts", "success", message);
          // lists in the order of their ids show a new entry on their last page: go there
          if (created && spec.newestLast) pages.state.page = Math.max(1, Math.ceil((lastTotal + 1) / pages.state.perPage));
          await load();
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("kqi-editor-messages", err);
        }
      });
    });
    await load();
  };

  // ---------------------------------------------------------------- tenants
  KQI.pages.tenants = function () {
    const numberOrNull = (v) => (v === null || v === undefined ? null : v);
    return KQI.crud({
      titleNew: "tenants.new",
      titleEdit: "tenants.edit",
      newLabel: "tenants.new",
      nameOf: (item) => item.name,
      context: async () => ({
        gits: await optionalList("GET /admin/git/endpoints", "/admin/git/endpoints"),
        registries: await optionalList("GET /admin/registry/endpoints", "/admin/registry/endpoints"),
        storages: await optionalList("GET /admin/storage/endpoints", "/admin/storage/endpoints"),
      }),
      listPath: "/admin/tenants",
      newestLast: true,
      details: (item) => KQI.api("GET", "/admin/tenants/" + encodeURIComponent(item.id)),
      create: (body) => KQI.api("POST", "/admin/tenants", body),
      update: (item, body) => KQI.api("PUT", "/admin/tenants/" + encodeURIComponent(item.id), body),
      remove: KQI.has("DELETE /admin/tenants/{}")
        ? (item) => KQI.api("DELETE", "/admin/tenants/" + encodeURIComponent(item.id)) : null,
      columns: [
        { label: "common.id", value: (item) => String(item.id) },
        { label: "tenants.name", value: (item) => code(item.name) },
        { label: "tenants.display_name", value: (item) => item.displayName },
        { label: "tenants.storage_path", value: (item) => code(item.storagePath) },
        { label: "common.created_at", value: (item) => formatDate(item.createdAt) },
      ],
      fields: [
        { key: "tenantName", label: "tenants.name", required: true, createOnly: true, help: "tenants.name_help",
          get: (item) => item.name },
        { key: "displayName", label: "tenants.display_name", required: true },
        { key: "gitIds", label: "tenants.git", type: "checks",
          options: (ctx) => ctx.gits.map((g) => ({ value: g.id, label: g.name })),
          initial: [] },
        { key: "defaultGitId", label: "tenants.default_git", type: "select",
          options: (ctx) => ctx.gits.map((g) => ({ value: g.id, label: g.name })) },
        { key: "registryIds", label: "tenants.registries", type: "checks",
          options: (ctx) => ctx.registries.map((r) => ({ value: r.id, label: r.name })),
          initial: [] },
        { key: "defaultRegistryId", label: "tenants.default_registry", type: "select",
          options: (ctx) => ctx.registries.map((r) => ({ value: r.id, label: r.name })) },
        { key: "storageId", label: "tenants.storage", type: "select", required: true, emptyOption: true,
          options: (ctx) => ctx.storages.map((s) => ({ value: s.id, label: s.name })) },
        { key: "limitCpu", label: "tenants.limit_cpu", type: "number", min: "0", help: "tenants.limit_help" },
        { key: "limitMemory", label: "tenants.limit_memory", type: "number", min: "0", help: "tenants.limit_help" },
        { key: "limitGpu", label: "tenants.limit_gpu", type: "number", min: "0", step: "1", help: "tenants.limit_help" },
        { key: "availableInfiniteTimeNotebook", label: "tenants.infinite_notebook", type: "checkbox", initial: false },
      ],
      toBody: (values) => ({
        ...values,
        limitCpu: numberOrNull(values.limitCpu),
        limitMemory: numberOrNull(values.limitMemory),
        limitGpu: numberOrNull(values.limitGpu),
      }),
    });
  };

  // ------------------------------------------------------------ git servers
  KQI.pages.gits = function () {
    const base = "/admin/git/endpoints";
    return KQI.crud({
      titleNew: "gits.new",
      titleEdit: "gits.edit",
      newLabel: "gits.new",
      context: async () => ({ types: await optionalList("GET /admin/git/types", "/admin/git/types") }),
      listPath: base,
      newestLast: true,
      create: KQI.has("POST " + base) ? (body) => KQI.api("POST", base, body) : null,
      update: KQI.has("PUT " + base + "/{}") ? (item, body) => KQI.api("PUT", base + "/" + item.id, body) : null,
      remove: KQI.has("DELETE " + base + "/{}") ? (item) => KQI.api("DELETE", base + "/" + item.id) : null,
      editable: (item) => !item.isNotEditable,
      columns: [
        { label: "common.id", value: (item) => String(item.id) },
        { label: "common.name", value: (item) => item.name },
        { label: "gits.service_type", value: (item) => item.serviceTypeName || String(item.serviceType) },
        { label: "gits.repository_url", value: (item) => code(item.repositoryUrl) },
        { label: "gits.api_url", value: (item) => code(item.apiUrl) },
      ],
      fields: [
        { key: "name", label: "common.name", required: true },
        { key: "serviceType", label: "gits.service_type", type: "select", required: true, emptyOption: true,
          options: (ctx) => ctx.types.map((x) => ({ value: x.id, label: x.name })) },
        { key: "repositoryUrl", label: "gits.repository_url", required: true, placeholder: null },
        { key: "apiUrl", label: "gits.api_url" },
      ],
    });
  };

  // ------------------------------------------------------------- registries
  KQI.pages.registries = function () {
    const base = "/admin/registry/endpoints";
    return KQI.crud({
      titleNew: "registries.new",
      titleEdit: "registries.edit",
      newLabel: "registries.new",
      context: async () => ({ types: await optionalList("GET /admin/registry/types", "/admin/registry/types") }),
      listPath: base,
      newestLast: true,
      create: KQI.has("POST " + base) ? (body) => KQI.api("POST", base, body) : null,
      update: KQI.has("PUT " + base + "/{}") ? (item, body) => KQI.api("PUT", base + "/" + item.id, body) : null,
      remove: KQI.has("DELETE " + base + "/{}") ? (item) => KQI.api("DELETE", base + "/" + item.id) : null,
      editable: (item) => !item.isNotEditable,
      columns: [
        { label: "common.id", value: (item) => String(item.id) },
        { label: "common.name", value: (item) => item.name },
        { label: "registries.service_type", value: (item) => item.serviceTypeName || String(item.serviceType) },
        { label: "registries.host", value: (item) => code(item.registryPath || item.host) },
        { label: "registries.project", value: (item) => orNone(item.projectName) },
        { label: "registries.registry_url", value: (item) => code(item.registryUrl) },
      ],
      fields: [
        { key: "name", label: "common.name", required: true },
        { key: "serviceType", label: "registries.service_type", type: "select", required: true, emptyOption: true,
          options: (ctx) => ctx.types.map((x) => ({ value: x.id, label: x.name })) },
        { key: "host", label: "registries.host", required: true },
        { key: "portNo", label: "registries.port", type: "number", min: "1", step: "1" },
        { key: "projectName", label: "registries.project" },
        { key: "apiUrl", label: "registries.api_url" },
        { key: "registryUrl", label: "registries.registry_url" },
      ],
    });
  };

  // ------------------------------------------------------------------ nodes
  KQI.pages.nodes = function () {
    const base = "/admin/nodes";
    const levels = [0, 1, 2];
    return KQI.crud({
      titleNew: "nodes.new",
      titleEdit: "nodes.edit",
      newLabel: "nodes.new",
      context: async () => ({
        partitions: await optionalList("GET /admin/partitions", "/admin/partitions"),
        tenants: await optionalList("GET /admin/tenants", "/admin/tenants"),
      }),
      afterLoad: (ctx) => {
        const box = KQI.clear(KQI.$("#kqi-partition-list"));
        if (!ctx.partitions.length) box.appendChild(el("span", { class: "text-body-secondary", text: t("nodes.no_partitions") }));
        for (const p of ctx.partitions) box.appendChild(el("span", { class: "badge text-bg-info me-1 kqi-partition", text: String(p) }));
      },
      listPath: base,
      newestLast: true,
      create: KQI.has("POST " + base) ? (body) => KQI.api("POST", base, body) : null,
      update: KQI.has("PUT " + base + "/{}") ? (item, body) => KQI.api("PUT", base + "/" + item.id, body) : null,
      remove: KQI.has("DELETE " + base + "/{}") ? (item) => KQI.api("DELETE", base + "/" + item.id) : null,
      columns: [
        { label: "nodes.name", value: (item) => item.name },
        { label: "nodes.partition", value: (item) => orNone(item.partition) },
        { label: "nodes.access_level", value: (item) => t("nodes.access_" + item.accessLevel) },
        { label: "nodes.tenants", value: (item) => (item.accessLevel === 1
          ? (item.assignedTenants || []).map((x) => badge(x.displayName || x.name)) : t("common.none")) },
        { label: "nodes.cpu", value: (item) => orNone(item.cpu) },
        { label: "nodes.memory", value: (item) => orNone(item.memory) },
        { label: "nodes.gpu", value: (item) => orNone(item.gpu) },
        { label: "common.memo", value: (item) => orNone(item.memo) },
      ],
      fields: [
        { key: "name", label: "nodes.name", required: true },
        { key: "partition", label: "nodes.partition", datalist: (ctx) => ctx.partitions },
        { key: "accessLevel", label: "nodes.access_level", type: "select", required: true, initial: 2,
          options: () => levels.map((x) => ({ value: x, label: t("nodes.access_" + x) })) },
        { key: "assignedTenantIds", label: "nodes.tenants", type: "checks", help: "nodes.tenants_help",
          options: (ctx) => ctx.tenants.map((x) => ({ value: x.id, label: x.displayName })) },
        { key: "cpu", label: "nodes.cpu", type: "number", min: "0" },
        { key: "memory", label: "nodes.memory", type: "number", min: "0" },
        { key: "gpu", label: "nodes.gpu", type: "number", min: "0", step: "1" },
        { key: "memo", label: "common.memo", type: "textarea" },
        { key: "notebookEnabled", label: "nodes.notebook_enabled", type: "checkbox", initial: true },
        { key: "tensorBoardEnabled", label: "nodes.tensorboard_enabled", type: "checkbox", initial: true },
      ],
    });
  };

  // ------------------------------------------------------------ tensorboards
  KQI.pages.tensorboards = function () {
    const base = "/admin/tensorboards";
    function remaining(seconds) {
      const s = Math.max(0, Math.round(seconds || 0));
      return Math.floor(s / 3600) + ":" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + ":"
        + String(s % 60).padStart(2, "0");
    }
    return KQI.crud({
      idOf: (item) => item.trainingId,
      nameOf: (item) => item.trainingId + ":" + item.trainingName,
      listPath: base,
      remove: KQI.has("DELETE " + base + "/{}") ? (item) => KQI.api("DELETE", base + "/" + item.trainingId + "?tenantId=" + item.tenantId) : null,
      removeLabel: "tensorboards.stop",
      confirmRemove: "tensorboards.confirm_stop",
      removed: "tensorboards.stopped",
      columns: [
        { label: "tensorboards.training", value: (item) => item.trainingId + ":" + item.trainingName },
        { label: "tensorboards.tenant", value: (item) => orNone(item.tenantName) },
        { label: "tensorboards.started_by", value: (item) => orNone(item.startedBy) },
        { label: "tensorboards.state", value: (item) => {
          const label = t("tensorboard.state_" + item.status);
          return label.startsWith("tensorboard.") ? item.status : label;
        } },
        { label: "tensorboards.remaining", value: (item) => remaining(item.remainingTime) },
        { label: "tensorboards.mounted", value: (item) => (item.mountedTrainingHistoryIds || []).join(", ") || t("common.none") },
      ],
      fields: [],
    });
  };

  // ------------------------------------------------------------------ users
  function tenantBadges(tenants) {
    if (!tenants || !tenants.length) return t("common.none");
    return tenants.map((x) => badge((x.displayName || x.name) + (x.isTenantAdmin ? " (" + t("users.tenant_admin") + ")" : ""),
      x.isTenantAdmin ? "primary" : "secondary"));
  }

  KQI.pages.users = function () {
    const base = "/admin/users";
    const path = (item) => base + "/" + encodeURIComponent(item.name);
    return KQI.crud({
      titleNew: "users.new",
      titleEdit: "users.edit",
      newLabel: "users.new",
      context: async () => ({ tenants: await optionalList("GET /admin/tenants", "/admin/tenants") }),
      listPath: base,
      perPage: 100, // in name order: a new user can land on any page
      create: KQI.has("POST " + base) ? (body) => KQI.api("POST", base, body) : null,
      update: KQI.has("PUT " + base + "/{}") ? async (item, body, values) => {
        const saved = await KQI.api("PUT", path(item), body);
        if (values.password && KQI.has("PUT " + base + "/{}/password")) {
          await KQI.api("PUT", path(item) + "/password", { password: values.password });
        }
        return saved;
      } : null,
      remove: KQI.has("DELETE " + base + "/{}") ? (item) => KQI.api("DELETE", path(item)) : null,
      columns: [
        { label: "users.name", value: (item) => item.name },
        { label: "users.display_name", value: (item) => orNone(item.displayName) },
        { label: "users.tenants", value: (item) => tenantBadges(item.tenants) },
        { label: "users.system_admin", value: (item) => (item.isSystemAdmin ? badge(t("common.yes"), "dark") : t("common.no")) },
      ],
      fields: [
        { key: "name", label: "users.name", required: true, createOnly: true },
        { key: "password", label: "users.password", type: "password", required: true, createOnly: true },
        { key: "password", label: "users.password", type: "password", editOnly: true, help: "users.password_edit_help",
          get: () => "" },
        { key: "displayName", label: "users.display_name" },
        { key: "tenants", label: "users.tenants", type: "tenantRoles", initial: [] },
      ],
      toBody: (values, item) => {
        const body = { displayName: values.displayName, tenants: values.tenants };
        if (!item) {
          body.name = values.name;
          body.password = values.password;
        }
        return body;
      },
    });
  };

  // ---------------------------------------------------------------- members
  KQI.pages.members = function (account) {
    if (!KQI.isTenantAdmin(account)) {
      KQI.show("kqi-alerts", "warning", t("common.need_tenant_admin"));
      KQI.clear(KQI.$("#kqi-list-body"));
      return null;
    }
    const tenant = account.selectedTenant;
    const heading = KQI.$("h1");
    heading.textContent = t("members.of", { tenant: tenant.displayName || tenant.name });
    const base = "/tenant/users";
    const path = (name) => base + "/" + encodeURIComponent(name);
    const canPut = KQI.has("PUT " + base + "/{}");
    return KQI.crud({
      titleNew: "members.add",
      titleEdit: "members.edit",
      newLabel: "members.add",
      listPath: base,
      create: canPut ? (body, values) => KQI.api("PUT", path(values.name), { isTenantAdmin: values.isTenantAdmin }) : null,
      update: canPut ? (item, body, values) => KQI.api("PUT", path(item.name), { isTenantAdmin: values.isTenantAdmin }) : null,
      remove: KQI.has("DELETE " + base + "/{}") ? (item) => KQI.api("DELETE", path(item.name)) : null,
      removeLabel: "members.remove",
      confirmRemove: "members.confirm_remove",
      removed: "members.removed",
      columns: [
        { label: "members.name", value: (item) => item.name },
        { label: "members.display_name", value: (item) => orNone(item.displayName) },
        { label: "members.roles", value: (item) => [badge(t("role.user"))].concat(
          item.isTenantAdmin ? [badge(t("role.tenant-admin"), "primary")] : []) },
      ],
      fields: [
        { key: "name", label: "members.name", required: true, createOnly: true, help: "members.add_help" },
        { key: "isTenantAdmin", label: "users.tenant_admin", type: "checkbox", initial: false },
      ],
    });
  };
})();
