// The study page's "Trust" panel (issue #7): the confirmation (arms side by side, comparisons, the verdict) or
// how to ask for one, the task affinity with the tasks to drop, and the class pairs whose confusion changed
// most. study.js calls AUX_TRUST.draw(state) on every changed poll; the figures (fig-confirmation,
// fig-affinity, fig-confusion) are drawn by study.js with the page's other figures, only when they changed.
"use strict";

const AUX_TRUST = (() => {
  const { el, num } = AUX;
  const $ = (id) => document.getElementById(id);
  const meanStd = (s) => (s.mean === null ? "" : `${num(s.mean)} ± ${num(s.std || 0)} (n=${s.n})`);
  const params = (arm) => JSON.stringify(arm.effective_lambdas ? { ...arm.params, effective: arm.effective_lambdas } : arm.params);

  function fill(table, rows) {
    $(table).hidden = !rows.length;
    $(`${table}-body`).replaceChildren(...rows);
  }

  function drawConfirmation(trust) {
    const c = trust.confirmation;
    $("trust-confirmation").textContent = c ? `Confirmation (${c.state}): ${c.verdict_line}` : trust.request.text;
    $("trust-confirmation").className = c && c.verdict ? "" : "muted";
    const lines = c ? c.ablation_lines || [] : [];  // one line per aux task: helps, no detectable effect, hurts
    $("trust-ablation").hidden = !lines.length;
    $("trust-ablation").replaceChildren(...lines.map((line) => el("li", { text: line })));
    fill("trust-arms", c ? c.arms.map((a) => el("tr", {},
      el("td", { text: a.arm }), el("td", { text: a.kind }), el("td", { class: "reason", text: params(a) }),
      el("td", { class: "num", text: `${a.counts.complete} / ${a.seeds}` }),
      el("td", { class: "num", text: meanStd(a.val) }), el("td", { class: "num", text: meanStd(a.test) }))) : []);
    fill("trust-comparisons", c ? c.comparisons.map((x) => el("tr", {},
      el("td", { text: x.arm }), el("td", { text: x.against }),
      el("td", { class: "num", text: num(x.test.difference) }),
      el("td", { class: "num", text: x.test.ci_low === null ? "" : `${num(x.test.ci_low)} … ${num(x.test.ci_high)}` }),
      el("td", { class: "num", text: x.test.p_value === null ? "" : Number(x.test.p_value).toPrecision(3) }),
      el("td", { text: x.test.verdict || "not enough runs" }))) : []);
  }

  function drawAffinity(trust) {
    const a = trust.affinity;
    $("trust-affinity").textContent = a ? `${a.trials} trials measured it. ${a.advice.join(" · ")}`
      : "no trial has measured task affinity yet";
    fill("trust-affinity-table", a ? a.summary.map((r) => el("tr", {},
      el("td", { text: r.task }), el("td", { class: "num", text: num(r.affinity) }),
      el("td", { class: "num", text: r.ci_low === null || r.ci_low === undefined ? "" : `${num(r.ci_low)} … ${num(r.ci_high)}` }),
      el("td", { class: "num", text: r.trials }),
      el("td", { class: "num", text: r.negative_in }),
      el("td", {}, r.advice ? el("span", { class: `badge ${r.advice === "keep" ? "passed" : r.advice === "no advice" ? "" : "failed"}`, text: r.advice_from === "ablation" ? `${r.advice} (ablation)` : r.advice }) : ""))) : []);
  }

  function drawErrors(trust) {
    const e = trust.confirmation && trust.confirmation.error_analysis;
    $("trust-errors").textContent = e
      ? `test-split confusion summed over ${e.runs.baseline} baseline and ${e.runs.best} best runs; largest changes first`
      : "confusion changes appear once baseline and best runs of a confirmation finish";
    const pct = (x) => `${(100 * x).toFixed(1)} %`;
    fill("trust-errors-table", e ? e.pairs.map((p) => el("tr", {},
      el("td", { text: p.true }), el("td", { text: p.predicted }), el("td", { class: "num", text: pct(p.baseline) }),
      el("td", { class: "num", text: pct(p.best) }),
      el("td", { class: "num", text: `${p.change > 0 ? "+" : ""}${pct(p.change)}` }))) : []);
  }

  function draw(state) {
    drawConfirmation(state.trust);
    drawAffinity(state.trust);
    drawErrors(state.trust);
    for (const name of ["confirmation", "affinity", "confusion"]) $(`box-${name}`).hidden = !state.figures[name];
  }

  return { draw };
})();
