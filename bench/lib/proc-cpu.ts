/**
 * CPU time of a process and of the local processes at the other end of its TCP connections
 * (Postgres backends, s3rver...), of this process's other children and of itself, from /proc
 * (Linux only). On a shared machine this tells which
 * process actually burned the CPU during a phase, which a wall-clock CPU profile cannot: a
 * profile also counts the time a thread spent preempted inside a syscall.
 *
 *   const a = cpuSnapshot(serverPid); ...phase...; const b = cpuSnapshot(serverPid);
 *   cpuDelta(a, b)  → { wallSeconds: 4, seconds: { server: 3.9, postgres: 1.4, "node bench/s3-server.ts": 0.3, client: 0.8 },
 *                       sysSeconds: { ... } }
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux that matters

export interface ProcessCpu {
  pid: number;
  /** What the process is: "postgres", "node <script>", ... */
  label: string;
  /** utime + stime of all its threads, seconds. */
  seconds: number;
  /** stime alone: time in the kernel (syscalls, network stack). */
  sysSeconds: number;
  /** Start time in clock ticks since boot (tells a reused pid apart). */
  started: number;
}

export interface CpuSnapshot {
  at: number;
  processes: ProcessCpu[];
}

function stat(pid: number, path = `/proc/${pid}/stat`): { seconds: number; sysSeconds: number; started: number } | null {
  try {
    const text = readFileSync(path, "utf8");
    // Fields after the command (which may contain spaces) start after the last ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // f[0] is field 3 (state): utime = field 14, stime = field 15, starttime = field 22.
    return {
      seconds: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND,
      sysSeconds: Number(f[12]) / TICKS_PER_SECOND,
      started: Number(f[19]),
    };
  } catch {
    return null;
  }
}

function label(pid: number): string {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    if (comm !== "node" && comm !== "MainThread") return comm;
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const script = args.find((a) => /\.(ts|js|mjs)$/.test(a) && !a.includes("node_modules"));
    return script ? `node ${script.split("/").slice(-2).join("/")}` : "node";
  } catch {
    return "?";
  }
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of entries(`/proc/${pid}/fd`)) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith("socket:[")) out.add(link.slice(8, -1));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

interface TcpEntry {
  local: string;
  remote: string;
  inode: string;
}

function tcpTable(): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      out.push({ local: f[1], remote: f[2], inode: f[9] });
    }
  }
  return out;
}

/** Pids of the local processes holding the other end of `pid`'s TCP connections. */
export function tcpPeers(pid: number): number[] {
  const mine = socketInodes(pid);
  const table = tcpTable();
  const wanted = new Set<string>();
  for (const e of table) if (mine.has(e.inode) && !/^0+:0000$/.test(e.remote)) wanted.add(`${e.remote}>${e.local}`);
  const peerInodes = new Set(table.filter((e) => wanted.has(`${e.local}>${e.remote}`) && e.inode !== "0").map((e) => e.inode));
  if (peerInodes.size === 0) return [];
  const peers: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === pid) continue;
    for (const inode of socketInodes(Number(name))) {
      if (peerInodes.has(inode)) {
        peers.push(Number(name));
        break;
      }
    }
  }
  return peers;
}

/** Pids of the direct children of `ppid`. */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1]) === ppid) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * CPU time right now of `pid` (labelled "server", and its main thread alone as "server main
 * thread", which is included in "server"), of its TCP peers, of the other children of this
 * process (s3rver...) and of this process ("client").
 */
export function cpuSnapshot(pid: number): CpuSnapshot {
  const processes: ProcessCpu[] = [];
  const pids = new Set([pid, ...tcpPeers(pid), ...childPids(process.pid), process.pid]);
  for (const p of pids) {
    const s = stat(p);
    if (s) processes.push({ pid: p, label: p === pid ? "server" : p === process.pid ? "client" : label(p), ...s });
  }
  // The JavaScript thread: near 1 s per wall second means the server is CPU-bound.
  const main = stat(pid, `/proc/${pid}/task/${pid}/stat`);
  if (main) processes.push({ pid: -pid, label: "server main thread", ...main });
  return { at: performance.now(), processes };
}

export interface CpuUse {
  wallSeconds: number;
  /** CPU seconds per label (user + system). */
  seconds: Record<string, number>;
  /** Of which in the kernel. */
  sysSeconds: Record<string, number>;
}

/**
 * CPU seconds per label between two snapshots. A process seen only in `after` (a connection
 * opened during the phase) counts with all its CPU time; one seen only in `before` (closed
 * during the phase) is lost.
 */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  const seconds: Record<string, number> = {};
  const sysSeconds: Record<string, number> = {};
  for (const p of after.processes) {
    const b = before.processes.find((q) => q.pid === p.pid && q.started === p.started);
    seconds[p.label] = (seconds[p.label] ?? 0) + p.seconds - (b?.seconds ?? 0);
    sysSeconds[p.label] = (sysSeconds[p.label] ?? 0) + p.sysSeconds - (b?.sysSeconds ?? 0);
  }
  const round = (r: Record<string, number>) => {
    for (const k of Object.keys(r)) r[k] = Number(r[k].toFixed(2));
    for (const k of Object.keys(r)) if (seconds[k] === 0) delete r[k];
    return r;
  };
  round(sysSeconds);
  return { wallSeconds: Number(((after.at - before.at) / 1000).toFixed(2)), seconds: round(seconds), sysSeconds };
}

/** CPU seconds (user + system) of each thread of `pid`, by thread id. */
export function threadSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of entries(`/proc/${pid}/task`)) {
    const s = stat(pid, `/proc/${pid}/task/${tid}/stat`);
    if (s) out.set(Number(tid), s.seconds);
  }
  return out;
}

/**
 * CPU seconds per thread of `pid` between two threadSeconds() readings: the main thread, the
 * busiest other thread (on the embedded stack, the PGlite thread: it runs every statement), and
 * the rest (libuv's pool, V8's GC and compiler threads).
 */
export function threadDelta(pid: number, before: Map<number, number>, after: Map<number, number>) {
  const deltas = [...after].map(([tid, s]) => ({ tid, seconds: s - (before.get(tid) ?? 0) }));
  const main = deltas.find((d) => d.tid === pid)?.seconds ?? 0;
  const others = deltas.filter((d) => d.tid !== pid).sort((a, b) => b.seconds - a.seconds);
  const busiest = others[0]?.seconds ?? 0;
  const rest = others.slice(1).reduce((n, d) => n + d.seconds, 0);
  const r = (x: number) => Number(x.toFixed(2));
  return { main: r(main), busiestOther: r(busiest), rest: r(rest) };
}

/** A /proc folder's entries; none once the process has gone. */
function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
