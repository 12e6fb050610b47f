// The study page, updated live: every POLL_MS the page asks whether the study changed (``since=<version>``: an
// unchanged study answers in a few bytes) and redraws only what changed; the page is never reloaded.
"use strict";

(() => {
  const { el, num, duration } = AUX;
  const ID = Number(document.body.dataset.study);
  const BASE = `/dashboard/studies/${ID}`;
  const TERMINAL = new Set(["done", "failed", "cancelled"]);
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const view = {
    version: null, study: null, best: null, complete: null, completeSeen: null,
    table: { sort: "number", order: "asc", state: "", offset: 0, limit: 50, version: null, query: null, rows: [] },
    selected: new Set(), curvesQuery: null, curvesRunning: false,
    figures: {}, figureKeys: {}, drawnKeys: {}, shown: false, rendered: false,
  };
  const $ = (id) => document.getElementById(id);

  // plotly.js (4.8 MB, seconds to parse on a slow machine) is loaded once the study's numbers and table are
  // shown, so that they never wait for it.
  let loadPlotly;
  const plotlyReady = new Promise((resolve, reject) => {
    loadPlotly = () => {
      if (document.getElementById("plotly-js")) return;
      const script = el("script", { id: "plotly-js", src: document.body.dataset.plotly });
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("plotly.js did not load from this server")));
      document.head.append(script);
    };
  });

  async function plot(id, figure) {
    await plotlyReady;
    return Plotly.react($(id), figure.data, figure.layout, PLOT_CONFIG);
  }

  // One figure after the other, each only if it changed since drawn (the server sends a key per figure):
  // the page stays responsive while a running study's figures are redrawn.
  async function drawFigures() {
    for (const [name, key] of Object.entries(view.figureKeys || {})) {
      if (view.drawnKeys[name] === key) continue;
      const start = performance.now();
      await plot(`fig-${name}`, view.figures[name]);
      performance.measure(`auxtune:draw:${name}`, { start, end: performance.now() });
      view.drawnKeys[name] = key;
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page handle input between figures
    }
  }

  function mark(name, attribute) {
    performance.mark(name);
    document.body.dataset[attribute] = "1";
  }

  // -- header, best λ, sanity panel ------------------------------------------------------------------------------
  function drawHeader(state) {
    const s = state.study;
    document.title = `${s.name} · auxtune`;
    $("study-name").textContent = `${s.name}`;
    $("study-status").textContent = s.status;
    $("study-status").className = `badge ${s.status}`;
    $("study-reason").hidden = !s.status_reason;
    $("study-reason").textContent = s.status_reason ? `Why ${s.status}: ${s.status_reason}` : "";
    $("progress-bar").style.width = `${state.total ? Math.min(100, (100 * state.finished) / state.total) : 0}%`;
    $("progress-text").textContent = `${state.finished} / ${state.total} trials finished · ${s.metric} (${s.direction})`;
    $("study-counts").textContent = Object.entries(state.counts).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(" · ");
    $("btn-pause").disabled = !["queued", "running"].includes(s.status);
    $("btn-resume").disabled = s.status !== "paused";
    $("btn-cancel").disabled = !["queued", "running", "paused"].includes(s.status);
  }

  function drawBest(state) {
    // A multi-objective study has no single best λ: the panel says so and how to pick from the front.
    const best = state.pareto ? null : state.best;
    view.best = best;
    $("best-title").textContent = state.pareto ? "Best λ: a Pareto front" : "Best λ so far";
    $("best-lambdas").hidden = !best;
    $("btn-copy-best").disabled = !best;
    $("best-summary").textContent = state.pareto
      ? (state.pareto.count ? `no single best λ: ${state.pareto.how_to_pick}` : "no completed trial yet")
      : best
        ? `trial ${best.trial}${best.control ? ` (${best.control})` : ""}: ${state.study.metric} = ${num(best.value)}`
        : "no completed trial yet";
    $("best-lambdas").textContent = best ? JSON.stringify(best.lambdas, null, 2)
      + (best.params ? `\nparams: ${JSON.stringify(best.params)}` : "") : "";
    $("controls-summary").textContent = state.controls.length ? "controls: " + state.controls.map((c) =>
      `${c.label} (trial ${c.trial}) ${c.value === null ? c.state : num(c.value)}`).join(" · ") : "";
  }

  function drawSanity(state) {
    const s = state.sanity;
    $("sanity-counts").textContent = `${s.passed} passed · ${s.failed} failed`;
    $("sanity-study").hidden = !s.study_gate;
    $("sanity-study").textContent = s.study_gate ? `Study-level gate: ${s.study_gate}` : "";
    $("sanity-table").hidden = !s.groups.length;
    $("sanity-body").replaceChildren(...s.groups.map((g) => el("tr", {},
      el("td", { text: g.check }),
      el("td", { class: "num", text: g.count, title: `e.g. trials ${g.trials.join(", ")}` }),
      el("td", { class: "reason", text: g.example }))));
  }

  // -- the Pareto front of a multi-objective study (its figure is drawn with the others, as fig-pareto) --------
  function drawPareto(state) {
    const p = state.pareto;
    view.paretoState = state;
    $("pareto-panel").hidden = !p;
    if (!p) return;
    $("pareto-how").textContent = p.count
      ? `${p.count} of ${p.complete} complete trials are on the front: none beats another on every objective ` +
        `(${p.metrics.map((m, i) => `${m} ${p.directions[i]}`).join(", ")}); how to pick one is in the best-λ panel.`
      : "no trial has completed yet";
    const names = p.front.length ? Object.keys(p.front[0].lambdas) : [];
    const bestOn = {};
    Object.entries(p.best_by_objective).forEach(([metric, trial]) => { (bestOn[trial] = bestOn[trial] || []).push(metric); });
    $("pareto-head").replaceChildren(...["trial", ...p.metrics.map((m, i) => `${m} ${p.directions[i] === "maximize" ? "↑" : "↓"}`),
      ...names.map((n) => `λ ${n}`), "best on"].map((label) => el("th", { text: label })));
    $("pareto-body").replaceChildren(...(p.front.length ? p.front.map((t) => el("tr", {
      dataset: { trial: t.trial }, class: view.selected.has(t.trial) ? "selected sortable" : "sortable",
      title: `overlay the curves of trial ${t.trial}`, onclick: () => select(t.trial, !view.selected.has(t.trial)),
    }, el("td", { class: "num", text: t.trial }), ...p.metrics.map((m) => el("td", { class: "num", text: num(t.values[m]) })),
    ...names.map((n) => el("td", { class: "num", text: num(t.lambdas[n], 3) })),
    el("td", { class: "muted", text: (bestOn[t.trial] || []).join(", ") })))
      : [el("tr", {}, el("td", { colspan: 20, class: "muted", text: "no trial has completed yet" }))]));
  }

  async function refreshState() {
    const since = view.version ? `?since=${encodeURIComponent(view.version)}` : "";
    const state = await AUX.get(`${BASE}${since}`);
    $("study-warning").hidden = !state.warning; // drawn on every poll: workers die without changing the study
    $("study-warning").textContent = state.warning ? `No worker: ${state.warning}` : "";
    if (state.unchanged) return false;
    view.version = state.version;
    view.study = state.study;
    drawHeader(state);
    drawBest(state);
    drawPareto(state);
    drawSanity(state);
    AUX_TRUST.draw(state);
    view.figures = state.figures;
    view.figureKeys = state.figure_keys;
    view.complete = state.counts.complete;
    return true;
  }

  // -- the trial table -------------------------------------------------------------------------------------------
  function columns(names) {
    // A searched training param (search.params) is stored as param.<name>: its column is headed by its name.
    const label = (n) => (n.startsWith("param.") ? n.slice("param.".length) : `λ ${n}`);
    return [["", null], ["#", "number"], ...names.map((n) => [label(n), `lambda:${n}`]), ["value", "value"],
      ["state", "state"], ["sanity gate", null], ["attempt", "attempt"], ["worker", "worker"], ["duration", "seconds"]];
  }

  function drawHead(names) {
    const t = view.table;
    $("trials-head").replaceChildren(...columns(names).map(([label, key]) => el("th", {
      text: label, class: key ? `sortable${t.sort === key ? ` sorted-${t.order}` : ""}` : null, dataset: key ? { sort: key } : {},
      onclick: key ? () => {
        t.order = t.sort === key && t.order === "asc" ? "desc" : "asc";
        t.sort = key;
        t.offset = 0;
        tick.poke();
      } : null,
    })));
  }

  function sanityCell(row) {
    if (!row.sanity) return el("td", { class: "muted", text: row.state === "queued" ? "" : "not run" });
    return el("td", { class: "reason" }, el("span", { class: `badge ${row.sanity.passed ? "passed" : "failed"}`,
      text: row.sanity.passed ? "passed" : "failed" }), row.sanity.reason ? ` ${row.sanity.reason}` : "");
  }

  function drawRow(row, names) {
    const box = el("input", { type: "checkbox", checked: view.selected.has(row.number), "aria-label": `select trial ${row.number}`,
      onchange: (e) => select(row.number, e.target.checked) });
    return el("tr", { dataset: { trial: row.number, state: row.state }, class: view.selected.has(row.number) ? "selected" : null },
      el("td", {}, box),
      el("td", { class: "num" }, `${row.number}`, row.control ? el("span", { class: "badge control", text: row.control }) : null),
      ...names.map((n) => el("td", { class: "num", text: typeof row.lambdas[n] === "string" ? row.lambdas[n]
        : num(row.lambdas[n], 3) })),
      el("td", { class: "num", text: num(row.value) }),
      el("td", { title: row.reason || null }, el("span", { class: `badge ${row.state}`, text: row.state })),
      sanityCell(row),
      el("td", { class: "num", text: row.attempt }),
      el("td", { text: row.worker || "" }),
      el("td", { class: "num", text: duration(row.seconds) }));
  }

  async function refreshTable() {
    const t = view.table;
    const q = new URLSearchParams({ sort: t.sort, order: t.order, offset: t.offset, limit: t.limit });
    if (t.state) q.set("state", t.state);
    const query = q.toString();
    if (query === t.query && t.version) q.set("since", t.version);
    const page = await AUX.get(`${BASE}/trials?${q}`);
    if (page.unchanged) return;
    t.version = page.version;
    t.query = query;
    t.rows = page.data;
    drawHead(page.lambda_names);
    $("trials-body").replaceChildren(...(page.data.length ? page.data.map((r) => drawRow(r, page.lambda_names))
      : [el("tr", {}, el("td", { colspan: 20, class: "muted", text: "no trial in this view yet" }))]));
    const last = Math.min(t.offset + t.limit, page.count);
    $("trials-range").textContent = page.count ? `${t.offset + 1}–${last} of ${page.count}` : "0 trials";
    $("trials-prev").disabled = t.offset === 0;
    $("trials-next").disabled = last >= page.count;
  }

  // -- curves of the selected trials (controls + best when none is selected) -------------------------------------
  function select(number, on) {
    if (on && view.selected.size >= 10) {
      AUX.showError(new Error("at most 10 trials can be overlaid; untick one first"));
      view.table.version = null; // redraw the ticks as they are
      tick.poke();
      return;
    }
    if (on) view.selected.add(number); else view.selected.delete(number);
    if (view.paretoState) drawPareto(view.paretoState);
    view.table.version = null; // redraw the ticks
    tick.poke();
  }

  async function refreshCurves(changed) {
    const q = new URLSearchParams();
    [...view.selected].sort((a, b) => a - b).forEach((n) => q.append("trial", n));
    const query = q.toString();
    // Curves grow while a shown trial runs: re-read them on every change of the study and while one runs.
    if (query === view.curvesQuery && !changed && !view.curvesRunning) return;
    const curves = await AUX.get(`${BASE}/curves${query ? `?${query}` : ""}`);
    view.curvesQuery = query;
    view.curvesRunning = curves.trials.some((t) => t.state === "running");
    $("curves-note").textContent = (view.selected.size ? "selected: " : "controls + best: ") +
      curves.trials.map((t) => `#${t.number} (${t.state}, ${t.epochs} epochs)`).join(", ");
    await plot("fig-curves", curves.figure);
  }

  // -- the live workers and their devices (GET /workers: they change without changing the study) ----------------
  async function refreshWorkers() {
    const live = (await AUX.get("/workers")).data.filter((w) => w.alive);
    const text = JSON.stringify(live.map((w) => [w.id, w.device_label, w.current_study_id, w.current_trial]));
    if (text === view.workersDrawn) return;
    view.workersDrawn = text;
    $("workers-summary").textContent = live.length ? `${live.length} live worker${live.length > 1 ? "s" : ""}` : "no live worker";
    $("workers-body").replaceChildren(...live.map((w) => el("tr", { dataset: { worker: w.id } },
      el("td", { text: w.id }), el("td", { text: w.host }), el("td", { class: "device", text: w.device_label || w.device }),
      el("td", { class: "num", text: w.current_study_id === ID && w.current_trial !== null ? w.current_trial : "" }))));
    $("workers-table").hidden = !live.length;
  }

  // -- one poll ---------------------------------------------------------------------------------------------------
  // First the numbers and the table (no plotly needed: "auxtune:shown"), then the figures and the curves
  // ("auxtune:rendered"); later polls redraw only what changed.
  async function step() {
    const [changed] = await Promise.all([refreshState(), refreshTable(), refreshWorkers().catch(AUX.showError)]);
    if (!view.shown) {
      view.shown = true;
      mark("auxtune:shown", "shown");
      loadPlotly();
    }
    if (changed) await drawFigures();
    if (view.complete !== view.completeSeen) { // fANOVA takes a while: asked for last, drawn when it comes
      view.completeSeen = view.complete;
      AUX.get(`${BASE}/importance`).then((imp) => plot("fig-importance", imp.figure)).catch(AUX.showError);
    }
    await refreshCurves(changed);
    if (!view.rendered) {
      view.rendered = true;
      mark("auxtune:rendered", "rendered");
    }
    return view.study && TERMINAL.has(view.study.status) ? 10000 : AUX.POLL_MS;
  }
  const tick = AUX.poll(step);
  AUX.onToken(() => { view.version = null; view.table.version = null; view.completeSeen = null; tick.poke(); });

  // -- buttons ------------------------------------------------------------------------------------------------------
  async function transition(verb) {
    const name = view.study ? view.study.name : `study ${ID}`;
    if (verb === "cancel" && !window.confirm(`Cancel ${name} for good? Running trials may finish; no new trial starts.`)) return;
    try {
      await AUX.post(`/studies/${ID}/${verb}`);
      view.version = null;
      tick.poke();
    } catch (error) {
      AUX.showError(error);
    }
  }
  $("btn-pause").addEventListener("click", () => transition("pause"));
  $("btn-resume").addEventListener("click", () => transition("resume"));
  $("btn-cancel").addEventListener("click", () => transition("cancel"));

  $("state-filter").addEventListener("change", (e) => {
    view.table.state = e.target.value;
    view.table.offset = 0;
    tick.poke();
  });
  $("trials-prev").addEventListener("click", () => {
    view.table.offset = Math.max(0, view.table.offset - view.table.limit);
    tick.poke();
  });
  $("trials-next").addEventListener("click", () => {
    view.table.offset += view.table.limit;
    tick.poke();
  });
  $("btn-clear-selection").addEventListener("click", () => {
    view.selected.clear();
    view.table.version = null;
    tick.poke();
  });

  $("btn-copy-best").addEventListener("click", async () => {
    const text = JSON.stringify(view.best ? view.best.lambdas : {});
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) { // no clipboard permission: select the text so that Ctrl-C copies it
      const range = document.createRange();
      range.selectNodeContents($("best-lambdas"));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      document.execCommand("copy");
    }
    $("copy-status").textContent = "copied";
    setTimeout(() => { $("copy-status").textContent = ""; }, 2000);
  });

  // With auth on, a plain link cannot send the token: fetch the JSON and show it in a new tab instead.
  $("best-link").addEventListener("click", async (event) => {
    if (!AUX.AUTH_ON) return;
    event.preventDefault();
    try {
      const best = await AUX.get(`/studies/${ID}/best`);
      const url = URL.createObjectURL(new Blob([JSON.stringify(best, null, 2)], { type: "application/json" }));
      window.open(url, "_blank", "noopener");
    } catch (error) {
      AUX.showError(error);
    }
  });

  $("btn-report").addEventListener("click", async () => {
    try {
      const blob = await AUX.blob(`/studies/${ID}/report.html`, "text/html");
      const link = el("a", { href: URL.createObjectURL(blob), download: `${view.study ? view.study.name : ID}-report.html` });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      AUX.showError(error);
    }
  });
})();
