import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMedmaskError } from '../../src/core/errors.js';
import { contentTypeParams, readMultipart } from '../../src/dicomweb/multipart.js';
import { qidoParams as qidoParamsFor } from '../../src/dicomweb/client.js';
import { parseStowResponse } from '../../src/dicomweb/records.js';

// A multipart/related body written by hand after RFC 2046 §5.1.1 (preamble, transport padding,
// a part without headers, a body that contains "--b" and CR LF sequences, an epilogue).
// (The boundary itself never occurs in a part, RFC 2046; near misses do.)
const partA = Buffer.from('\r\n-b x--b not a delimiter\r\n-', 'latin1');
const partB = Buffer.from([0, 1, 2, 13, 10, 45, 98, 13, 10, 45, 255]);
const body = Buffer.concat([
  Buffer.from('preamble text\r\n--b  \r\nContent-Type: application/dicom\r\nContent-Length: 31\r\n\r\n', 'latin1'),
  partA,
  Buffer.from('\r\n--b\r\n\r\n', 'latin1'),
  partB,
  Buffer.from('\r\n--b--\r\nepilogue', 'latin1'),
]);

async function parse(chunks: Buffer[]): Promise<{ headers: Record<string, string>[]; parts: Buffer[] }> {
  const headers: Record<string, string>[] = [];
  const parts: Buffer[] = [];
  async function* gen() {
    for (const c of chunks) yield c;
  }
  await readMultipart(gen(), 'b', (h) => {
    headers.push(h);
    const got: Buffer[] = [];
    return { write: (c) => void got.push(Buffer.from(c)), end: () => void parts.push(Buffer.concat(got)) };
  });
  return { headers, parts };
}

test('multipart/related: the parts of a hand-written body come back exactly, however the body is cut into chunks', async () => {
  for (let cut = 1; cut < body.length; cut++) {
    const { headers, parts } = await parse([body.subarray(0, cut), body.subarray(cut)]);
    assert.equal(parts.length, 2, `cut at ${cut}`);
    assert.ok(parts[0]!.equals(partA), `cut at ${cut}: part 1`);
    assert.ok(parts[1]!.equals(partB), `cut at ${cut}: part 2`);
    assert.equal(headers[0]!['content-type'], 'application/dicom');
    assert.deepEqual(headers[1], {});
  }
  // one byte at a time
  const { parts } = await parse([...body].map((b) => Buffer.from([b])));
  assert.ok(parts[0]!.equals(partA) && parts[1]!.equals(partB));
});

test('multipart/related: a body cut off inside a part, or without a closing delimiter, is an error naming the part', async () => {
  const cut = body.subarray(0, body.indexOf(partB) + 3);
  await assert.rejects(parse([cut]), (e) => isMedmaskError(e) && e.code === 'CORRUPT_FILE' && /part 2 is cut off/.test(e.message));
  await assert.rejects(parse([Buffer.from('no boundary here')]), (e) => isMedmaskError(e) && /no boundary found/.test(e.message));
});

test('multipart/related: the per-part limit stops a part that is too large', async () => {
  async function* gen() {
    yield body;
  }
  await assert.rejects(
    readMultipart(gen(), 'b', () => ({ write() {}, end() {} }), { maxPartBytes: 10, label: 'GET x' }),
    (e) => isMedmaskError(e) && e.code === 'TOO_LARGE' && /GET x: part 1/.test(e.message),
  );
});

test('Content-Type parameters: quoted and bare values, case of names', () => {
  const { type, params } = contentTypeParams('Multipart/Related; type="application/dicom"; Boundary=abc-123; transfer-syntax=1.2.840.10008.1.2.1');
  assert.equal(type, 'multipart/related');
  assert.deepEqual(params, { type: 'application/dicom', boundary: 'abc-123', 'transfer-syntax': '1.2.840.10008.1.2.1' });
});

test('STOW-RS answer: stored and failed instances with PS3.4 failure reasons (DICOM JSON of PS3.18 Table 10.5.3-1)', () => {
  const r = parseStowResponse({
    '00081199': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: ['1.2.3'] }, '00081190': { vr: 'UR', Value: ['http://x/studies/1/series/2/instances/1.2.3'] } }] },
    '00081198': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: ['1.2.4'] }, '00081197': { vr: 'US', Value: [0xc000] } }] },
  });
  assert.deepEqual(r.stored, [{ sopInstanceUid: '1.2.3', url: 'http://x/studies/1/series/2/instances/1.2.3' }]);
  assert.deepEqual(r.failed, [{ sopInstanceUid: '1.2.4', reason: '0xC000 cannot understand' }]);
});

test('QIDO-RS query: study date ranges are checked, modality goes to ModalitiesInStudy for studies', () => {
  const p = qidoParamsFor({ patientId: 'P1', studyDate: '20240101-', modality: 'CT', seriesDescription: 'abd*' }, 'studies');
  assert.equal(p.get('PatientID'), 'P1');
  assert.equal(p.get('StudyDate'), '20240101-');
  assert.equal(p.get('ModalitiesInStudy'), 'CT');
  assert.equal(p.get('SeriesDescription'), null);
  const s = qidoParamsFor({ modality: 'CT', seriesDescription: 'abd*' }, 'series');
  assert.equal(s.get('Modality'), 'CT');
  assert.equal(s.get('SeriesDescription'), 'abd*');
  assert.throws(() => qidoParamsFor({ studyDate: '2024-01-01' }, 'series'), (e) => isMedmaskError(e) && e.code === 'USAGE' && /YYYYMMDD/.test(e.message));
});
