// Editing master-plan layers: Leaflet-Geoman tools (draw, edit vertices, move, cut, delete, snapping), an
// attribute form generated from the collection's JSON Schema, undo/redo before saving, saving through
// OGC API Features Part 4 with If-Match, a conflict dialog on a stale version, per-feature history and revert.
import { request, escapeHtml, toast, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { propertyLabel, formatValue } from "./layers.js";
import { selfIntersections } from "./geometry.js";

const EDIT_MIN_ZOOM = 13;
// Writable, but not for a planner's form: where a record came from is set by loaders.
const FORM_HIDDEN = new Set(["source", "source_id", "territory_id"]);
const META = new Set(["version", "created_at", "created_by", "updated_at", "updated_by", "area_m2", "territory_id"]);

const typesOf = (prop) => (Array.isArray(prop.type) ? prop.type : [prop.type]);
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export class Editor {
  constructor(app) {
    this.app = app;
    this.map = app.map;
    this.def = null;         // the layer being edited (from /map/config)
    this.schema = null;
    this.group = null;       // the features being edited (Geoman-enabled)
    this.guides = null;      // other layers' geometry to snap to (snappable, not editable)
    this.items = new Map();  // key -> {key, id, base, properties, layer, deleted}
    this.nextKey = 1;
    this.undoStack = [];
    this.redoStack = [];
    this.selected = null;
    this.pane = document.getElementById("pane-edit");
    document.addEventListener("keydown", (e) => this.onKey(e));
  }

  // --- set-up ------------------------------------------------------------------------------------------------
  configure(config, me) {
    this.editable = config.layers.filter((l) => l.editable);
    document.getElementById("tab-edit").hidden = this.editable.length === 0;
    if (this.def && !this.editable.some((l) => l.id === this.def.id)) this.stop(true);
    if (!this.editable.length) {
      document.getElementById("tab-layers").click();
      this.pane.innerHTML = "";
      return;
    }
    this.render();
  }

  render() {
    const options = this.editable.map((l) => `<option value="${l.id}" ${this.def?.id === l.id ? "selected" : ""}>
      ${escapeHtml(l.title)}</option>`).join("");
    this.pane.innerHTML = `
      <label for="edit-layer">${escapeHtml(t("edit.layer"))}</label>
      <div class="actions"><select id="edit-layer" ${this.def ? "disabled" : ""}>${options}</select>
        ${this.def ? `<button type="button" id="edit-stop">${escapeHtml(t("edit.stop"))}</button>`
    : `<button type="button" class="primary" id="edit-start">${escapeHtml(t("edit.start"))}</button>`}</div>
      <p class="edit-status" id="edit-help">${escapeHtml(this.def ? t("edit.help") : "")}</p>
      <div class="edit-tools" ${this.def ? "" : "hidden"}>
        <button type="button" class="btn" id="edit-undo" aria-keyshortcuts="Control+Z">↶ ${escapeHtml(t("edit.undo"))}</button>
        <button type="button" class="btn" id="edit-redo" aria-keyshortcuts="Control+Y">↷ ${escapeHtml(t("edit.redo"))}</button>
        <button type="button" class="btn primary" id="edit-save">${escapeHtml(t("edit.save"))}</button>
        <button type="button" class="btn" id="edit-discard">${escapeHtml(t("edit.discard"))}</button>
      </div>
      <div class="edit-status" id="edit-pending" aria-live="polite"></div>
      <div id="edit-message" aria-live="assertive"></div>
      <div id="edit-form"></div>
      <div id="edit-history"></div>`;
    const $ = (id) => this.pane.querySelector(`#${id}`);
    $("edit-start")?.addEventListener("click", () => this.start($("edit-layer").value));
    $("edit-stop")?.addEventListener("click", () => this.stop());
    $("edit-undo")?.addEventListener("click", () => this.undo());
    $("edit-redo")?.addEventListener("click", () => this.redo());
    $("edit-save")?.addEventListener("click", () => this.save());
    $("edit-discard")?.addEventListener("click", () => this.load());
    this.updateStatus();
  }

  message(text, kind = "error") {
    const box = this.pane.querySelector("#edit-message");
    if (box) box.innerHTML = text ? `<div class="message ${kind}">${escapeHtml(text)}</div>` : "";
  }

  async start(layerId) {
    this.def = this.editable.find((l) => l.id === layerId);
    const { data } = await request(this.def.schema);
    this.schema = data;
    const entry = this.app.layers.entries.get(layerId);
    entry.hiddenByEditor = true;  // the editable copy replaces the displayed one
    this.app.layers.hide(entry);
    this.group = L.featureGroup().addTo(this.map);
    this.group.on("click", (e) => this.onFeatureClick(e));
    this.guides = L.layerGroup().addTo(this.map);
    this.installGeoman();
    this.render();
    await this.load();
    this.moveHandler = () => this.loadGuides();
    this.map.on("moveend", this.moveHandler);
  }

  stop(force = false) {
    if (!force && this.pendingCount() && !window.confirm(t("edit.pending", { n: this.pendingCount() }) + " — OK?")) return;
    this.map.pm.removeControls();
    this.map.pm.disableDraw();
    this.map.pm.disableGlobalEditMode();
    this.map.pm.disableGlobalDragMode();
    this.map.pm.disableGlobalRemovalMode();
    this.map.pm.disableGlobalCutMode();
    this.map.off("pm:create pm:remove pm:cut");
    if (this.moveHandler) this.map.off("moveend", this.moveHandler);
    if (this.group) this.map.removeLayer(this.group);
    if (this.guides) this.map.removeLayer(this.guides);
    const entry = this.def && this.app.layers.entries.get(this.def.id);
    this.def = null;
    this.items.clear();
    this.selected = null;
    if (entry) {
      entry.hiddenByEditor = false;
      this.app.layers.refresh(entry.def.id);
    }
    this.render();
  }

  installGeoman() {
    const kind = (this.def.geometry_type || "").toUpperCase();
    const polygons = !kind || kind.includes("POLYGON");
    const points = !kind || kind.includes("POINT");
    const lines = kind.includes("LINE");
    this.map.pm.setGlobalOptions({
      // A polygon is closed by clicking its first vertex (Leaflet-Geoman's default).
      layerGroup: this.group, snappable: true, snapDistance: 15, allowSelfIntersection: false,
    });
    this.map.pm.addControls({
      position: "topleft", drawMarker: points, drawCircleMarker: false, drawPolyline: lines, drawRectangle: polygons,
      drawPolygon: polygons, drawCircle: false, drawText: false, editMode: true, dragMode: true,
      cutPolygon: polygons, removalMode: true, rotateMode: false,
    });
    this.map.on("pm:create", (e) => {
      const key = this.nextKey++;
      const defaults = {};
      for (const [name, prop] of Object.entries(this.schema.properties)) {
        if (prop.default !== undefined) defaults[name] = prop.default;
      }
      this.items.set(key, { key, id: null, base: null, properties: defaults, layer: e.layer, deleted: false });
      this.attach(e.layer, key);
      this.commit();
      this.select(key);
    });
    this.map.on("pm:remove", (e) => {
      const item = this.itemOf(e.layer);
      if (!item) return;
      if (item.id === null) this.items.delete(item.key);
      else { item.deleted = true; item.layer = null; }
      if (this.selected === item.key) this.select(null);
      this.commit();
    });
    this.map.on("pm:cut", (e) => {
      const item = this.itemOf(e.originalLayer);
      if (!item) return;
      if (this.group.hasLayer(e.originalLayer)) this.group.removeLayer(e.originalLayer);
      item.layer = e.layer;
      this.attach(e.layer, item.key);
      if (!this.group.hasLayer(e.layer)) this.group.addLayer(e.layer);
      this.commit();
    });
  }

  attach(layer, key) {
    layer.cdtKey = key;
    layer.on("pm:edit pm:dragend", () => this.commit());
  }

  itemOf(layer) {
    return layer && layer.cdtKey ? this.items.get(layer.cdtKey) : null;
  }

  // --- loading -----------------------------------------------------------------------------------------------
  async load() {
    if (!this.def) return;
    this.message("");
    if (this.map.getZoom() < EDIT_MIN_ZOOM) this.map.setZoom(EDIT_MIN_ZOOM);
    const b = this.map.getBounds();
    const params = new URLSearchParams({ bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(","),
      limit: "2000", f: "json" });
    const { data } = await request(`${this.def.items}?${params}`);
    this.items.clear();
    this.group.clearLayers();
    for (const f of data.features) {
      const key = this.nextKey++;
      this.items.set(key, { key, id: f.id, base: { properties: f.properties, geometry: f.geometry },
        properties: { ...f.properties }, layer: null, deleted: false });
    }
    this.undoStack = [];
    this.redoStack = [];
    this.restore(this.snapshot(true));
    this.undoStack.push(this.snapshot());
    this.select(null);
    this.updateStatus();
    this.loadGuides();
  }

  // Other layers' vertices and edges to snap to: buildings, parcels and the other master-plan layers in view.
  async loadGuides() {
    if (!this.def || this.map.getZoom() < 15) { this.guides?.clearLayers(); return; }
    const b = this.map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
    const ids = ["buildings", "parcels", "functional_zones", "zoning_zones"].filter((id) => id !== this.def.id &&
      this.app.config.layers.some((l) => l.id === id));
    const seq = (this.guideSeq = (this.guideSeq || 0) + 1);
    const layers = await Promise.all(ids.map(async (id) => {
      try {
        const { data } = await request(`/collections/${id}/items?${new URLSearchParams({ bbox, limit: "3000",
          properties: "version", f: "json" })}`);
        return L.geoJSON(data, { pmIgnore: true, snapIgnore: false, interactive: false,
          style: { color: "#00897b", weight: 0.6, opacity: 0.6, fill: false } });
      } catch (err) {
        return null;
      }
    }));
    if (seq !== this.guideSeq || !this.guides) return;
    this.guides.clearLayers();
    for (const layer of layers) if (layer) this.guides.addLayer(layer);
  }

  // --- state, undo and redo ----------------------------------------------------------------------------------
  snapshot(fromBase = false) {
    return [...this.items.values()].map((it) => ({
      key: it.key, id: it.id, base: it.base, deleted: it.deleted, properties: { ...it.properties },
      geometry: fromBase ? it.base?.geometry : (it.layer ? it.layer.toGeoJSON(false).geometry : null),
    }));
  }

  restore(state) {
    const modes = { edit: this.map.pm.globalEditModeEnabled(), drag: this.map.pm.globalDragModeEnabled() };
    this.map.pm.disableGlobalEditMode();
    this.map.pm.disableGlobalDragMode();
    this.group.clearLayers();
    this.items.clear();
    for (const s of state) {
      const item = { key: s.key, id: s.id, base: s.base, properties: { ...s.properties }, deleted: s.deleted, layer: null };
      if (s.geometry && !s.deleted) {
        item.layer = L.geoJSON({ type: "Feature", geometry: s.geometry, properties: {} }).getLayers()[0];
        this.attach(item.layer, s.key);
        this.group.addLayer(item.layer);
      }
      this.items.set(s.key, item);
    }
    if (modes.edit) this.map.pm.enableGlobalEditMode();
    if (modes.drag) this.map.pm.enableGlobalDragMode();
    this.styleAll();
  }

  commit() {
    const state = this.snapshot();
    if (!same(state, this.undoStack[this.undoStack.length - 1])) {
      this.undoStack.push(state);
      this.redoStack = [];
    }
    this.styleAll();
    this.updateStatus();
  }

  undo() {
    if (this.undoStack.length < 2) return;
    this.redoStack.push(this.undoStack.pop());
    this.restore(this.undoStack[this.undoStack.length - 1]);
    this.afterHistoryMove();
  }

  redo() {
    const state = this.redoStack.pop();
    if (!state) return;
    this.undoStack.push(state);
    this.restore(state);
    this.afterHistoryMove();
  }

  afterHistoryMove() {
    const keep = this.selected && this.items.get(this.selected)?.layer ? this.selected : null;
    this.select(keep);
    this.updateStatus();
  }

  onKey(e) {
    if (!this.def || !(e.ctrlKey || e.metaKey)) return;
    if (e.target.closest && e.target.closest("input, textarea, select")) return;  // the field's own undo
    const key = e.key.toLowerCase();
    if (key === "z" && !e.shiftKey) { e.preventDefault(); this.undo(); }
    else if (key === "y" || (key === "z" && e.shiftKey)) { e.preventDefault(); this.redo(); }
  }

  status(item) {
    if (item.deleted) return "deleted";
    if (item.id === null) return "new";
    const geometry = item.layer ? item.layer.toGeoJSON(false).geometry : null;
    const changed = Object.keys(this.schema.properties).some((k) => !META.has(k) && k !== "geometry" && k !== "id" &&
      !same(item.properties[k], item.base.properties[k]));
    return changed || !sameGeometry(geometry, item.base.geometry) ? "modified" : "clean";
  }

  pending() {
    return [...this.items.values()].filter((it) => this.status(it) !== "clean");
  }

  pendingCount() { return this.def ? this.pending().length : 0; }

  updateStatus() {
    const box = this.pane.querySelector("#edit-pending");
    if (!box) return;
    const n = this.pendingCount();
    box.textContent = this.def ? (n ? t("edit.pending", { n }) : t("edit.none")) : "";
    box.dataset.pending = String(n);
    const undo = this.pane.querySelector("#edit-undo");
    if (undo) undo.disabled = this.undoStack.length < 2;
    const redo = this.pane.querySelector("#edit-redo");
    if (redo) redo.disabled = this.redoStack.length === 0;
  }

  styleAll() {
    for (const item of this.items.values()) {
      if (!item.layer || !item.layer.setStyle) continue;
      const status = this.status(item);
      const colour = { new: "#2e7d32", modified: "#ef6c00", clean: "#1565c0" }[status] || "#1565c0";
      item.layer.setStyle({ color: colour, weight: item.key === this.selected ? 4 : 2, fillOpacity: 0.25, dashArray: null });
    }
  }

  // --- selection and the attribute form ----------------------------------------------------------------------
  onFeatureClick(e) {
    const pm = this.map.pm;
    if (pm.globalRemovalModeEnabled() || pm.globalCutModeEnabled?.() || pm.globalDrawModeEnabled()) return;
    L.DomEvent.stop(e);
    const item = this.itemOf(e.layer);
    if (item) this.select(item.key);
  }

  select(key) {
    this.selected = key;
    this.styleAll();
    const box = this.pane.querySelector("#edit-form");
    const history = this.pane.querySelector("#edit-history");
    if (history) history.innerHTML = "";
    if (!box) return;
    const item = key ? this.items.get(key) : null;
    if (!item) { box.innerHTML = ""; return; }
    const fields = Object.entries(this.schema.properties).filter(([name, prop]) => !prop.readOnly &&
      !FORM_HIDDEN.has(name) && name !== "geometry" && name !== "id");
    box.innerHTML = `<h3>${escapeHtml(t("edit.form"))} · ${escapeHtml(item.id ?? t("edit.newFeature"))}</h3>
      <form class="form" id="feature-form" novalidate data-key="${key}">
      ${fields.map(([name, prop]) => this.fieldHtml(name, prop, item.properties[name])).join("")}
      </form>
      ${item.id !== null ? `<div class="actions"><button type="button" class="btn" id="edit-show-history">
        ${escapeHtml(t("edit.history"))}</button></div>` : ""}`;
    const form = box.querySelector("form");
    // Typing updates the feature at once (Save may come before the field loses focus); a finished change
    // (blur, Enter, a choice) is one step of undo.
    form.addEventListener("input", (e) => this.onFieldChange(item, e.target, false));
    form.addEventListener("change", (e) => this.onFieldChange(item, e.target, true));
    box.querySelector("#edit-show-history")?.addEventListener("click", () => this.showHistory(item));
  }

  fieldHtml(name, prop, value) {
    const types = typesOf(prop);
    const required = !types.includes("null");
    const id = `f-${name}`;
    const label = `<label for="${id}">${escapeHtml(propertyLabel(name, this.schema))}${required ? " *" : ""}</label>`;
    const err = `<div class="field-error" id="${id}-error"></div>`;
    const attrs = `id="${id}" name="${name}" aria-describedby="${id}-error" ${required ? "required" : ""}`;
    if (prop.enum) {
      const opts = prop.enum.map((v) => `<option value="${v === null ? "" : escapeHtml(v)}" ${same(v, value) ? "selected" : ""}>
        ${escapeHtml(v === null ? "—" : v)}</option>`).join("");
      return `${label}<select ${attrs}>${value === undefined ? '<option value="" selected></option>' : ""}${opts}</select>${err}`;
    }
    if (types.includes("boolean")) {
      return `<label><input type="checkbox" ${attrs} ${value ? "checked" : ""}> ${escapeHtml(propertyLabel(name, this.schema))}</label>${err}`;
    }
    if (types.includes("integer") || types.includes("number")) {
      const bounds = `${prop.minimum !== undefined ? `min="${prop.minimum}"` : ""} ${prop.maximum !== undefined ? `max="${prop.maximum}"` : ""}`;
      return `${label}<input type="number" inputmode="decimal" step="${types.includes("integer") ? 1 : "any"}" ${bounds}
        ${attrs} value="${value ?? ""}">${err}`;
    }
    const list = prop.examples ? `<datalist id="${id}-list">${prop.examples.map((v) => `<option value="${escapeHtml(v)}">`).join("")}</datalist>` : "";
    const shown = Array.isArray(value) ? value.join(", ") : (value ?? "");
    return `${label}<input type="text" ${prop.examples ? `list="${id}-list"` : ""} ${prop.maxLength ? `maxlength="${prop.maxLength}"` : ""}
      ${attrs} value="${escapeHtml(shown)}">${list}${err}`;
  }

  // The value of a field as the schema types it, or an error message.
  parseField(prop, input) {
    const types = typesOf(prop);
    if (types.includes("boolean")) return [input.checked, null];
    const raw = input.value.trim();
    if (raw === "") return types.includes("null") ? [null, null] : [null, t("edit.required")];
    let value = raw;
    if (types.includes("integer")) {
      if (!/^-?\d+$/.test(raw)) return [raw, t("edit.mustBeInt")];
      value = Number(raw);
    } else if (types.includes("number")) {
      value = Number(raw);
      if (!Number.isFinite(value)) return [raw, t("edit.mustBeNumber")];
    } else if (types.includes("array")) {
      value = raw.split(",").map((s) => s.trim()).filter(Boolean);
    }
    if (prop.enum && !prop.enum.includes(value)) return [value, t("edit.oneOf")];
    if (prop.minimum !== undefined && value < prop.minimum) return [value, t("edit.min", { v: prop.minimum })];
    if (prop.maximum !== undefined && value > prop.maximum) return [value, t("edit.max", { v: prop.maximum })];
    if (prop.maxLength !== undefined && typeof value === "string" && value.length > prop.maxLength) {
      return [value, t("edit.tooLong", { v: prop.maxLength })];
    }
    return [value, null];
  }

  onFieldChange(item, input, finished) {
    const prop = this.schema.properties[input.name];
    if (!prop) return;
    const [value, error] = this.parseField(prop, input);
    this.showFieldError(input, error);
    if (!error) {
      item.properties[input.name] = value;
      if (finished) this.commit();
      else this.updateStatus();
    }
  }

  showFieldError(input, error) {
    input.classList.toggle("invalid", Boolean(error));
    input.setAttribute("aria-invalid", String(Boolean(error)));
    const box = this.pane.querySelector(`#${input.id}-error`);
    if (box) box.textContent = error || "";
  }

  // Every required and typed field of an item, whether or not its form is open.
  validateItem(item) {
    const errors = {};
    for (const [name, prop] of Object.entries(this.schema.properties)) {
      if (prop.readOnly || FORM_HIDDEN.has(name) || name === "geometry" || name === "id") continue;
      const fake = { value: item.properties[name] === undefined || item.properties[name] === null ? ""
        : Array.isArray(item.properties[name]) ? item.properties[name].join(",") : String(item.properties[name]),
      checked: Boolean(item.properties[name]) };
      const [, error] = this.parseField(prop, fake);
      if (error) errors[name] = error;
    }
    return errors;
  }

  // --- saving ------------------------------------------------------------------------------------------------
  async save() {
    this.message("");
    if (this.pane.querySelector('#feature-form [aria-invalid="true"]')) {
      this.message(t("edit.fixForm"));  // a value typed but refused: keep it on screen, save nothing
      return false;
    }
    const pending = this.pending();
    for (const item of pending) {
      if (item.deleted) continue;
      const geometry = item.layer.toGeoJSON(false).geometry;
      if (selfIntersections(geometry).length) {
        this.select(item.key);
        this.message(t("edit.selfIntersection"));
        return false;
      }
      const errors = this.validateItem(item);
      if (Object.keys(errors).length) {
        this.select(item.key);
        for (const [name, error] of Object.entries(errors)) {
          const input = this.pane.querySelector(`#f-${name}`);
          if (input) this.showFieldError(input, error);
        }
        this.message(t("edit.fixForm"));
        return false;
      }
    }
    let saved = 0;
    for (const item of pending) {
      try {
        const outcome = await this.saveItem(item);
        if (outcome === "cancel") return false;
        saved += 1;
      } catch (err) {
        this.select(item.deleted ? null : item.key);
        this.message(t("edit.server", { msg: err.message }));
        return false;
      }
    }
    toast(t("edit.saved", { n: saved }), "ok");
    await this.load();
    this.app.layers.refresh(this.def.id);
    this.message(t("edit.saved", { n: saved }), "ok");
    return true;
  }

  body(item) {
    const properties = {};
    for (const [name, prop] of Object.entries(this.schema.properties)) {
      if (prop.readOnly || name === "geometry" || name === "id" || name === "territory_id") continue;
      if (item.properties[name] !== undefined) properties[name] = item.properties[name];
    }
    return { type: "Feature", geometry: item.layer.toGeoJSON(false).geometry, properties };
  }

  url(item) { return `${this.def.items}/${item.id}`; }

  // The ETag of the version the user started from, or a conflict when the server has moved on.
  async baseEtag(item) {
    const { data, etag } = await request(`${this.url(item)}?f=json`);
    const base = item.base.properties;
    if (data.properties.version !== base.version || data.properties.created_at !== base.created_at) {
      return { conflict: { data, etag } };
    }
    return { etag };
  }

  async saveItem(item, etag = null) {
    if (item.id === null) {
      await request(this.def.items, { method: "POST", body: this.body(item), contentType: "application/geo+json" });
      return "saved";
    }
    if (!etag) {
      const known = await this.baseEtag(item).catch((err) => {
        if (err.status === 404 && item.deleted) return { gone: true };
        throw err;
      });
      if (known.gone) return "saved";
      if (known.conflict) return this.resolveConflict(item, known.conflict);
      etag = known.etag;
    }
    try {
      if (item.deleted) await request(this.url(item), { method: "DELETE", headers: { "If-Match": etag } });
      else {
        await request(this.url(item), { method: "PUT", body: this.body(item), contentType: "application/geo+json",
          headers: { "If-Match": etag } });
      }
      return "saved";
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        const { data, etag: now } = await request(`${this.url(item)}?f=json`);
        return this.resolveConflict(item, { data, etag: now });
      }
      throw err;
    }
  }

  // A 412, or a version newer than the one the user started from: show what changed and let them choose.
  // "Overwrite" is a three-way merge: the fields (and geometry) the user changed take the user's values,
  // everything else keeps the other editor's; the "Yours" column shows exactly what will be written.
  resolveConflict(item, current) {
    const theirs = current.data;
    // The fields a planner edits (the form's); versions and stamps are in the sentence above the table.
    const names = Object.entries(this.schema.properties).filter(([k, p]) => !p.readOnly && !FORM_HIDDEN.has(k) &&
      k !== "geometry" && k !== "id").map(([k]) => k);
    const mineChanged = (k) => !META.has(k) && !same(item.base.properties[k], item.properties[k]);
    const merged = Object.fromEntries(names.map((k) => [k, mineChanged(k) ? item.properties[k] : theirs.properties[k]]));
    const myGeometry = item.layer ? item.layer.toGeoJSON(false).geometry : null;
    const geometryMine = Boolean(myGeometry) && !sameGeometry(item.base.geometry, myGeometry);
    const rows = names.map((k) => {
      const a = item.base.properties[k], b = theirs.properties[k];
      const changed = !same(a, b) || mineChanged(k);
      return `<tr class="${changed ? "changed" : ""}" data-field="${escapeHtml(k)}"><td>${escapeHtml(propertyLabel(k, this.schema))}</td>
        <td>${escapeHtml(formatValue(a))}</td><td>${escapeHtml(formatValue(b))}</td>
        <td>${item.deleted ? "✗" : escapeHtml(formatValue(merged[k]))}</td></tr>`;
    }).join("");
    const word = (changed) => t(changed ? "conflict.changed" : "conflict.same");
    const geomTheirs = !sameGeometry(item.base.geometry, theirs.geometry);
    const dialog = document.getElementById("dialog");
    dialog.innerHTML = `<h2 id="dialog-title">${escapeHtml(t("conflict.title"))}</h2>
      <p>${escapeHtml(t("conflict.text", { id: item.id, layer: this.def.title, v: theirs.properties.version }))}</p>
      <table class="diff"><thead><tr><th>${escapeHtml(t("conflict.field"))}</th><th>${escapeHtml(t("conflict.start"))}</th>
        <th>${escapeHtml(t("conflict.theirs"))}</th><th>${escapeHtml(t("conflict.mine"))}</th></tr></thead>
      <tbody>${rows}<tr class="${geomTheirs || geometryMine ? "changed" : ""}" data-field="geometry">
        <td>${escapeHtml(t("conflict.geometry"))}</td><td></td><td>${escapeHtml(word(geomTheirs))}</td>
        <td>${item.deleted ? "✗" : escapeHtml(word(geometryMine))}</td></tr></tbody></table>
      <div class="actions"><button type="button" id="conflict-reload">${escapeHtml(t("conflict.reload"))}</button>
        <button type="button" class="danger" id="conflict-overwrite">${escapeHtml(t("conflict.overwrite"))}</button>
        <button type="button" id="conflict-cancel">${escapeHtml(t("cancel"))}</button></div>`;
    const replaceLayer = (geometry) => {
      if (item.layer) this.group.removeLayer(item.layer);
      item.layer = L.geoJSON({ type: "Feature", geometry, properties: {} }).getLayers()[0];
      this.attach(item.layer, item.key);
      this.group.addLayer(item.layer);
    };
    return new Promise((resolve, reject) => {
      const finish = (value) => { dialog.close(); resolve(value); };
      dialog.querySelector("#conflict-cancel").onclick = () => finish("cancel");
      dialog.addEventListener("cancel", () => resolve("cancel"), { once: true });
      dialog.querySelector("#conflict-reload").onclick = () => {
        item.base = { properties: theirs.properties, geometry: theirs.geometry };
        item.properties = { ...theirs.properties };
        item.deleted = false;
        replaceLayer(theirs.geometry);
        this.commit();
        this.select(item.key);
        finish("reloaded");
      };
      dialog.querySelector("#conflict-overwrite").onclick = () => {
        dialog.close();
        // rebase the user's change on the server's version, then write it with that version's ETag
        item.base = { properties: theirs.properties, geometry: theirs.geometry };
        if (!item.deleted) {
          item.properties = { ...theirs.properties, ...merged };
          if (!geometryMine) replaceLayer(theirs.geometry);
        }
        this.saveItem(item, current.etag).then(resolve, reject);
      };
      dialog.showModal();
    });
  }

  // --- history -----------------------------------------------------------------------------------------------
  async showHistory(item) {
    const box = this.pane.querySelector("#edit-history");
    const { data } = await request(`${this.url(item)}/history`);
    const versions = [...data.versions].reverse();
    const current = versions[0];
    box.innerHTML = `<h3>${escapeHtml(t("history.title", { layer: this.def.title, id: item.id }))}</h3>
      <ul class="history">${versions.map((v) => {
    const state = v.after || v.before || {};
    const changed = v.before && v.after ? Object.keys(v.after).filter((k) => !META.has(k) && !same(v.before[k], v.after[k])) : [];
    return `<li data-version="${v.version}"><strong>v${v.version}</strong> ${escapeHtml(v.operation)}
          <span class="meta">${escapeHtml(new Date(v.at).toLocaleString())} · ${escapeHtml(t("history.by"))} ${escapeHtml(v.actor)}</span>
          ${changed.length ? `<div class="meta">${escapeHtml(changed.join(", "))}</div>` : ""}
          ${v !== current && v.after ? `<button type="button" class="btn" data-revert="${v.version}">${escapeHtml(t("history.revert"))}</button>` : ""}
          <div class="meta">${escapeHtml(state.name || state.zone_type || "")}</div></li>`;
  }).join("") || `<li>${escapeHtml(t("history.empty"))}</li>`}</ul>`;
    box.onclick = async (e) => {
      const version = e.target.dataset?.revert;
      if (!version || !window.confirm(t("history.confirm", { v: version }))) return;
      try {
        const { etag } = await request(`${this.url(item)}?f=json`);
        await request(`${this.url(item)}/history/${version}/revert`, { method: "POST", headers: { "If-Match": etag } });
        toast(t("history.reverted", { v: version }), "ok");
        await this.load();
        this.app.layers.refresh(this.def.id);
      } catch (err) {
        this.message(t("edit.server", { msg: err.message }));
      }
    };
  }
}

function round(coords) {
  return Array.isArray(coords[0]) ? coords.map(round) : coords.map((c) => Math.round(c * 1e7) / 1e7);
}

// Geometries equal to 1 cm (what Leaflet's round trip preserves), Polygon and one-part MultiPolygon alike.
function sameGeometry(a, b) {
  if (!a || !b) return a === b;
  const norm = (g) => (g.type === "MultiPolygon" && g.coordinates.length === 1 ? { type: "Polygon", coordinates: g.coordinates[0] } : g);
  const x = norm(a), y = norm(b);
  return x.type === y.type && same(round(x.coordinates), round(y.coordinates));
}
