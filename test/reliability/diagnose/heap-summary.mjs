/**
 * A heap snapshot's summary (docs/reliability.md, anomaly 6), without DevTools: self size by
 * constructor; retained sizes from the dominator tree (Cooper, Harvey and Kennedy's iteration over
 * a postorder, weak edges left out) of the largest objects; and for each class named on the
 * command line, each instance's retained size and what it dominates, by constructor.
 *   node --max-old-space-size=6000 test/reliability/diagnose/heap-summary.mjs <file.heapsnapshot> [Class...]
 * Snapshots: memory-probe.mjs, or node --heapsnapshot-signal=SIGUSR2 (RESERVOIR_SOAK_NODE_ARGS).
 */
import { readFileSync } from "node:fs";
const [file, ...watch] = process.argv.slice(2);
const snap = JSON.parse(readFileSync(file, "utf8"));
const m = snap.snapshot.meta;
const NF = m.node_fields.length,
  EF = m.edge_fields.length;
const nType = m.node_fields.indexOf("type"),
  nName = m.node_fields.indexOf("name"),
  nSelf = m.node_fields.indexOf("self_size"),
  nEc = m.node_fields.indexOf("edge_count");
const eType = m.edge_fields.indexOf("type"),
  eTo = m.edge_fields.indexOf("to_node");
const nodeTypes = m.node_types[0],
  edgeTypes = m.edge_types[0];
const weak = edgeTypes.indexOf("weak"),
  shortcut = edgeTypes.indexOf("shortcut");
const nodes = snap.nodes,
  edges = snap.edges,
  strings = snap.strings;
const N = nodes.length / NF;
const firstEdge = new Uint32Array(N + 1);
for (let i = 0, e = 0; i < N; i++) {
  firstEdge[i] = e;
  e += nodes[i * NF + nEc] * EF;
  firstEdge[i + 1] = e;
}
const label = (i) => {
  const t = nodeTypes[nodes[i * NF + nType]];
  const nm = strings[nodes[i * NF + nName]];
  return t === "object" || t === "closure" || t === "native" ? (t === "object" ? nm : `(${t}) ${nm}`) : `(${t})`;
};
// DFS postorder from root 0, skipping weak edges
const order = new Int32Array(N).fill(-1);
const post = new Int32Array(N);
let pc = 0;
const stack = new Int32Array(N);
const iter = new Uint32Array(N);
let sp = 0;
stack[sp++] = 0;
iter[0] = firstEdge[0];
order[0] = -2;
while (sp) {
  const v = stack[sp - 1];
  const e = iter[v];
  if (e < firstEdge[v + 1]) {
    iter[v] = e + EF;
    const t = edges[e + eType];
    if (t === weak || t === shortcut) continue;
    const w = edges[e + eTo] / NF;
    if (order[w] === -1) {
      order[w] = -2;
      iter[w] = firstEdge[w];
      stack[sp++] = w;
    }
  } else {
    sp--;
    order[v] = pc;
    post[pc++] = v;
  }
}
// predecessors
const predCount = new Uint32Array(N + 1);
for (let v = 0; v < N; v++)
  if (order[v] >= 0)
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += EF) {
      const t = edges[e + eType];
      if (t === weak || t === shortcut) continue;
      predCount[edges[e + eTo] / NF]++;
    }
const predStart = new Uint32Array(N + 1);
for (let i = 0; i < N; i++) predStart[i + 1] = predStart[i] + predCount[i];
const preds = new Uint32Array(predStart[N]);
const fill = predStart.slice(0, N);
for (let v = 0; v < N; v++)
  if (order[v] >= 0)
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += EF) {
      const t = edges[e + eType];
      if (t === weak || t === shortcut) continue;
      const w = edges[e + eTo] / NF;
      preds[fill[w]++] = v;
    }
// Cooper-Harvey-Kennedy on postorder numbers
const idom = new Int32Array(N).fill(-1);
idom[0] = 0;
const intersect = (a, b) => {
  while (a !== b) {
    while (order[a] < order[b]) a = idom[a];
    while (order[b] < order[a]) b = idom[b];
  }
  return a;
};
for (let changed = true; changed; ) {
  changed = false;
  for (let k = pc - 1; k >= 0; k--) {
    const v = post[k];
    if (v === 0) continue;
    let nd = -1;
    for (let p = predStart[v]; p < predStart[v + 1]; p++) {
      const u = preds[p];
      if (idom[u] === -1) continue;
      nd = nd === -1 ? u : intersect(u, nd);
    }
    if (nd !== -1 && idom[v] !== nd) {
      idom[v] = nd;
      changed = true;
    }
  }
}
const retained = new Float64Array(N);
for (let k = 0; k < pc; k++) {
  const v = post[k];
  retained[v] += nodes[v * NF + nSelf];
  if (v !== 0) retained[idom[v]] += retained[v];
}
const MiB = (b) => (b / 1048576).toFixed(2);
console.log(`nodes ${N}, reachable ${pc}, total self ${MiB(retained[0])} MiB`);
// self by constructor
const agg = new Map();
for (let k = 0; k < pc; k++) {
  const v = post[k];
  const l = label(v);
  const a = agg.get(l) ?? { n: 0, self: 0 };
  a.n++;
  a.self += nodes[v * NF + nSelf];
  agg.set(l, a);
}
console.log("== self size by constructor (top 40)");
for (const [l, a] of [...agg].sort((x, y) => y[1].self - x[1].self).slice(0, 40))
  console.log(`${MiB(a.self).padStart(9)} MiB ${String(a.n).padStart(8)}  ${l.slice(0, 100)}`);
// biggest retainers that are objects (not dominated by a bigger same-label one), with dominator chain
console.log("== largest retained objects (top 25)");
const cand = [];
for (let k = 0; k < pc; k++) {
  const v = post[k];
  if (retained[v] > 1 << 20) cand.push(v);
}
cand.sort((a, b) => retained[b] - retained[a]);
const chain = (v) => {
  const out = [];
  for (let x = idom[v], d = 0; x !== 0 && d < 6; x = idom[x], d++) out.push(label(x).slice(0, 40));
  return out.join(" < ");
};
for (const v of cand.slice(0, 25)) console.log(`${MiB(retained[v]).padStart(9)} MiB  ${label(v).slice(0, 60)}  [dom: ${chain(v)}]`);
for (const w of watch) {
  console.log(`== ${w}`);
  for (let k = 0; k < pc; k++) {
    const v = post[k];
    if (strings[nodes[v * NF + nName]] === w && nodeTypes[nodes[v * NF + nType]] === "object")
      console.log(`  retained ${MiB(retained[v])} MiB  [dom: ${chain(v)}]`);
  }
}
// breakdown of what each watched object dominates, by label
for (const w of watch) {
  for (let k = 0; k < pc; k++) {
    const root = post[k];
    if (strings[nodes[root * NF + nName]] !== w || nodeTypes[nodes[root * NF + nType]] !== "object") continue;
    const by = new Map();
    for (let j = 0; j < pc; j++) {
      const v = post[j];
      let x = v,
        d = 0;
      while (x !== 0 && x !== root && d < 40) {
        x = idom[x];
        d++;
      }
      if (x !== root) continue;
      const l = label(v);
      const a = by.get(l) ?? { n: 0, self: 0 };
      a.n++;
      a.self += nodes[v * NF + nSelf];
      by.set(l, a);
    }
    console.log(`== dominated by ${w} (${MiB(retained[root])} MiB)`);
    for (const [l, a] of [...by].sort((x, y) => y[1].self - x[1].self).slice(0, 15))
      console.log(`${MiB(a.self).padStart(9)} MiB ${String(a.n).padStart(8)}  ${l.slice(0, 80)}`);
  }
}
