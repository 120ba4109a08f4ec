/**
 * Timings the UI records about itself (first paint of a case, slice changes, brush moves, saves),
 * read by the end-to-end tests and `bench/ui.bench.ts` through `window.__medmaskPerf`.
 */
const samples: Record<string, number[]> = {};
const marks: Record<string, number> = {};

export const perf = {
  record(name: string, ms: number): void {
    (samples[name] ??= []).push(ms);
    if (samples[name]!.length > 10000) samples[name]!.shift();
  },
  mark(name: string, at = performance.now()): void {
    marks[name] = at;
  },
  reset(): void {
    for (const k of Object.keys(samples)) delete samples[k];
  },
};

(window as unknown as { __medmaskPerf: unknown }).__medmaskPerf = { samples, marks, reset: perf.reset };
