// The options the DICOM SEG fixture was written with; shared by tools/fixtures/write-dicom-seg.ts
// and test/integration/dicom-seg.test.ts so the test re-encodes the same object.
import { ABDOMEN_LABELS } from '../../src/core/phantom/abdomen.js';
import type { DicomSegOptions } from '../../src/io/dicom-seg.js';

export const SEG_FIXTURE = {
  /** UID salt the series is imported with (the Python script remaps the original UIDs with it too). */
  salt: 'seg-fixture-salt',
  options: {
    labels: { ...ABDOMEN_LABELS },
    provenance: { 5: 'original', 2: 'revised' },
    date: new Date(Date.UTC(2024, 4, 6, 7, 8, 9)),
    seriesDescription: 'medmask fixture segmentation',
  } satisfies DicomSegOptions,
};
