// Turns a layer style from /map/config (layers/styles.py) into Leaflet path options and legend entries.
import { t, currentLang } from "./i18n.js";

function classify(by, props) {
  if (!by || !props) return null;
  const value = props[by.property];
  if (value === null || value === undefined) return by.other;
  if (by.type === "graduated") {
    const hit = by.classes.find((c) => value >= c.min && value <= c.max);
    return hit ? hit.color : by.other;
  }
  const text = String(value);
  const hit = by.match === "prefix"
    ? by.categories.filter((c) => text.startsWith(c.value)).sort((a, b) => b.value.length - a.value.length)[0]
    : by.categories.find((c) => c.value === text);
  return hit ? hit.color : by.other;
}

export function pathOptions(style, props) {
  const colour = classify(style.by, props);
  const fill = colour || style.fill || style.color;
  const opts = {
    color: style.kind === "fill" ? style.color : (colour || style.color),
    weight: style.weight ?? 1, opacity: 1, dashArray: style.dash || null,
    fill: style.kind !== "line", fillColor: fill, fillOpacity: style.opacity ?? 0.5,
  };
  if (style.kind === "point") {
    Object.assign(opts, { radius: style.radius || 6, color: "#ffffff", weight: 1.5, fillColor: colour || style.color,
      fillOpacity: style.opacity ?? 0.9 });
  }
  return opts;
}

export function legendEntries(style) {
  const ru = currentLang() === "ru";
  const by = style.by;
  if (!by) return [];
  const entries = by.type === "graduated"
    ? by.classes.map((c) => ({ label: c.label, color: c.color }))
    : by.categories.map((c) => ({ label: (ru && c.label_ru) || c.label, color: c.color }));
  entries.push({ label: t("other"), color: by.other });
  return entries;
}

export function swatchClass(style) {
  return style.kind === "line" ? "swatch line" : style.kind === "point" ? "swatch point" : "swatch";
}
