/**
 * Head training in TypeScript (`medmask train-head`, src/core/train): 10 epochs of mini-batch
 * Adam over 2000 pooled ResNet50-sized feature vectors (2048 channels, 2 classes), one linear
 * layer (the default) against a hidden layer of 64 and of 256 units. Feature extraction is
 * onnxruntime's speed and is printed by the command itself (images/s).
 */
import { fitHead } from '../src/core/train/fit.js';
import { mulberry32 } from '../src/core/random.js';
import { defineBenchmark } from './run.js';

interface State {
  n: number;
  dim: number;
  epochs: number;
}

function run(s: State, hidden: number): number {
  const rand = mulberry32(7);
  const x = new Float32Array(s.n * s.dim);
  for (let i = 0; i < x.length; i++) x[i] = rand() * 2;
  const y = Int32Array.from({ length: s.n }, () => (rand() < 0.4 ? 1 : 0));
  const r = fitHead({ features: x, dim: s.dim, labels: y, classes: 2 }, { hidden, epochs: s.epochs, patience: 0, seed: 1 });
  return r.history.at(-1)!.valLoss;
}

export default defineBenchmark<State>({
  description: 'fitHead, 2000 × 2048 features, 10 epochs (quick: 500 × 2048, 3 epochs): linear vs hidden 64 / 256',
  repetitions: 3,
  setup: async (_dir, quick) => ({ n: quick ? 500 : 2000, dim: 2048, epochs: quick ? 3 : 10 }),
  cases: [
    { name: 'linear', baseline: true, run: ({ state }) => run(state, 0) },
    { name: 'hidden 64', run: ({ state }) => run(state, 64) },
    { name: 'hidden 256', run: ({ state }) => run(state, 256) },
  ],
});
