import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NaturalizedDataset } from 'dcmjs';
import { DEID_RULES, deidentifyDataset, remapUid } from '../../src/io/deidentify.js';

// A synthetic naturalized dataset (as dcmjs's naturalizeDataset returns), with identifiers at the
// top level, inside sequences and in private tags.
function dataset(): NaturalizedDataset {
  return {
    _vrMap: { PixelData: 'OW' },
    _meta: { TransferSyntaxUID: { vr: 'UI', Value: ['1.2.840.10008.1.2.1'] }, MediaStorageSOPInstanceUID: { vr: 'UI', Value: ['1.2.3.4.5.6'] }, SourceApplicationEntityTitle: { vr: 'AE', Value: ['HOSP_PACS'] } },
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    SOPInstanceUID: '1.2.3.4.5.6',
    StudyInstanceUID: '1.2.3.4',
    SeriesInstanceUID: '1.2.3.4.5',
    FrameOfReferenceUID: '1.2.3.9',
    PatientName: [{ Alphabetic: 'Doe^Jane' }],
    PatientID: 'MRN0042',
    PatientBirthDate: '19500101',
    OtherPatientIDsSequence: [{ PatientID: 'OLD-ID-7', _vrMap: {} }],
    InstitutionName: 'General Hospital',
    ReferringPhysicianName: [{ Alphabetic: 'House^Greg' }],
    AccessionNumber: 'A123',
    StudyID: 'S1',
    DeviceSerialNumber: 'SN9',
    Modality: 'CT',
    Manufacturer: 'ACME',
    SliceThickness: 1.25,
    SeriesDescription: 'Chest Doe follow-up',
    ReferencedImageSequence: [{ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: '1.2.3.4.5.7', _vrMap: {} }],
    '00091001': 'private GE string',
    '00090010': 'GEMS_IDEN_01',
    PixelData: [new ArrayBuffer(8)],
  };
}

test('PS3.15 basic profile: identifiers removed or emptied, names reported without values', () => {
  const input = dataset();
  const before = JSON.stringify(input, (_k, v) => (v instanceof ArrayBuffer ? 'buf' : v));
  const { dataset: out, removed } = deidentifyDataset(input, { uidSalt: 's' });
  assert.equal(JSON.stringify(input, (_k, v) => (v instanceof ArrayBuffer ? 'buf' : v)), before, 'input untouched');
  // Z (Type 2: kept, empty)
  for (const k of ['PatientName', 'PatientID', 'PatientBirthDate', 'ReferringPhysicianName', 'AccessionNumber', 'StudyID']) assert.equal(out[k], '', k);
  // X (removed)
  for (const k of ['OtherPatientIDsSequence', 'InstitutionName', 'DeviceSerialNumber', 'SeriesDescription', '00091001', '00090010']) assert.ok(!(k in out), k);
  for (const k of ['PatientName', 'InstitutionName', '00091001', 'SourceApplicationEntityTitle']) assert.ok(removed.includes(k), k);
  const text = JSON.stringify(removed);
  for (const v of ['Doe', 'MRN0042', 'General Hospital', 'private GE']) assert.ok(!text.includes(v), `removed list holds a value: ${v}`);
  // kept
  assert.equal(out.Modality, 'CT');
  assert.equal(out.Manufacturer, 'ACME');
  assert.equal(out.SliceThickness, 1.25);
  assert.equal(out.SOPClassUID, '1.2.840.10008.5.1.4.1.1.2');
  assert.equal(out.PixelData, input.PixelData, 'pixel buffers shared, not copied');
  assert.equal(out.PatientIdentityRemoved, 'YES');
  assert.ok(String(out.DeidentificationMethod).length <= 64, 'LO holds at most 64 characters');
  const all = JSON.stringify(out);
  for (const v of ['Doe', 'Jane', 'MRN0042', '19500101', 'OLD-ID-7', 'General Hospital', 'House', 'SN9', 'HOSP_PACS', '1.2.3.4']) assert.ok(!all.includes(v), `output holds "${v}"`);
});

test('UIDs remapped consistently, also inside sequences and in the file meta; DICOM-defined UIDs kept', () => {
  const a = deidentifyDataset(dataset(), { uidSalt: 's' }).dataset;
  const b = deidentifyDataset(dataset(), { uidSalt: 's' }).dataset;
  const c = deidentifyDataset(dataset(), { uidSalt: 't' }).dataset;
  assert.equal(a.SeriesInstanceUID, b.SeriesInstanceUID);
  assert.notEqual(a.SeriesInstanceUID, c.SeriesInstanceUID);
  assert.equal(a.SOPInstanceUID, remapUid('1.2.3.4.5.6', 's'));
  const ref = (a.ReferencedImageSequence as NaturalizedDataset[])[0]!;
  assert.equal(ref.ReferencedSOPInstanceUID, remapUid('1.2.3.4.5.7', 's'), 'a reference to another instance stays resolvable');
  assert.equal(ref.ReferencedSOPClassUID, '1.2.840.10008.5.1.4.1.1.2');
  assert.deepEqual((a._meta!.MediaStorageSOPInstanceUID as { Value: unknown[] }).Value, [a.SOPInstanceUID]);
  for (const u of [a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID, a.FrameOfReferenceUID]) {
    assert.match(String(u), /^2\.25\.[1-9]\d*$/);
    assert.ok(String(u).length <= 64);
  }
  assert.equal(new Set([a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID, a.FrameOfReferenceUID]).size, 4);
});

test('series description kept only when asked and free of the identifiers removed', () => {
  const leaky = deidentifyDataset(dataset(), { keepSeriesDescription: true }).dataset;
  assert.ok(!('SeriesDescription' in leaky), '"Chest Doe follow-up" names the patient');
  const ds = dataset();
  ds.SeriesDescription = 'Chest 1.25 mm';
  assert.equal(deidentifyDataset(ds, { keepSeriesDescription: true }).dataset.SeriesDescription, 'Chest 1.25 mm');
  assert.ok(!('SeriesDescription' in deidentifyDataset(ds).dataset), 'the basic profile removes it');
});

test('the table follows PS3.15 Table E.1-1 for the attributes that identify people', () => {
  // Spot checks against the standard's Basic Profile column.
  assert.equal(DEID_RULES.get('00100010')?.action, 'Z'); // Patient's Name
  assert.equal(DEID_RULES.get('00100020')?.action, 'Z'); // Patient ID
  assert.equal(DEID_RULES.get('00080080')?.keyword, 'InstitutionName');
  assert.equal(DEID_RULES.get('0020000D')?.action, 'U'); // Study Instance UID
  assert.equal(DEID_RULES.get('00081070')?.keyword, 'OperatorsName');
});
