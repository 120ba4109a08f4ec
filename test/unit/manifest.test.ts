/**
 * Model manifest validation: every error names the field path, typos get a suggestion.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { didYouMean, editDistance, validateSchema } from '../../src/core/schema.js';
import { validateManifest, type ClassifierManifest } from '../../src/runtime/manifest.js';

const good = (): ClassifierManifest => ({
  format: 'medmask-model/1',
  name: 'demo-resnet',
  task: 'classify',
  model: 'model.onnx',
  input: { name: 'input', layout: 'NCHW', height: 128, width: 128, channels: 3 },
  preprocess: {
    resize: 'stretch',
    channels: 'grey-to-rgb',
    intensity: { mode: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], scale: 255 },
  },
  output: { name: 'logits', activation: 'softmax' },
  classes: ['healthy', 'nodule', 'consolidation', 'cavity'],
  cam: { target: 't' },
  mc: { dropout: 0.3, samples: 30 },
});

function problems(m: unknown): string {
  try {
    validateManifest(m, 'model.json');
  } catch (e) {
    assert.ok(isMedmaskError(e) && e.code === 'MODEL_INVALID', String(e));
    return e.message;
  }
  return '';
}

test('edit distance and did-you-mean', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('ab', 'ba'), 1);
  assert.equal(didYouMean('mean_std', ['mean-std', 'min-max', 'ct-window']), 'mean-std');
  assert.equal(didYouMean('Letterbox', ['stretch', 'letterbox']), 'letterbox');
  assert.equal(didYouMean('intensty', ['resize', 'channels', 'intensity']), 'intensity');
  assert.equal(didYouMean('zzz', ['resize', 'channels', 'intensity']), undefined);
});

test('the contract example and a segmenter manifest are valid', () => {
  assert.equal(problems(good()), '');
  assert.equal(
    problems({
      format: 'medmask-model/1', name: 'demo-unet', task: 'segment', model: 'model.onnx',
      input: { name: 'input', layout: 'NCDHW', patch: [64, 64, 32], channels: 1 },
      spacing: [4, 4, 6],
      preprocess: { intensity: { mode: 'ct-window', center: 40, width: 500 } },
      output: { name: 'logits', activation: 'sigmoid' },
      labels: { 1: 'spleen', 2: 'kidney_right' },
    }),
    '',
  );
});

test('an enum typo names the path, the allowed values and the likely one', () => {
  const m = good() as unknown as { preprocess: { intensity: { mode: string } } };
  m.preprocess.intensity.mode = 'mean_std';
  assert.equal(problems(m), 'model.json: preprocess.intensity.mode: "mean_std" is not one of mean-std, min-max, ct-window, none (did you mean "mean-std"?)');
});

test('a misspelt key: unknown field with suggestion, and the required one reported missing', () => {
  const m = good() as unknown as Record<string, unknown>;
  m.clases = m.classes;
  delete m.classes;
  const msg = problems(m);
  assert.match(msg, /model\.json: clases: unknown field \(did you mean "classes"\?\)/);
  assert.match(msg, /model\.json: classes: required field is missing/);
  assert.match(msg, /2 problems/);
});

test('nested unknown key without a close match lists the allowed fields', () => {
  const m = good() as unknown as { preprocess: Record<string, unknown> };
  m.preprocess.colour = 'x';
  assert.match(problems(m), /preprocess\.colour: unknown field; allowed: resize, channels, intensity, pad, antialias/);
});

test('types, ranges, array items, duplicates, mean/std lengths', () => {
  const m = good() as unknown as Record<string, any>;
  m.input.height = 12.5;
  m.mc.dropout = 1;
  m.classes = ['a', 'b', 'a', ''];
  m.preprocess.intensity.std = [0.2, 0];
  const msg = problems(m);
  assert.match(msg, /input\.height: expected a whole number, got 12\.5/);
  assert.match(msg, /mc\.dropout: 1 must be less than 1/);
  assert.match(msg, /classes\[2\]: "a" repeats item 0/);
  assert.match(msg, /classes\[3\]: must not be empty/);
  assert.match(msg, /preprocess\.intensity\.std\[1\]: 0 must be greater than 0/);
  const m2 = good();
  (m2.preprocess!.intensity as { mean: number[] }).mean = [0.5, 0.5];
  assert.match(problems(m2), /preprocess\.intensity\.mean: has 2 values; input\.channels is 3/);
});

test('wrong task, format and label keys', () => {
  assert.match(problems({ ...good(), task: 'clasify' }), /^model\.json: task: "clasify" is not one of classify, segment \(did you mean "classify"\?\)$/);
  assert.match(problems({ ...good(), format: 'medmask-model/2' }), /format: "medmask-model\/2" should be "medmask-model\/1"/);
  assert.match(
    problems({ format: 'medmask-model/1', name: 'u', task: 'segment', model: 'm.onnx', input: { patch: [1, 2], channels: 1 }, labels: { liver: 'x' } }),
    /input\.patch: needs at least 3 items[\s\S]*labels\.liver: key "liver" is not a label value/,
  );
});

test('anyOf: pad is a number or "min"', () => {
  const s = { type: 'anyOf', anyOf: [{ type: 'number' }, { type: 'string', enum: ['min'] }] } as const;
  assert.deepEqual(validateSchema(s, 3), []);
  assert.deepEqual(validateSchema(s, 'min'), []);
  assert.equal(validateSchema(s, 'mni')[0]!.suggestion, 'min');
});
