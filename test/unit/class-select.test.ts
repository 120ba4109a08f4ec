import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { parseClassSpec, resolveClasses } from '../../src/core/explain/class-select.js';

const classes = ['healthy', 'nodule', 'consolidation', 'cavity'];
const p = [0.1, 0.2, 0.6, 0.1];

test('predicted (default), all, index, name, lists', () => {
  assert.deepEqual(resolveClasses(undefined, classes, p), [2]);
  assert.deepEqual(resolveClasses('predicted', classes, p), [2]);
  assert.deepEqual(resolveClasses('all', classes, p), [0, 1, 2, 3]);
  assert.deepEqual(resolveClasses('3', classes, p), [3]);
  assert.deepEqual(resolveClasses('nodule', classes, p), [1]);
  assert.deepEqual(resolveClasses('cavity, 0 ,cavity', classes, p), [3, 0]);
  assert.deepEqual(parseClassSpec('nodule,3'), { kind: 'list', items: ['nodule', 3] });
  // a class literally named "1" is found by name first
  assert.deepEqual(resolveClasses('1', ['0', '2', '1'], [1, 0, 0]), [2]);
});

test('out of range and unknown names list the classes; typos get a suggestion', () => {
  assert.throws(() => resolveClasses('4', classes, p), (e: unknown) =>
    isMedmaskError(e) && e.code === 'USAGE' && e.message === 'class 4 is out of range: the model has 4 classes (0 healthy, 1 nodule, 2 consolidation, 3 cavity)');
  assert.throws(() => resolveClasses('nodle', classes, p), (e: unknown) =>
    isMedmaskError(e) && /unknown class "nodle" \(did you mean "nodule"\?\): the model's classes are 0 healthy, 1 nodule/.test(e.message));
  assert.throws(() => resolveClasses('tumour', classes, p), (e: unknown) => isMedmaskError(e) && /unknown class "tumour": /.test(e.message));
  assert.throws(() => parseClassSpec('a,,b'), /empty class/);
});
