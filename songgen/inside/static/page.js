// songgen explain: the page. Everything it shows comes from the JSON in #data (written by
// songgen/inside/page.py); nothing is fetched.
"use strict";

const D = JSON.parse(document.getElementById("data").textContent);
const TYPES = { ids: Uint16Array, logp: Float32Array, top_ids: Uint16Array,
                top_logp: Float32Array, rest_logp: Float32Array, restart: Uint8Array,
                cells: Int8Array };
const A = {};
for (const [name, type] of Object.entries(TYPES)) {
  const raw = atob(D.arrays[name]);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  A[name] = new type(bytes.buffer);
}
const N = D.n, K = D.k, CELLS = D.cell_names.length;
const textBox = document.getElementById("text");
const panel = document.getElementById("panel");
const tempInput = document.getElementById("temp");
let mode = "surprise", cell = 0, pinned = -1, shown = -1;

// How a symbol is written: the end of a song is no character of the text.
function label(id) {
  const c = D.chars[id];
  if (c === "") return "[end of song]";
  if (c === "\n") return "\u21b5 (new line)";
  if (c === " ") return "\u2423 (space)";
  if (c === "\t") return "\u21e5 (tab)";
  return c;
}

// The choices at character i at temperature t: the kept choices and "the rest", whose mass at
// t is estimated as if its symbols were equally likely (its exact share is known at t = 1).
function choices(i, t) {
  const others = D.known - K;
  const logits = [];
  for (let j = 0; j < K; j++) logits.push(A.top_logp[i * K + j] / t);
  const rest = A.rest_logp[i];
  const restLogit = others > 0 && isFinite(rest) ? Math.log(others) + (rest - Math.log(others)) / t : -Infinity;
  const top = Math.max(...logits, restLogit);
  let total = Math.exp(restLogit - top);
  const weights = logits.map(l => { const w = Math.exp(l - top); total += w; return w; });
  return { p: weights.map(w => w / total), rest: Math.exp(restLogit - top) / total };
}

function surpriseColour(i) {
  if (A.ids[i] >= D.known) return "";
  const bits = -A.logp[i] / Math.LN2;  // 0 bits: expected; 8 or more: very surprised
  const x = Math.min(bits / 8, 1);
  return `hsl(${Math.round(120 - 120 * x)}, 80%, ${Math.round(92 - 22 * x)}%)`;
}

function cellColour(i) {
  const v = A.cells[i * CELLS + cell] / 127;
  const a = Math.min(Math.abs(v), 1).toFixed(2);
  return v >= 0 ? `rgba(220, 60, 40, ${a})` : `rgba(40, 90, 220, ${a})`;
}

function build() {
  const frag = document.createDocumentFragment();
  for (let i = 0; i < N; i++) {
    const id = A.ids[i], c = D.chars[id];
    const span = document.createElement("span");
    span.dataset.i = i;
    if (c === "") { span.textContent = "\u2302end"; span.className = "end"; }
    else if (c === "\n") { span.textContent = "\u21b5"; span.className = "nl"; }
    else span.textContent = c;
    if (id >= D.known) span.classList.add("unknown");
    if (A.restart[i]) span.classList.add("restart");
    frag.appendChild(span);
    if (c === "\n") frag.appendChild(document.createTextNode("\n"));
    if (c === "") frag.appendChild(document.createTextNode("\n\n"));
  }
  textBox.appendChild(frag);
}

function paint() {
  const colour = mode === "surprise" ? surpriseColour : cellColour;
  const spans = textBox.querySelectorAll("span");
  for (let i = 0; i < spans.length; i++) spans[i].style.background = colour(i);
  legend();
}

function legend() {
  const box = document.getElementById("legend");
  box.textContent = mode === "surprise"
    ? "Colour: surprise, -log2 p of each character at temperature 1: green 0 bits (expected), "
      + "red 8 bits or more. A dotted character is one the model never saw (not scored). "
      + "A blue left edge: read from a blank state, as songgen eval reads a long text in stretches."
    : `Colour: the value of cell ${D.cell_names[cell]} after reading each character, `
      + "tanh of its cell state: red positive, blue negative, white near 0.";
}

function row(name, p, pt, actual) {
  const tr = document.createElement("tr");
  if (actual) tr.className = "actual";
  const cells = [name, (100 * p).toFixed(2) + "%", (100 * pt).toFixed(2) + "%"];
  cells.forEach((text, j) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (j) td.className = "num";
    tr.appendChild(td);
  });
  const bar = document.createElement("td");
  const b = document.createElement("span");
  b.className = "bar";
  b.style.width = (60 * pt).toFixed(1) + "px";
  bar.appendChild(b);
  tr.appendChild(bar);
  return tr;
}

function show(i) {
  if (i < 0 || i >= N) return;
  shown = i;
  const t = parseFloat(tempInput.value);
  const id = A.ids[i];
  panel.textContent = "";
  const h = document.createElement("h2");
  h.textContent = `Character ${i + 1} of ${N}: `;
  const code = document.createElement("code");
  code.className = "ch";
  code.textContent = label(id);
  h.appendChild(code);
  panel.appendChild(h);
  const p = document.createElement("p");
  p.className = "prob";
  if (id >= D.known) p.textContent = "Never seen by the model: not scored (p is none); the "
    + "model reads the text without it, so these are its choices for the next character.";
  else {
    const pr = Math.exp(A.logp[i]);
    p.textContent = `p = ${pr.toPrecision(4)} at temperature 1 (${(-A.logp[i] / Math.LN2).toFixed(2)} bits of surprise)`;
  }
  panel.appendChild(p);
  if (A.restart[i]) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "Read from a blank state: songgen eval reads a long text in stretches.";
    panel.appendChild(note);
  }
  const at1 = choices(i, 1), atT = choices(i, t);
  const table = document.createElement("table");
  const head = document.createElement("tr");
  ["choice", "t = 1", `t = ${t.toFixed(2)}`, ""].forEach(text => {
    const th = document.createElement("th");
    th.textContent = text;
    head.appendChild(th);
  });
  table.appendChild(head);
  for (let j = 0; j < K; j++) {
    const c = A.top_ids[i * K + j];
    table.appendChild(row(label(c), at1.p[j], atT.p[j], c === id));
  }
  table.appendChild(row(`the other ${D.known - K}`, at1.rest, atT.rest, false));
  panel.appendChild(table);
  if (mode === "cell") {
    const v = document.createElement("p");
    v.textContent = `Cell ${D.cell_names[cell]}: ${(A.cells[i * CELLS + cell] / 127).toFixed(2)}`;
    panel.appendChild(v);
  }
}

function select(i) {
  textBox.querySelectorAll("span.sel").forEach(s => s.classList.remove("sel"));
  pinned = i;
  if (i >= 0) textBox.querySelectorAll("span")[i].classList.add("sel");
  show(i);
}

function fillCells() {
  const pick = document.getElementById("cell");
  for (const [name, f] of Object.entries(D.features)) {
    const group = document.createElement("optgroup");
    group.label = `Follows ${f.what}` + (f.cells.length ? "" : " (not in this text)");
    for (const [c, r] of f.cells) {
      const o = document.createElement("option");
      o.value = c;
      o.textContent = `${D.cell_names[c]} (r = ${r.toFixed(2)}) ${name}`;
      group.appendChild(o);
    }
    pick.appendChild(group);
  }
  const all = document.createElement("optgroup");
  all.label = "Every cell kept";
  D.cell_names.forEach((name, c) => {
    const o = document.createElement("option");
    o.value = c;
    o.textContent = name;
    all.appendChild(o);
  });
  pick.appendChild(all);
  document.getElementById("cell-note").textContent = CELLS < D.cells_total
    ? `${CELLS} of ${D.cells_total} cells kept (the suggested ones and the most active)`
    : `${D.cells_total} cells`;
  pick.addEventListener("change", () => { cell = parseInt(pick.value, 10); paint(); if (shown >= 0) show(shown); });
  cell = parseInt(pick.value, 10) || 0;
}

document.getElementById("about").textContent =
  `${D.source}, ${N.toLocaleString()} characters, read by ${D.checkpoint}: ` +
  `loss ${D.loss.toFixed(4)} nats/char (${(D.loss / Math.LN2).toFixed(4)} bits/char), ` +
  "as songgen eval scores it.";
build();
fillCells();
paint();
textBox.addEventListener("mouseover", e => {
  if (pinned < 0 && e.target.dataset && e.target.dataset.i !== undefined) show(+e.target.dataset.i);
});
textBox.addEventListener("click", e => {
  if (e.target.dataset && e.target.dataset.i !== undefined) {
    const i = +e.target.dataset.i;
    select(pinned === i ? -1 : i);
    if (pinned < 0) show(i);
  }
});
document.addEventListener("keydown", e => {
  if (pinned < 0 || e.target.tagName === "SELECT" || e.target.tagName === "INPUT") return;
  if (e.key === "ArrowRight") select(Math.min(pinned + 1, N - 1));
  else if (e.key === "ArrowLeft") select(Math.max(pinned - 1, 0));
});
tempInput.addEventListener("input", () => {
  document.getElementById("temp-value").textContent = parseFloat(tempInput.value).toFixed(2);
  if (shown >= 0) show(shown);
});
document.querySelectorAll("input[name=mode]").forEach(r => r.addEventListener("change", () => {
  mode = document.querySelector("input[name=mode]:checked").value;
  document.getElementById("cell-pick").hidden = mode !== "cell";
  paint();
  if (shown >= 0) show(shown);
}));
