/** Bar charts by hour as plain SVG (no library, no inline style: the CSP allows none). */
import { fmt, h, s } from "./dom.ts";

export interface Point {
  hour: number;
  value: number;
}

const W = 640;
const H = 160;
const PAD = { left: 56, right: 8, top: 10, bottom: 24 };

export function barChart(title: string, points: Point[], format: (n: number) => string = fmt.int): HTMLElement {
  const max = Math.max(1, ...points.map((p) => p.value));
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const step = points.length > 0 ? innerW / points.length : innerW;
  const barW = Math.max(1, step * 0.8);
  const total = points.reduce((n, p) => n + p.value, 0);
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${format(total)} over ${points.length} hours`, class: "chart" },
    s("line", { x1: PAD.left, y1: PAD.top + innerH, x2: W - PAD.right, y2: PAD.top + innerH, class: "axis" }),
    s("text", { x: PAD.left - 6, y: PAD.top + 10, "text-anchor": "end", class: "tick" }, format(max)),
    s("text", { x: PAD.left - 6, y: PAD.top + innerH, "text-anchor": "end", class: "tick" }, "0"),
    ...points.map((p, i) => {
      const barH = (p.value / max) * innerH;
      return s(
        "rect",
        { x: PAD.left + i * step + (step - barW) / 2, y: PAD.top + innerH - barH, width: barW, height: barH, class: "bar" },
        s("title", {}, `${fmt.time(p.hour)}: ${format(p.value)}`),
      );
    }),
    ...(points.length > 0
      ? [
          s("text", { x: PAD.left, y: H - 6, class: "tick" }, fmt.time(points[0].hour).slice(5, 16)),
          s(
            "text",
            { x: W - PAD.right, y: H - 6, "text-anchor": "end", class: "tick" },
            fmt.time(points[points.length - 1].hour).slice(5, 16),
          ),
        ]
      : []),
  );
  return h("figure", { class: "chart-box" }, h("figcaption", {}, `${title} — total ${format(total)}`), svg);
}
