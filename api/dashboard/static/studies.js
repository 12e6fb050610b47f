// The studies page: every study (polled), and submitting a study from a pasted YAML/JSON spec.
"use strict";

(() => {
  const { el, num, when } = AUX;
  const PAGE = 50;
  const view = { offset: 0, status: "" };

  // -- the list --------------------------------------------------------------------------------------------------
  function progress(study) {
    const pct = study.n_trials ? Math.min(100, (100 * study.finished) / study.n_trials) : 0;
    const bar = el("div", { class: "progress" }, el("div"));
    bar.firstChild.style.width = `${pct}%`;
    return el("td", {}, bar, el("span", { class: "muted", text: `${study.finished} / ${study.n_trials}` +
      (study.running ? ` · ${study.running} running` : "") }));
  }

  function lambdas(best) {
    if (!best) return "";
    return Object.entries(best.lambdas).map(([k, v]) => `${k}=${num(v, 3)}`).join(", ");
  }

  // A multi-objective study has no single best: its row says how many trials are on the Pareto front so far,
  // over which objectives, and sends to the study page for the trade-offs.
  function front(study) {
    const p = study.pareto;
    const over = p.metrics.map((m, i) => `${m} ${p.directions[i] === "maximize" ? "↑" : "↓"}`).join(", ");
    const title = study.best ? `best ${study.best.primary_objective} alone (primary objective): ` +
      `${num(study.best.value)} at trial ${study.best.trial}` : null;
    return [
      el("td", { class: "num pareto-count", title, text: p.complete ? `Pareto front: ${p.count}` : "" }),
      el("td", { class: "pareto-over" }, `trials on the front of ${over} · `,
        el("a", { href: study.links.page, text: "trade-offs on the study page" })),
    ];
  }

  function row(study) {
    return el("tr", { dataset: { study: study.id } },
      el("td", { class: "num", text: study.id }),
      el("td", {}, el("a", { href: study.links.page, text: study.name })),
      el("td", {}, el("span", { class: `badge ${study.status}`, text: study.status, title: study.status_reason || null })),
      progress(study),
      ...(study.pareto ? front(study) : [el("td", { class: "num", text: study.best ? num(study.best.value) : "" }),
        el("td", { text: lambdas(study.best) })]),
      el("td", { text: when(study.created_at) }),
      el("td", { text: when(study.updated_at) }),
      el("td", {}, el("a", { href: study.links.page, text: "dashboard" }), " · ",
        el("a", { href: study.links.api, text: "JSON", target: "_blank", rel: "noopener" }), " · ",
        el("a", { href: study.links.best, text: "best", target: "_blank", rel: "noopener" })));
  }

  async function refresh() {
    const q = new URLSearchParams({ offset: view.offset, limit: PAGE });
    if (view.status) q.set("status", view.status);
    const page = await AUX.get(`/dashboard/studies?${q}`);
    const tbody = document.getElementById("studies-body");
    tbody.replaceChildren(...(page.data.length ? page.data.map(row)
      : [el("tr", {}, el("td", { colspan: 9, class: "muted", text: "no study yet: submit one below" }))]));
    const last = Math.min(view.offset + PAGE, page.count);
    document.getElementById("studies-range").textContent = page.count ? `${view.offset + 1}–${last} of ${page.count}` : "";
    document.getElementById("studies-prev").disabled = view.offset === 0;
    document.getElementById("studies-next").disabled = last >= page.count;
    document.body.dataset.rendered = "1";
    return 5000;
  }

  const poller = AUX.poll(refresh, 5000);
  AUX.onToken(poller.poke);
  document.getElementById("status-filter").addEventListener("change", (e) => {
    view.status = e.target.value;
    view.offset = 0;
    poller.poke();
  });
  document.getElementById("studies-prev").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - PAGE);
    poller.poke();
  });
  document.getElementById("studies-next").addEventListener("click", () => {
    view.offset += PAGE;
    poller.poke();
  });

  // -- submitting: the text is parsed by the server (YAML or JSON), then posted to /studies like any client ------
  const text = document.getElementById("spec-text");
  const gutter = document.getElementById("spec-gutter");
  const notes = document.getElementById("spec-notes");
  const list = document.getElementById("spec-errors");
  const status = document.getElementById("spec-status");
  const LINE = 20; // px, the editor's line height (--editor-line)
  let errorLines = new Set();

  function drawGutter() {
    const n = text.value.split("\n").length;
    gutter.replaceChildren(...Array.from({ length: n }, (_, i) =>
      el("span", { class: errorLines.has(i + 1) ? "err" : null, text: `${errorLines.has(i + 1) ? "● " : ""}${i + 1}\n` })));
    gutter.scrollTop = text.scrollTop;
    for (const note of notes.children) note.style.top = `${8 + (Number(note.dataset.line) - 1) * LINE - text.scrollTop}px`;
  }

  function field(loc) {
    const parts = (loc || []).slice(loc && ["body", "query", "path"].includes(loc[0]) ? 1 : 0);
    return parts.join(".");
  }

  // The line of ``path`` or of its nearest parent that the text has (a missing field: its parent's line).
  function lineOf(path, lines) {
    const match = /^line (\d+)/.exec(path);
    if (match) return Number(match[1]);
    for (let parts = path.split("."); parts.length && parts[0] !== ""; parts.pop()) {
      const key = parts.join(".");
      if (lines[key]) return lines[key];
    }
    return 1;
  }

  function showErrors(detail, lines) {
    errorLines = new Set();
    notes.replaceChildren();
    list.replaceChildren();
    for (const item of detail) {
      const path = field(item.loc);
      const line = lineOf(path || item.msg, lines || {});
      errorLines.add(line);
      const label = path || "spec";
      notes.append(el("div", { class: "note", dataset: { field: label, line }, title: `${label}: ${item.msg}` },
        el("b", { text: label }), `: ${item.msg}`));
      list.append(el("li", { dataset: { field: label, line } }, el("code", { text: label }), ` (line ${line}): ${item.msg}`));
    }
    drawGutter();
  }

  async function submit() {
    status.textContent = "checking…";
    showErrors([], {});
    let parsed = null;
    try {
      parsed = await AUX.post("/dashboard/spec", { text: text.value });
      const created = await AUX.post("/studies", { json: parsed.document });
      status.textContent = "";
      list.replaceChildren(el("li", { class: "muted" }, "created: ",
        el("a", { href: `/dashboard/studies/${created.id}`, text: `${created.name} (id ${created.id})` })));
      poller.poke();
    } catch (error) {
      status.textContent = error.status ? `refused (${error.status})` : "";
      showErrors(error.detail && error.detail.length ? error.detail : [{ loc: [], msg: error.message }],
        parsed ? parsed.lines : {});
    }
  }

  text.addEventListener("input", drawGutter);
  text.addEventListener("scroll", drawGutter);
  document.getElementById("spec-submit").addEventListener("click", submit);
  drawGutter();
})();
