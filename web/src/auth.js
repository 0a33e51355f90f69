// Who is using the map: sign in / sign out, and the role and territory shown in the header.
import { request, setCsrf, escapeHtml } from "./api.js";
import { t } from "./i18n.js";

export async function whoAmI() {
  const { data } = await request("/auth/me");
  setCsrf(data.csrf_token);
  return data;
}

export function describe(me) {
  if (me.anonymous) return { name: t("citizen"), detail: "" };
  const grants = me.grants.map((g) => [t(`role.${g.role}`), g.territory?.name, g.sector].filter(Boolean).join(" · "));
  return { name: me.display_name || me.login, detail: grants.join("; ") };
}

export function renderUser(me, onChange) {
  const box = document.getElementById("user-box");
  const who = describe(me);
  box.innerHTML = `<div class="who" data-testid="who"><span>${escapeHtml(who.name)}</span>
    <small>${escapeHtml(who.detail)}</small></div>
    <button type="button" id="${me.anonymous ? "login-btn" : "logout-btn"}">${escapeHtml(me.anonymous ? t("login") : t("logout"))}</button>`;
  box.querySelector("button").onclick = () => (me.anonymous ? loginDialog(onChange) : logout(onChange));
}

function loginDialog(onChange) {
  const dialog = document.getElementById("dialog");
  dialog.innerHTML = `<form method="dialog" id="login-form">
      <h2 id="dialog-title">${escapeHtml(t("login.title"))}</h2>
      <label for="login-name">${escapeHtml(t("login.login"))}</label>
      <input id="login-name" name="login" autocomplete="username" required>
      <label for="login-password">${escapeHtml(t("login.password"))}</label>
      <input id="login-password" name="password" type="password" autocomplete="current-password" required>
      <div class="message error" id="login-error" hidden></div>
      <div class="actions"><button type="submit" class="primary">${escapeHtml(t("login"))}</button>
      <button type="button" id="login-cancel">${escapeHtml(t("cancel"))}</button></div></form>`;
  const form = dialog.querySelector("form");
  dialog.querySelector("#login-cancel").onclick = () => dialog.close();
  form.onsubmit = async (e) => {
    e.preventDefault();
    const error = dialog.querySelector("#login-error");
    try {
      await request("/login", { method: "POST", body: { login: form.login.value, password: form.password.value } });
      dialog.close();
      await onChange();
    } catch (err) {
      error.textContent = err.status === 401 || err.status === 403 ? t("login.failed") : err.message;
      error.hidden = false;
    }
  };
  dialog.showModal();
  dialog.querySelector("#login-name").focus();
}

async function logout(onChange) {
  await request("/logout", { method: "POST", body: {} });
  await onChange();
}
