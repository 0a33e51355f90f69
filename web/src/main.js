// CDT map client: starts from /auth/me and /map/config, then everything is the OGC API and /search.
import { getJSON, toast } from "./api.js";
import { t, translatePage, currentLang, setLang } from "./i18n.js";
import { whoAmI, renderUser } from "./auth.js";
import { LayerManager } from "./layers.js";
import { initSearch } from "./search.js";
import { Editor } from "./editor.js";
import { Analysis } from "./analysis.js";
import { Energy } from "./energy.js";
import { Plan } from "./plan.js";
import { SitePanel } from "./site.js";

// leaflet.vectorgrid 1.3 calls L.DomEvent.fakeStop, which Leaflet 1.8 removed; this is what it did.
if (!L.DomEvent.fakeStop) L.DomEvent.fakeStop = (e) => { e._stopped = true; };

const app = { map: null, config: null, me: null, layers: null, editor: null };
window.cdt = app;  // for the console and the browser tests

function coordinatesControl(map) {
  const Control = L.Control.extend({
    onAdd() {
      const el = L.DomUtil.create("div", "coords");
      el.setAttribute("aria-live", "off");
      const show = (ll) => { el.textContent = `${ll.lat.toFixed(5)}, ${ll.lng.toFixed(5)} · z${map.getZoom()}`; };
      map.on("mousemove", (e) => show(e.latlng));
      map.on("moveend", () => show(map.getCenter()));
      map.whenReady(() => show(map.getCenter()));
      return el;
    },
  });
  return new Control({ position: "bottomleft" });
}

function fitBbox(bbox, maxZoom = 17) {
  if (!bbox) return;
  app.map.fitBounds([[bbox[1], bbox[0]], [bbox[3], bbox[2]]], { maxZoom });
}

app.goTo = async (result) => {
  if (result.bbox) fitBbox(result.bbox, result.kind === "territory" ? 14 : 17);
  else if (result.center) app.map.setView([result.center[1], result.center[0]], 17);
  if (result.kind === "territory" || !result.center) return;
  const entry = app.layers.entries.get(result.collection);
  if (entry && !entry.visible) await app.layers.setVisible(result.collection, true);
  await app.layers.openFeature(result.collection, result.id, L.latLng(result.center[1], result.center[0]));
};

function renderTerritories() {
  const select = document.getElementById("territory-select");
  select.innerHTML = `<option value="">${t("territory.label")}…</option>` + app.config.territories
    .map((p) => `<option value="${p.oktmo}">${p.name}</option>`).join("");
  select.onchange = () => {
    const place = app.config.territories.find((p) => p.oktmo === select.value);
    if (place) fitBbox(place.bbox, 14);
  };
}

async function loadSession(first = false) {
  app.me = await whoAmI();
  app.config = await getJSON("/map/config");
  renderUser(app.me, () => loadSession());
  renderTerritories();
  if (first) {
    const home = app.config.home;
    if (home) fitBbox(home.bbox, 14);
    else app.map.setView([55.75, 37.62], 10);
    app.layers.config = app.config;
    app.layers.setBasemap(app.config.basemaps.online ? "online" : "offline");
  }
  app.layers.config = app.config;
  app.editor.configure(app.config, app.me);
  app.analysis.configure(app.config, app.me);
  // the Energy tab fills itself when first opened (its balances are not needed for the map)
  document.getElementById("tab-energy").addEventListener("click", () => app.energy.configure(), { once: true });
  document.getElementById("tab-plan").addEventListener("click", () => app.plan.configure(), { once: true });
  await app.layers.build();
}

function initChrome() {
  const panel = document.getElementById("panel");
  const toggle = document.getElementById("panel-toggle");
  if (window.matchMedia("(max-width: 760px)").matches) {
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
  }
  toggle.onclick = () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    app.map.invalidateSize();
  };
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.onclick = () => {
      for (const other of tabs) {
        other.setAttribute("aria-selected", String(other === tab));
        document.getElementById(other.getAttribute("aria-controls")).hidden = other !== tab;
      }
      // a balance table and its Sankey need room: the panel widens while the Energy tab is open
      panel.classList.toggle("wide", tab.id === "tab-energy" || tab.id === "tab-plan");
      app.map.invalidateSize();
    };
  }
  const lang = document.getElementById("lang-toggle");
  lang.textContent = currentLang() === "ru" ? "EN" : "RU";
  lang.onclick = () => { setLang(currentLang() === "ru" ? "en" : "ru"); window.location.reload(); };
}

async function main() {
  performance.mark("cdt:start");
  translatePage();
  initChrome();
  const map = L.map("map", { zoomControl: true, preferCanvas: false, minZoom: 3 });
  app.map = map;
  L.control.scale({ imperial: false, position: "bottomright" }).addTo(map);
  coordinatesControl(map).addTo(map);
  app.layers = new LayerManager(map, null);
  map.on("zoomend", () => app.layers.updateZoomNotes());
  app.editor = new Editor(app);
  app.analysis = new Analysis(app);
  app.energy = new Energy(app);
  app.plan = new Plan(app);
  app.site = new SitePanel(app);
  initSearch(app);
  await loadSession(true);
  performance.mark("cdt:ready");
  document.body.dataset.ready = "true";
}

window.addEventListener("unhandledrejection", (e) => toast(t("error.generic", { msg: e.reason?.message || e.reason }), "error"));
main().catch((err) => {
  console.error(err);
  toast(t("error.generic", { msg: err.message }), "error", 10000);
});
