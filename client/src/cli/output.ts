/** Tables (cli-table3) for people, JSON for scripts (`--json`). Results go to stdout; progress and notes to stderr. */
import Table from "cli-table3";
import type { Message } from "../types.ts";
import { valueText } from "../values.ts";

export function printTable(head: string[], rows: (string | number | undefined)[][]): void {
  const table = new Table({ head, style: { head: process.stdout.isTTY ? ["cyan"] : [], border: process.stdout.isTTY ? ["grey"] : [] } });
  for (const row of rows) table.push(row.map((c) => (c === undefined ? "" : String(c))));
  process.stdout.write(table.toString() + "\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

/** A note for the person at the terminal (stderr, so stdout stays the data). */
export function note(text: string): void {
  process.stderr.write(text + "\n");
}

/** One message per line: ndjson with --json, else `partition@offset [key] value`. */
export function printMessage(m: Message & { attempt?: number }, json: boolean): void {
  if (json) {
    printJson(m);
    return;
  }
  const key = m.key === undefined ? "" : ` key=${m.key}`;
  const attempt = m.attempt === undefined || m.attempt === 1 ? "" : ` attempt=${m.attempt}`;
  process.stdout.write(`${m.partition}@${m.offset}${key}${attempt} ${valueText(m)}\n`);
}

export const time = (ms: number | undefined) => (ms === undefined ? "" : new Date(ms).toISOString());

export function bytes(n: number | undefined): string {
  if (n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
