/**
 * Confidence intervals for a mean.
 * @module
 */

/** Two-sided 97.5 % quantiles of Student's t for 1…30 degrees of freedom (SciPy's t.ppf). */
const T975 = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281, 2.201, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423];

/**
 * The 0.975 quantile of Student's t with `df` degrees of freedom: a table up to 30, above it the
 * Cornish–Fisher expansion around the normal quantile (error below 1e-4 there).
 * @param df - degrees of freedom, at least 1
 * @returns the quantile (NaN for df < 1)
 */
export function tQuantile975(df: number): number {
  if (!(df >= 1)) return NaN;
  if (df <= 30) return T975[Math.floor(df) - 1]!;
  const z = 1.959964, z3 = z ** 3, z5 = z ** 5, z7 = z ** 7;
  return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df ** 2) + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df ** 3);
}

/**
 * The mean with its 95 % Student-t interval, mean ± t(0.975, n − 1) · s / √n.
 * @param xs - the sample
 * @returns mean, half-width and the interval; NaN half-width for fewer than 2 values
 */
export function meanCi95(xs: readonly number[]): { mean: number; halfWidth: number; low: number; high: number; n: number } {
  const n = xs.length;
  const mean = n ? xs.reduce((a, b) => a + b, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  const halfWidth = tQuantile975(n - 1) * sd / Math.sqrt(n);
  return { mean, halfWidth, low: mean - halfWidth, high: mean + halfWidth, n };
}
