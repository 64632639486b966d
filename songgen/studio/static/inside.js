// songgen studio, Inside: POST /api/explain with a pasted text and the sampling settings on the
// left; the answer has, per character, the model's likeliest choices and their probability as
// the model gave it, after the song shape's rules, and in the end (temperature, top-k/top-p).
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
    const item = answer.items[i], box = $("inside-choices");
    $("inside-out").querySelectorAll("span.sel").forEach((s) => s.classList.remove("sel"));
    $("inside-out").querySelector(`span[data-i="${i}"]`).classList.add("sel");
    box.textContent = "";
    const h = document.createElement("h3");
    if (item.unknown) {
      h.textContent = `${JSON.stringify(item.char)}: never seen by the model (not read)`;
      box.appendChild(h);
      return;
    }
    const s = answer.steps;
    h.textContent = `${name(answer.chars[item.id])}: p = ${pct(item.p)} from the model, ` +
      `${pct(item.p_final)} as songgen would draw it`;
    box.appendChild(h);
    const steps = document.createElement("p");
    steps.className = "hint";
    steps.textContent = `Steps: shape ${s.shape}, temperature ${s.temperature}, top-k ${s.top_k || "off"}, ` +
      `top-p ${s.top_p < 1 ? s.top_p : "off"}. Rhyme, chorus and words choose among whole lines and are not shown here.`;
    box.appendChild(steps);
    if (item.rules.length) {
      const ul = document.createElement("ul");
      ul.className = "rules";
      for (const r of item.rules) { const li = document.createElement("li"); li.textContent = "shape: " + r; ul.appendChild(li); }
      box.appendChild(ul);
    }
    const table = document.createElement("table");
    const head = table.insertRow();
    for (const t of ["choice", "model", "after shape", "drawn from", "what the steps did"]) {
      const th = document.createElement("th"); th.textContent = t; head.appendChild(th);
    }
    for (const [id, pm, ps, pf, note] of item.choices) {
      const tr = table.insertRow();
      if (id === item.id) tr.className = "actual";
      [name(answer.chars[id]), pct(pm), pct(ps), pct(pf), note].forEach((t, j) => {
        const td = tr.insertCell(); td.textContent = t;
        td.className = j === 4 ? "note" : j ? "num" : "";
      });
    }
    box.appendChild(table);
  }

  async function explain() {
    const body = Object.assign(params({}), { text: $("inside-text").value });
    delete body.style;  // the unstyled model's choices
    $("explain-btn").disabled = true;
    showError("inside-error", "");
    try {
      const res = await fetch("/api/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
      if (!res.ok) { showError("inside-error", data.error || `${res.status}`); return; }
      answer = data;
      render();
      $("inside-choices").textContent = "Click a character to see the choices the model had there.";
    } catch (e) {
      showError("inside-error", String(e));
    } finally {
      $("explain-btn").disabled = false;
    }
  }

  $("explain-btn").addEventListener("click", explain);
  $("inside-out").addEventListener("click", (e) => {
    if (e.target.dataset && e.target.dataset.i !== undefined) open(+e.target.dataset.i);
  });
})();
