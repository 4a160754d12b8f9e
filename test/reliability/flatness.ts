/**
 * The soak's verdict: is a resource "flat after warm-up"? The rule, stated once here and in
 * docs/reliability.md:
 * - the first `warmupShare` of the samples (by time) are warm-up and not judged;
 * - the rest are split into an early and a late half; the late half's median may exceed the early
 *   half's median by at most `relative` (a share) plus `absolute` (the unit of the samples);
 * - and the late half's maximum may exceed the early half's maximum by at most twice that allowance
 *   (a slow leak raises the median, a burst that never comes back down raises the maximum).
 * A leak of a constant rate fails the first rule as soon as it grows more than the allowance over
 * half of the judged time; noise (GC, batch sizes) stays within it.
 */
export interface FlatRule {
  warmupShare: number;
  relative: number;
  absolute: number;
}

export interface FlatVerdict {
  flat: boolean;
  earlyMedian: number;
  lateMedian: number;
  earlyMax: number;
  lateMax: number;
  why: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export function judgeFlat(values: number[], rule: FlatRule): FlatVerdict {
  const judged = values.slice(Math.floor(values.length * rule.warmupShare));
  if (judged.length < 4)
    return {
      flat: false,
      earlyMedian: 0,
      lateMedian: 0,
      earlyMax: 0,
      lateMax: 0,
      why: `only ${judged.length} samples after warm-up (need 4)`,
    };
  const half = Math.floor(judged.length / 2);
  const early = judged.slice(0, half);
  const late = judged.slice(half);
  const earlyMedian = median(early);
  const lateMedian = median(late);
  const earlyMax = Math.max(...early);
  const lateMax = Math.max(...late);
  const allowance = earlyMedian * rule.relative + rule.absolute;
  const reasons: string[] = [];
  if (lateMedian > earlyMedian + allowance)
    reasons.push(`late median ${lateMedian} > early median ${earlyMedian} + ${allowance.toFixed(1)}`);
  if (lateMax > earlyMax + 2 * allowance) reasons.push(`late max ${lateMax} > early max ${earlyMax} + ${(2 * allowance).toFixed(1)}`);
  return { flat: reasons.length === 0, earlyMedian, lateMedian, earlyMax, lateMax, why: reasons.join("; ") || "within the allowance" };
}

/** The rules the soak applies: memory in MiB, descriptors and threads in counts. */
export const RULES = {
  rssMiB: { warmupShare: 0.2, relative: 0.1, absolute: 16 },
  dataMiB: { warmupShare: 0.2, relative: 0.1, absolute: 16 },
  fds: { warmupShare: 0.2, relative: 0, absolute: 4 },
  threads: { warmupShare: 0.2, relative: 0, absolute: 2 },
} satisfies Record<string, FlatRule>;
