/**
 * The PNG chart of a comparison run (bench/results/latest.png): per workload, each system's
 * max-rate publish throughput, and its fixed-rate end-to-end latency (p50 and p99). Drawn as
 * SVG and rendered with resvg (system fonts; DejaVu Sans where present).
 */
import { Resvg } from "@resvg/resvg-js";
import type { RunResult } from "./result.ts";

const COLORS: Record<string, string> = {
  "reservoir-s3": "#1f77b4",
  "reservoir-embedded": "#6baed6",
  "nats-jetstream": "#2ca02c",
  rabbitmq: "#ff7f0e",
  "pg-boss": "#9467bd",
  "s3-put-baseline": "#7f7f7f",
};

const escapeXml = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
const fmt = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(x >= 10_000 ? 0 : 1)}k` : x >= 10 ? x.toFixed(0) : x.toFixed(1));

interface Bar {
  label: string;
  value: number;
  /** A second, lighter value drawn past the first (p99 beyond p50). */
  extra?: number;
  color: string;
}

/** One panel of horizontal bars, scaled to its own maximum; returns SVG and its height. */
function panel(title: string, unit: string, bars: Bar[], x: number, y: number, width: number): { svg: string; height: number } {
  const rowH = 18;
  const labelW = 150;
  const barW = width - labelW - 140;
  const max = Math.max(1e-9, ...bars.map((b) => b.extra ?? b.value));
  let svg = `<text x="${x}" y="${y + 14}" font-size="13" font-weight="bold">${escapeXml(title)}</text>`;
  bars.forEach((b, i) => {
    const top = y + 24 + i * rowH;
    const w = (b.value / max) * barW;
    svg += `<text x="${x + labelW - 6}" y="${top + 12}" font-size="11" text-anchor="end">${escapeXml(b.label)}</text>`;
    if (b.extra !== undefined) {
      svg += `<rect x="${x + labelW}" y="${top + 2}" width="${(b.extra / max) * barW}" height="${rowH - 5}" fill="${b.color}" opacity="0.35"/>`;
    }
    svg += `<rect x="${x + labelW}" y="${top + 2}" width="${w}" height="${rowH - 5}" fill="${b.color}"/>`;
    const text = b.extra !== undefined ? `${fmt(b.value)} / ${fmt(b.extra)} ${unit}` : `${fmt(b.value)} ${unit}`;
    svg += `<text x="${x + labelW + Math.max(w, b.extra !== undefined ? (b.extra / max) * barW : 0) + 4}" y="${top + 12}" font-size="10">${escapeXml(text)}</text>`;
  });
  return { svg, height: 30 + bars.length * rowH };
}

export function chartPng(runs: RunResult[], caption: string): Buffer {
  const workloads = [...new Set(runs.filter((r) => r.mode !== "backlog-drain").map((r) => r.workload))];
  const colW = 480;
  let body = "";
  let height = 0;
  workloads.forEach((workload, col) => {
    const x = 10 + col * colW;
    const of = (mode: RunResult["mode"]) => runs.filter((r) => r.workload === workload && r.mode === mode && !r.skipped);
    const throughput = panel(
      `${workload}: publish, max rate`,
      "msgs/s",
      of("max-rate").map((r) => ({ label: r.system, value: r.publish!.msgsPerSec, color: COLORS[r.system] ?? "#333" })),
      x,
      40,
      colW - 20,
    );
    const latency = panel(
      `${workload}: end-to-end at a fixed rate`,
      "ms (p50 / p99)",
      of("fixed-rate").map((r) => ({
        label: r.system,
        value: r.endToEnd!.p50Ms ?? 0,
        extra: r.endToEnd!.p99Ms ?? 0,
        color: COLORS[r.system] ?? "#333",
      })),
      x,
      60 + throughput.height,
      colW - 20,
    );
    body += throughput.svg + latency.svg;
    height = Math.max(height, 80 + throughput.height + latency.height);
  });
  const width = 20 + workloads.length * colW;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(caption)}</text>
${body}</svg>`;
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } }).render().asPng();
}
