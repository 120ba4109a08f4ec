// After login the review UI returns to the page the browser asked for, only when it is a path of
// this site: the login page must not become an open redirect.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safeNextPath } from '../../web/src/next-path.js';

const O = 'http://127.0.0.1:8080';

test('same-site paths are kept with their query and fragment', () => {
  assert.equal(safeNextPath('/docs', O), '/docs');
  assert.equal(safeNextPath('/docs/static/index.html?x=1#op', O), '/docs/static/index.html?x=1#op');
  assert.equal(safeNextPath('/docs/../docs/json', O), '/docs/json', 'normalised by the URL parser');
});

test('other hosts, schemes, backslashes and control characters are refused', () => {
  for (const bad of ['//evil.example/docs', '/\\evil.example', '/\\/evil.example', 'https://evil.example/docs', 'http://127.0.0.1:8080/docs', 'javascript:alert(1)', 'docs', '', '/docs\n//evil', '/\t/evil.example', `/${'a'.repeat(3000)}`]) {
    assert.equal(safeNextPath(bad, O), null, JSON.stringify(bad));
  }
  assert.equal(safeNextPath(null, O), null);
  // the UI's own root: the hash router decides
  assert.equal(safeNextPath('/', O), null);
});
