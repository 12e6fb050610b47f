// auxtune dashboard: what every page shares. The API token (when the server has auth on) is typed once, kept
// in this browser's localStorage and sent as "Authorization: Bearer …" on every API call; no cookie is set, so
// no other site can make this browser act on the API. Every text from the server goes into the page as text
// (textContent), never as HTML.
"use strict";

const AUX = (() => {
  const body = document.body;
  const API = body.dataset.api;
  const AUTH_ON = body.dataset.auth === "on";
  const POLL_MS = Number(body.dataset.pollMs) || 2000;
  const KEY = "auxtune.token";
  const tokenListeners = [];

  const token = () => localStorage.getItem(KEY) || "";

  class HttpError extends Error {
    constructor(status, detail) {
      super(detail.map((d) => d.msg).join("; ") || `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function request(method, path, options = {}) {
    const headers = { Accept: options.accept || "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const init = { method, headers };
    if (options.json !== undefined) {
      init.body = JSON.stringify(options.json);
      headers["Content-Type"] = "application/json";
    } else if (options.text !== undefined) {
      init.body = options.text;
      headers["Content-Type"] = "text/plain; charset=utf-8";
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      throw new HttpError(0, [{ loc: [], msg: `the server did not answer (${err.message}); is it still running?` }]);
    }
    if (!response.ok) {
      let detail = [];
      try {
        detail = (await response.json()).detail || [];
      } catch (_) { /* not JSON */ }
      if (typeof detail === "string") detail = [{ loc: [], msg: detail }];
      const error = new HttpError(response.status, detail);
      if (response.status === 401) askForToken(error.message);
      throw error;
    }
    return options.accept && options.accept !== "application/json" ? response.blob() : response.json();
  }

  // -- the token form in the header --------------------------------------------------------------------------
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const message = document.getElementById("token-message");
  const stateLabel = document.getElementById("token-state");
  const forget = document.getElementById("token-forget");

  function showTokenState() {
    if (!AUTH_ON) {
      stateLabel.textContent = "auth off (--no-auth)";
      form.hidden = true;
      forget.hidden = true;
      return;
    }
    stateLabel.textContent = token() ? "token in use" : "";
    form.hidden = Boolean(token()) && !message.textContent;
    forget.hidden = !token();
  }

  function askForToken(why) {
    message.textContent = why || "";
    form.hidden = false;
    input.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    localStorage.setItem(KEY, value);
    input.value = "";
    message.textContent = "";
    showTokenState();
    tokenListeners.forEach((fn) => fn());
  });
  forget.addEventListener("click", () => {
    localStorage.removeItem(KEY);
    showTokenState();
    askForToken("token forgotten; paste one to see your studies");
  });
  showTokenState();
  if (AUTH_ON && !token()) askForToken("this server needs an API token (printed by its first start)");

  // -- small DOM and formatting helpers ------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const num = (x, digits = 4) => (x === null || x === undefined ? "" : Number(x).toFixed(digits));
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const duration = (s) => (s === null || s === undefined ? "" : s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`);

  function showError(error) {
    const box = document.getElementById("page-error");
    if (!box) return;
    box.hidden = !error;
    box.textContent = error ? (error.status ? `${error.status}: ` : "") + error.message : "";
  }

  // Calls ``step`` now and then every ``ms`` (slower while the tab is hidden); ``step`` returns the next delay
  // in ms, or nothing for the default. ``poke()`` runs it at once (or right after the run in progress).
  function poll(step, ms = POLL_MS) {
    let timer = null;
    let running = false;
    let again = false;
    async function run() {
      clearTimeout(timer);
      if (running) {
        again = true;
        return;
      }
      running = true;
      let next = ms;
      try {
        next = (await step()) || ms;
        showError(null);
      } catch (error) {
        showError(error);
      } finally {
        running = false;
        timer = setTimeout(run, again ? 0 : document.hidden ? Math.max(next, 10000) : next);
        again = false;
      }
    }
    run();
    return { poke: run };
  }

  return {
    API, AUTH_ON, POLL_MS, HttpError, el, num, when, duration, showError, poll,
    get: (path) => request("GET", path),
    post: (path, options) => request("POST", path, options),
    blob: (path, accept) => request("GET", path, { accept }),
    onToken: (fn) => tokenListeners.push(fn),
  };
})();
