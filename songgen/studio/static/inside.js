// songgen studio, Inside: the choices panel, one for two views. POST /api/explain with a pasted
// text and the sampling settings on the left answers, per character, the model's likeliest
// choices and their probability as the model gave it, after the song shape's rules, and in the
// end (temperature, top-k/top-p). A song written in Write with "show the model's choices"
// carries each character's trace (the same choices, and what every step did while it was
// written); its card shows it in this same panel (songgenInside.showTrace, used by studio.js).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let answer = null;

  function name(c) {
    if (c === "") return "[end of song]";
    if (c === "\n") return "\u21b5 new line";
    if (c === " ") return "\u2423 space";
    return c;
  }
  function pct(p) { return p === 0 ? "0" : p < 0.0001 ? "<0.01%" : (100 * p).toFixed(2) + "%"; }

  function colour(item) {
    if (item.unknown) return "#eee";
    const x = Math.min(-Math.log2(Math.max(item.p, 1e-12)) / 8, 1);
    return `hsl(${Math.round(120 - 120 * x)}, 80%, ${Math.round(92 - 22 * x)}%)`;
  }

  // The panel: a heading, a hint, how the line was chosen, the steps' words, and the choices
  // (view.rows: cells under view.columns, the character there marked `actual`).
  function showChoices(box, view) {
    box.textContent = "";
    const h = document.createElement("h3");
    h.textContent = view.heading;
    box.appendChild(h);
    for (const [cls, text] of [["hint", view.hint], ["line", view.line]]) {
      if (!text) continue;
      const p = document.createElement("p");
      p.className = cls;
      p.textContent = text;
      box.appendChild(p);
    }
    if (view.rules && view.rules.length) {
      const ul = document.createElement("ul");
      ul.className = "rules";
      for (const r of view.rules) { const li = document.createElement("li"); li.textContent = r; ul.appendChild(li); }
      box.appendChild(ul);
    }
    if (!view.rows || !view.rows.length) return;
    const table = document.createElement("table");
    const head = table.insertRow();
    for (const t of view.columns) {
      const th = document.createElement("th"); th.textContent = t; head.appendChild(th);
    }
    const last = view.columns.length - 1;
    for (const row of view.rows) {
      const tr = table.insertRow();
      if (row.actual) tr.className = "actual";
      row.cells.forEach((t, j) => {
        const td = tr.insertCell(); td.textContent = t;
        td.className = j === last ? "note" : j ? "num" : "";
      });
    }
    box.appendChild(table);
  }

  // A pasted text's character (/api/explain).
  function pastedView(item) {
    if (item.unknown) return { heading: `${JSON.stringify(item.char)}: never seen by the model (not read)` };
    const s = answer.steps;
    return {
      heading: `${name(answer.chars[item.id])}: p = ${pct(item.p)} from the model, ` +
        `${pct(item.p_final)} as songgen would draw it`,
      hint: `Steps: shape ${s.shape}, temperature ${s.temperature}, top-k ${s.top_k || "off"}, ` +
        `top-p ${s.top_p < 1 ? s.top_p : "off"}. Rhyme, chorus and words choose among whole lines: ` +
        `a song written in Write with "show the model's choices" shows them.`,
      rules: item.rules.map((r) => "shape: " + r),
      columns: ["choice", "model", "after shape", "drawn from", "what the steps did"],
      rows: item.choices.map(([id, pm, ps, pf, note]) => ({
        cells: [name(answer.chars[id]), pct(pm), pct(ps), pct(pf), note], actual: id === item.id })),
    };
  }

  // A written character's trace (the `trace` events of POST /api/write); null: not traced.
  function traceView(t, c) {
    if (t === "prime") return { heading: `${name(c)}: the opening asked for (title and prime), not drawn` };
    if (!t) return { heading: `${name(c)}: not traced (the studio traces the first 5,000 characters of a song)` };
    const drawn = t.p_final === null ? "not drawn" : `${pct(t.p_final)} as songgen drew it`;
    return {
      heading: `${name(t.char)}: p = ${pct(t.p)} from the model, ${drawn}`,
      hint: t.known || "",
      line: t.line || "",
      rules: t.steps.map((e) => `${e.step}: ${e.words.join("; ") || "reshaped the choices"}` +
        (e.forced !== null ? ` (forced ${name(e.forced)})` : e.removed.length ?
          ` (removed ${e.removed.map(name).join(", ")})` : "")),
      columns: ["choice", "model", "drawn from", "what the steps did"],
      rows: t.choices.map(([ch, pm, pf, note]) => ({
        cells: [name(ch), pct(pm), pf === null ? "\u2013" : pct(pf), note], actual: ch === t.char })),
    };
  }
  window.songgenInside = { showTrace: (box, t, c) => showChoices(box, traceView(t, c)) };

  function render() {
    const out = $("inside-out");
    out.textContent = "";
    answer.items.forEach((item, i) => {
      const c = item.unknown ? item.char : answer.chars[item.id];
      const span = document.createElement("span");
      span.dataset.i = i;
      span.textContent = c === "" ? "\u2302end" : c === "\n" ? "\u21b5" : c;
      if (c === "" || c === "\n") span.className = c === "" ? "end" : "nl";
      if (item.unknown) span.classList.add("unknown");
      span.style.background = colour(item);
      out.appendChild(span);
      if (c === "\n") out.appendChild(document.createTextNode("\n"));
      if (c === "") out.appendChild(document.createTextNode("\n\n"));
    });
  }

  function open(i) {
    $("inside-out").querySelectorAll("span.sel").forEach((s) => s.classList.remove("sel"));
    $("inside-out").querySelector(`span[data-i="${i}"]`).classList.add("sel");
    showChoices($("inside-choices"), pastedView(answer.items[i]));
  }

  async function explain() {
    const body = Object.assign(params({}), { text: $("inside-text").value });
    delete body.style;  // the unstyled model's choices
    $("explain-btn").disabled = true;
    showError("inside-error", "");
    try {
      // (api: with the token, where the studio asks for one)
      const res = await api("/api/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      answer = await res.json();
      render();
      $("inside-choices").textContent = "Click a character to see the choices the model had there.";
    } catch (e) {
      showError("inside-error", e.message || String(e));
    } finally {
      $("explain-btn").disabled = false;
    }
  }

  $("explain-btn").addEventListener("click", explain);
  $("inside-out").addEventListener("click", (e) => {
    if (e.target.dataset && e.target.dataset.i !== undefined) open(+e.target.dataset.i);
  });
})();
