/** An unlabelled sample of GET /metrics (Prometheus text): its value; throws when it is absent. */
export function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  if (!m) throw new Error(`${name} not in GET /metrics:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}
