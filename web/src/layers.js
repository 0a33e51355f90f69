// Base maps, overlays (GeoJSON for small layers, vector tiles for big ones), legends, popups, territory balance.
import { request, getJSON, escapeHtml, toast } from "./api.js";
import { t, currentLang } from "./i18n.js";
import { pathOptions, legendEntries, swatchClass } from "./styles.js";

// Meta columns every layer carries: in popups they add noise, not information.
const HIDDEN = new Set(["version", "created_at", "created_by", "updated_at", "updated_by", "source", "source_id",
  "territory_id", "building_id", "parcel_id", "facility_id", "from_node", "to_node"]);
const LABELS = {
  residents: ["Residents", "Жителей"], floors: ["Floors", "Этажей"], address: ["Address", "Адрес"],
  living_area_m2: ["Living area, m²", "Жилая площадь, м²"], floor_area_m2: ["Floor area, m²", "Общая площадь, м²"],
  footprint_m2: ["Footprint, m²", "Площадь застройки, м²"], year: ["Year built", "Год постройки"],
  use: ["Use", "Назначение"], is_living: ["Residential", "Жилое"], name: ["Name", "Название"],
  type_code: ["Type", "Тип"], category: ["Category", "Категория"], capacity: ["Capacity", "Мощность"],
  capacity_unit: ["Unit", "Единица"], zone_type: ["Zone type", "Тип зоны"], status: ["Status", "Статус"],
  max_floors: ["Max floors", "Предельная этажность"], area_m2: ["Area, m²", "Площадь, м²"],
  cadastral_number: ["Cadastral number", "Кадастровый номер"], land_category: ["Land category", "Категория земель"],
  permitted_use: ["Permitted use", "Разрешённое использование"], oktmo: ["OKTMO", "ОКТМО"],
  population: ["Population", "Население"], level: ["Level", "Уровень"], zone_code: ["Zone code", "Код зоны"],
  planned_year: ["Planned year", "Год реализации"], plan_document: ["Plan document", "Документ"],
  density_people_ha: ["Density, people/ha", "Плотность, чел./га"], length_m: ["Length, m", "Длина, м"],
};

export function propertyLabel(name, schema) {
  const pair = LABELS[name];
  if (pair) return pair[currentLang() === "ru" ? 1 : 0];
  return schema?.properties?.[name]?.title || name;
}

export function formatValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString() : value.toLocaleString(undefined, { maximumFractionDigits: 1 });
  if (typeof value === "boolean") return value ? "✓" : "✗";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

export class LayerManager {
  constructor(map, config) {
    this.map = map;
    this.config = config;
    this.entries = new Map();  // layer id -> {def, layer, visible, data}
    this.basemap = null;
    this.balanceChart = null;
    map.createPane("cdt-tiles").style.zIndex = 350;
    map.createPane("cdt-points").style.zIndex = 450;
    this.marks = { firstTile: null };
  }

  // --- base maps ---------------------------------------------------------------------------------------------
  offlineBasemap() {
    const muted = {
      water: { fill: true, fillColor: "#c6dbef", fillOpacity: 1, color: "#9ecae1", weight: 0.5 },
      functional_zones: { fill: true, fillColor: "#eeeeee", fillOpacity: 0.5, stroke: false },
      zoning_zones: { fill: false, stroke: false },
      territories: { color: "#8e7cc3", weight: 1.5, dashArray: "6 4", fill: false },
      railways: { color: "#7d7d7d", weight: 1.5, dashArray: "6 3" },
      street_edges: { color: "#ffffff", weight: 3, opacity: 1 },
      buildings: { fill: true, fillColor: "#d9d0c9", fillOpacity: 1, color: "#bfb3a8", weight: 0.5 },
    };
    const grid = L.vectorGrid.protobuf(this.config.basemaps.offline.tiles, {
      vectorTileLayerStyles: muted, rendererFactory: L.canvas.tile, interactive: false, maxNativeZoom: 18,
      maxZoom: 22, attribution: "© OpenStreetMap contributors (ODbL), CDT",
    });
    return grid;
  }

  setBasemap(kind) {
    if (this.basemap) this.map.removeLayer(this.basemap);
    this.basemap = null;
    const online = this.config.basemaps.online;
    if (kind === "offline") this.basemap = this.offlineBasemap();
    if (kind === "online" && online) {
      this.basemap = L.tileLayer(online.url, { maxZoom: online.max_zoom, attribution: online.attribution });
    }
    if (this.basemap) {
      this.basemap.once("tileload", () => performance.mark("cdt:first-basemap-tile"));
      this.basemap.once("load", () => performance.mark("cdt:basemap-loaded"));
      this.basemap.addTo(this.map);
    }
    document.getElementById("map").dataset.basemap = kind;
  }

  renderBasemapChoice() {
    const box = document.getElementById("basemap-choice");
    const options = [["offline", t("basemap.offline")]];
    if (this.config.basemaps.online) options.push(["online", t("basemap.online")]);
    options.push(["none", t("basemap.none")]);
    const current = document.getElementById("map").dataset.basemap || "offline";
    box.innerHTML = options.map(([value, label]) => `<label><input type="radio" name="basemap" value="${value}"
      ${value === current ? "checked" : ""}> ${escapeHtml(label)}</label>`).join("");
    box.onchange = (e) => this.setBasemap(e.target.value);
  }

  // --- overlays ----------------------------------------------------------------------------------------------
  build() {
    for (const entry of this.entries.values()) if (entry.layer) this.map.removeLayer(entry.layer);
    this.entries.clear();
    for (const def of this.config.layers) {
      this.entries.set(def.id, { def, layer: null, visible: def.visible, hiddenByEditor: false });
    }
    this.renderPanel();
    return Promise.all([...this.entries.values()].filter((e) => e.visible).map((e) => this.show(e)));
  }

  async show(entry) {
    const { def } = entry;
    if (!entry.layer) entry.layer = def.render === "tiles" ? this.tileLayer(def) : await this.geojsonLayer(def);
    if (entry.visible && !entry.hiddenByEditor && !this.map.hasLayer(entry.layer)) entry.layer.addTo(this.map);
    this.updateBalance();
  }

  hide(entry) {
    if (entry.layer && this.map.hasLayer(entry.layer)) this.map.removeLayer(entry.layer);
    this.updateBalance();
  }

  setVisible(id, visible) {
    const entry = this.entries.get(id);
    entry.visible = visible;
    const box = document.querySelector(`#layer-list input[data-layer="${id}"]`);
    if (box) box.checked = visible;
    return visible ? this.show(entry) : this.hide(entry);
  }

  tileLayer(def) {
    const style = (props) => pathOptions(def.style, props);
    const grid = L.vectorGrid.protobuf(def.tiles, {
      vectorTileLayerStyles: { [def.id]: style }, rendererFactory: L.canvas.tile, interactive: true,
      pane: "cdt-tiles", maxNativeZoom: 18, maxZoom: 22, minZoom: def.min_zoom,
      getFeatureId: (f) => f.properties.id,
    });
    grid.once("tileload", () => { performance.mark("cdt:first-overlay-tile"); });
    grid.on("load", () => { performance.mark(`cdt:overlay-loaded:${def.id}`); });
    grid.on("click", (e) => {
      L.DomEvent.stop(e);
      this.openFeature(def.id, e.layer.properties.id, e.latlng);
    });
    return grid;
  }

  async fetchAll(def, bbox) {
    const params = new URLSearchParams({ limit: "10000", f: "json" });
    if (bbox) params.set("bbox", bbox.join(","));
    return getJSON(`${def.items}?${params}`);
  }

  async geojsonLayer(def) {
    const data = await this.fetchAll(def);
    const layer = L.geoJSON(data, {
      style: (f) => pathOptions(def.style, f.properties),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, { ...pathOptions(def.style, f.properties), pane: "cdt-points", pmIgnore: true }),
      pmIgnore: true,
      onEachFeature: (f, lyr) => lyr.on("click", (e) => {
        L.DomEvent.stop(e);
        this.openFeature(def.id, f.id, e.latlng);
      }),
    });
    layer.cdtData = data;
    return layer;
  }

  async refresh(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    const wasOn = entry.layer && this.map.hasLayer(entry.layer);
    if (entry.layer) this.map.removeLayer(entry.layer);
    entry.layer = null;
    if (wasOn || (entry.visible && !entry.hiddenByEditor)) await this.show(entry);
  }

  // --- popups ------------------------------------------------------------------------------------------------
  async openFeature(layerId, fid, latlng) {
    const def = this.entries.get(layerId)?.def;
    const popup = L.popup({ maxWidth: 360, className: "cdt-popup" }).setLatLng(latlng)
      .setContent(`<div class="popup">${escapeHtml(t("popup.loading"))}</div>`).openOn(this.map);
    try {
      const { data } = await request(`/collections/${layerId}/items/${fid}?f=json`);
      popup.setContent(this.popupHtml(def, data));
    } catch (err) {
      popup.setContent(`<div class="popup">${escapeHtml(err.message)}</div>`);
    }
    return popup;
  }

  popupHtml(def, feature) {
    const props = feature.properties || {};
    const style = def?.style;
    const typeLabel = (value) => {
      const cat = style?.by?.categories?.find((c) => c.value === value);
      return cat ? ((currentLang() === "ru" && cat.label_ru) || cat.label) : value;
    };
    const rows = Object.entries(props).filter(([k]) => !HIDDEN.has(k)).map(([k, v]) => {
      const shown = style?.by?.property === k && style.by.type === "categorical" ? typeLabel(v) : formatValue(v);
      return `<tr data-prop="${escapeHtml(k)}"><th>${escapeHtml(propertyLabel(k))}</th><td>${escapeHtml(shown)}</td></tr>`;
    }).join("");
    const title = props.name || props.address || props.cadastral_number || `${def?.title || ""} ${feature.id}`;
    return `<div class="popup" data-collection="${escapeHtml(def?.id)}" data-id="${escapeHtml(feature.id)}">
      <h4>${escapeHtml(title)}</h4><div class="meta">${escapeHtml(def?.title || "")} · ${escapeHtml(feature.id)}</div>
      <table>${rows}</table></div>`;
  }

  // --- panel -------------------------------------------------------------------------------------------------
  renderPanel() {
    this.renderBasemapChoice();
    const list = document.getElementById("layer-list");
    list.innerHTML = "";
    for (const { def, visible } of this.entries.values()) {
      const li = document.createElement("li");
      const legend = legendEntries(def.style);
      const sw = `<span class="${swatchClass(def.style)}" style="background:${def.style.kind === "line" ? "none" : (def.style.fill || def.style.color)};border-color:${def.style.color}"></span>`;
      li.innerHTML = `<div class="layer-row">
          <input type="checkbox" id="layer-${def.id}" data-layer="${def.id}" ${visible ? "checked" : ""}>
          ${legend.length ? "" : sw}
          <label for="layer-${def.id}">${escapeHtml(def.title)}</label>
          <span class="count" title="${escapeHtml(t("layer.features"))}">${def.features.toLocaleString()}</span>
        </div>
        <div class="zoom-note" data-minzoom="${def.min_zoom}" hidden>${escapeHtml(t("layer.zoomIn"))} (≥ ${def.min_zoom})</div>
        ${legend.length ? `<details class="legend-box"><summary>${escapeHtml(t("layer.legend"))}</summary><ul class="legend">
          ${legend.map((e) => `<li><span class="${swatchClass(def.style)}" style="background:${e.color};border-color:${e.color}"></span>${escapeHtml(e.label)}</li>`).join("")}
        </ul></details>` : ""}`;
      list.appendChild(li);
    }
    list.onchange = (e) => {
      if (e.target.dataset.layer) this.setVisible(e.target.dataset.layer, e.target.checked);
    };
    this.updateZoomNotes();
  }

  updateZoomNotes() {
    const z = this.map.getZoom();
    for (const note of document.querySelectorAll("#layer-list .zoom-note")) {
      note.hidden = z >= Number(note.dataset.minzoom);
    }
  }

  // The master plan's territory balance: area of each functional zone type, from the loaded zones.
  updateBalance() {
    const entry = this.entries.get("functional_zones");
    const box = document.getElementById("balance");
    const features = entry?.layer?.cdtData?.features || [];
    if (!entry || !this.map.hasLayer(entry.layer || {}) || !features.length || typeof Chart === "undefined") {
      box.hidden = true;
      return;
    }
    const sums = new Map();
    for (const f of features) {
      const key = f.properties.zone_type;
      sums.set(key, (sums.get(key) || 0) + (f.properties.area_m2 || 0) / 10000);
    }
    const colours = [...sums.keys()].map((k) => pathOptions(entry.def.style, { zone_type: k }).fillColor);
    const labels = [...sums.keys()].map((k) => {
      const cat = entry.def.style.by.categories.find((c) => c.value === k);
      return cat ? ((currentLang() === "ru" && cat.label_ru) || cat.label) : k;
    });
    box.hidden = false;
    const data = { labels, datasets: [{ data: [...sums.values()].map((v) => Math.round(v * 10) / 10), backgroundColor: colours }] };
    if (this.balanceChart) {
      this.balanceChart.data = data;
      this.balanceChart.update();
    } else {
      this.balanceChart = new Chart(document.getElementById("balance-chart"), {
        type: "doughnut", data, options: { animation: false, plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } },
      });
    }
  }
}
