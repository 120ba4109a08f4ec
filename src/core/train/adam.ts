/**
 * Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization") over one flat parameter
 * vector, with bias-corrected first and second moments, as `torch.optim.Adam`. Weight decay is
 * not applied here: {@link headLoss} puts the L2 term into the gradient, which is what
 * `torch.optim.Adam(weight_decay=λ)` does.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** Hyper-parameters of {@link adamStep}. */
export interface AdamOptions {
  /** Learning rate (step size), e.g. 1e-3. */
  lr: number;
  /** Decay of the first moment (default 0.9). */
  beta1?: number;
  /** Decay of the second moment (default 0.999). */
  beta2?: number;
  /** Added to √v̂ (default 1e-8). */
  eps?: number;
}

/** Moments and step count of one Adam run. */
export interface AdamState {
  m: Float64Array;
  v: Float64Array;
  /** Steps taken so far. */
  t: number;
}

/**
 * Fresh Adam state for `n` parameters.
 * @param n - number of parameters
 * @returns zero moments, t = 0
 * @example
 * const opt = createAdamState(params.data.length);
 */
export function createAdamState(n: number): AdamState {
  return { m: new Float64Array(n), v: new Float64Array(n), t: 0 };
}

/**
 * One Adam step, in place: θ ← θ − lr · m̂ / (√v̂ + ε).
 * @param state - moments (updated)
 * @param params - parameters (updated)
 * @param grad - gradient at `params`
 * @param opts - learning rate and decays
 * @example
 * const { grad } = headLoss(p, x, y); adamStep(opt, p.data, grad, { lr: 1e-3 });
 */
export function adamStep(state: AdamState, params: Float64Array, grad: Float64Array, opts: AdamOptions): void {
  const n = params.length;
  if (grad.length !== n || state.m.length !== n) {
    throw new MedmaskError('USAGE', `Adam: ${n} parameters, ${grad.length} gradient values, state for ${state.m.length}`);
  }
  if (!(opts.lr > 0)) throw new MedmaskError('USAGE', `learning rate must be positive, got ${opts.lr}`);
  const b1 = opts.beta1 ?? 0.9;
  const b2 = opts.beta2 ?? 0.999;
  const eps = opts.eps ?? 1e-8;
  state.t++;
  const c1 = 1 - b1 ** state.t;
  const c2 = 1 - b2 ** state.t;
  const { m, v } = state;
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    m[i] = b1 * m[i]! + (1 - b1) * g;
    v[i] = b2 * v[i]! + (1 - b2) * g * g;
    params[i]! -= (opts.lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
  }
}
