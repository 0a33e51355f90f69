// The Site tab: investment appeal of a parcel or a clicked point for an enterprise (process site-appeal): the
// composite score, a bar per component with its raw facts, score, weight and reason, and weights that re-run it.
import { escapeHtml } from "./api.js";
import { t } from "./i18n.js";
import { runProcess } from "./analysis.js";
import { formatValue } from "./layers.js";

const COMPONENTS = ["accessibility", "utilities", "zoning", "land"];
const DEFAULT_WEIGHTS = { accessibility: 0.3, utilities: 0.3, zoning: 0.25, land: 0.15 };

const pct = (w) => `${Math.round(100 * w)}%`;

function factorLabel(key) {
  const label = t(`site.f.${key}`);
  return label === `site.f.${key}` ? key : label;
}

function rawText(f) {
  if (f.raw === null || f.raw === undefined) return t("site.unknown");
  if (f.unit === "m") return f.raw >= 1000 ? `${formatValue(f.raw / 1000)} km` : `${formatValue(Math.round(f.raw))} m`;
  if (f.unit === "min") return `${formatValue(f.raw)} ${t("an.min")}`;
  return f.detail?.name ? `${f.raw} (${f.detail.name})` : String(f.raw);
}

export class SitePanel {
  constructor(app) {
    this.app = app;
    this.map = app.map;
    this.pane = document.getElementById("pane-site");
    this.overlay = L.layerGroup().addTo(this.map);
    this.picking = false;
    this.site = null;  // the inputs naming the site last scored: {parcel_id} or {lon, lat}
    // preclick: fires before a feature's own click handler stops the event, so a click on a parcel counts too
    this.map.on("preclick", (e) => { if (this.picking) this.pick(e.latlng); });
    this.render();
  }

  render() {
    const weights = COMPONENTS.map((k) => `<label for="site-w-${k}">${escapeHtml(t(`site.c.${k}`))}</label>
      <input id="site-w-${k}" name="${k}" type="number" min="0" step="0.05" value="${DEFAULT_WEIGHTS[k]}">`).join("");
    this.pane.innerHTML = `<section aria-labelledby="site-h"><h3 id="site-h">${escapeHtml(t("site.title"))}</h3>
      <p class="edit-status">${escapeHtml(t("site.help"))}</p>
      <button type="button" class="btn" id="site-pick" aria-pressed="false">${escapeHtml(t("site.pick"))}</button>
      <form class="form site-weights" id="site-weights"><fieldset><legend>${escapeHtml(t("site.weights"))}</legend>
        ${weights}</fieldset>
        <div class="actions"><button type="button" class="btn" id="site-reset">${escapeHtml(t("site.reset"))}</button></div>
      </form>
      <div id="site-result" aria-live="polite"></div></section>`;
    this.pane.querySelector("#site-pick").onclick = () => this.togglePick();
    const form = this.pane.querySelector("#site-weights");
    form.addEventListener("change", () => { if (this.site) this.run(); });
    form.addEventListener("submit", (e) => e.preventDefault());
    this.pane.querySelector("#site-reset").onclick = () => {
      for (const k of COMPONENTS) form.elements[k].value = DEFAULT_WEIGHTS[k];
      if (this.site) this.run();
    };
  }

  togglePick(on = !this.picking) {
    this.picking = on;
    if (on) this.app.analysis?.togglePick(false);  // one picker at a time
    const btn = this.pane.querySelector("#site-pick");
    btn.setAttribute("aria-pressed", String(on));
    btn.classList.toggle("primary", on);
    this.map.getContainer().style.cursor = on ? "crosshair" : "";
  }

  pick(latlng) {
    this.togglePick(false);
    this.site = { lon: latlng.lng, lat: latlng.lat };
    this.run();
  }

  // The weights of the form, or null (with a message) when they would be refused.
  weights() {
    const form = this.pane.querySelector("#site-weights");
    const out = {};
    for (const k of COMPONENTS) {
      const input = form.elements[k];
      const value = Number(input.value);
      const bad = input.value === "" || !Number.isFinite(value) || value < 0;
      input.classList.toggle("invalid", bad);
      if (bad) return null;
      out[k] = value;
    }
    return Object.values(out).some((v) => v > 0) ? out : null;
  }

  async run() {
    const box = this.pane.querySelector("#site-result");
    const weights = this.weights();
    if (!weights) {
      box.innerHTML = `<div class="message error">${escapeHtml(t("site.badWeights"))}</div>`;
      return;
    }
    box.textContent = t("popup.loading");
    try {
      const out = await runProcess("site-appeal", { ...this.site, weights });
      // a point inside a parcel scored the parcel: re-runs keep naming that parcel
      if (out.site.parcel) this.site = { parcel_id: out.site.parcel.id };
      this.show(out);
    } catch (err) {
      box.innerHTML = `<div class="message error">${escapeHtml(err.message)}</div>`;
    }
  }

  show(out) {
    const box = this.pane.querySelector("#site-result");
    this.overlay.clearLayers();
    const s = out.site;
    if (s.geometry?.type === "Point") {
      L.circleMarker([s.lat, s.lon], { radius: 8, color: "#6a1b9a", weight: 3, fillOpacity: 0.3 }).addTo(this.overlay);
    } else if (s.geometry) {
      L.geoJSON(s.geometry, { style: { color: "#6a1b9a", weight: 3, fillOpacity: 0.15 } }).addTo(this.overlay);
    }
    const place = s.parcel ? `${t("site.parcel")} ${s.parcel.cadastral_number}${s.parcel.address ? ` · ${s.parcel.address}` : ""}`
      : `${t("site.point")} ${s.lat.toFixed(5)}, ${s.lon.toFixed(5)}`;
    const rows = out.components.map((c) => {
      const known = c.status === "ok";
      const facts = c.factors.map((f) => `<li data-factor="${escapeHtml(f.key)}" title="${escapeHtml(f.why)}">
          ${escapeHtml(factorLabel(f.key))}:
          ${escapeHtml(rawText(f))}${f.score === null ? "" : ` → ${formatValue(f.score)}`}</li>`).join("");
      return `<li class="site-component" data-key="${escapeHtml(c.key)}" data-status="${escapeHtml(c.status)}">
        <div class="site-head"><strong>${escapeHtml(t(`site.c.${c.key}`))}</strong>
          <span class="site-score">${known ? formatValue(c.score) : escapeHtml(t("site.unknown"))}</span></div>
        <meter min="0" max="100" low="25" high="75" optimum="100" value="${known ? c.score : 0}"
               aria-label="${escapeHtml(t(`site.c.${c.key}`))}"></meter>
        <div class="site-weight">${escapeHtml(t("site.weight"))} ${pct(c.weight)}${known && c.weight_used !== c.weight
          ? ` → ${escapeHtml(t("site.used"))} ${pct(c.weight_used)}` : ""}</div>
        <p class="site-why">${escapeHtml(c.why)}</p>
        <ul class="site-facts">${facts}</ul></li>`;
    }).join("");
    box.innerHTML = `<p class="site-place">${escapeHtml(place)}</p>
      <p class="site-total"><span>${escapeHtml(t("site.score"))}</span> <strong id="site-score">${formatValue(out.score)}</strong>
        <span class="site-grade" data-grade="${escapeHtml(out.grade)}">${escapeHtml(t(`site.grade.${out.grade}`))}</span></p>
      <ul class="site-components">${rows}</ul>
      ${out.notes.map((n) => `<p class="edit-status site-note">${escapeHtml(n)}</p>`).join("")}`;
  }
}
