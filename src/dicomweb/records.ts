/**
 * DICOM JSON (PS3.18 F.2) answers of QIDO-RS and STOW-RS → plain records.
 * @module
 */

/** One attribute in DICOM JSON. */
export interface DicomJsonAttribute {
  vr: string;
  Value?: unknown[];
}

/** A DICOM JSON object: tag (8 hex digits) → attribute. */
export type DicomJson = Record<string, DicomJsonAttribute>;

/** A study found by QIDO-RS. */
export interface StudyRecord {
  studyInstanceUid: string;
  patientId: string;
  patientName: string;
  studyDate: string;
  accessionNumber: string;
  studyDescription: string;
  modalities: string[];
  series: number | null;
  instances: number | null;
}

/** A series found by QIDO-RS. */
export interface SeriesRecord {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  patientId: string;
  patientName: string;
  studyDate: string;
  accessionNumber: string;
  studyDescription: string;
  seriesDescription: string;
  seriesNumber: number | null;
  modality: string;
  bodyPart: string;
  instances: number | null;
}

/** An instance found by QIDO-RS. */
export interface InstanceRecord {
  sopInstanceUid: string;
  sopClassUid: string;
  instanceNumber: number | null;
}

/** What STOW-RS stored and refused. */
export interface StowResult {
  /** HTTP status of the answer. */
  status?: number;
  stored: { sopInstanceUid: string; url?: string }[];
  failed: { sopInstanceUid: string; reason: string }[];
}

const TAGS = {
  PatientName: '00100010',
  PatientID: '00100020',
  StudyDate: '00080020',
  AccessionNumber: '00080050',
  StudyDescription: '00081030',
  ModalitiesInStudy: '00080061',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SeriesDescription: '0008103E',
  SeriesNumber: '00200011',
  Modality: '00080060',
  BodyPartExamined: '00180015',
  SOPInstanceUID: '00080018',
  SOPClassUID: '00080016',
  InstanceNumber: '00200013',
  ReferencedSOPSequence: '00081199',
  FailedSOPSequence: '00081198',
  ReferencedSOPInstanceUID: '00081155',
  FailureReason: '00081197',
  RetrieveURL: '00081190',
} as const;

/** Values of an attribute (tag looked up case-insensitively: archives differ). */
function values(o: DicomJson, tag: string): unknown[] {
  return (o[tag] ?? o[tag.toLowerCase()])?.Value ?? [];
}

/** First value as text (a person name's Alphabetic group). */
export function text(o: DicomJson, tag: string): string {
  const v = values(o, tag)[0];
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return String((v as { Alphabetic?: string }).Alphabetic ?? '');
  return String(v);
}

function num(o: DicomJson, tag: string): number | null {
  const v = values(o, tag)[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** QIDO-RS studies → records. */
export function parseStudies(list: readonly DicomJson[]): StudyRecord[] {
  return list.map((o) => ({
    studyInstanceUid: text(o, TAGS.StudyInstanceUID),
    patientId: text(o, TAGS.PatientID),
    patientName: text(o, TAGS.PatientName),
    studyDate: text(o, TAGS.StudyDate),
    accessionNumber: text(o, TAGS.AccessionNumber),
    studyDescription: text(o, TAGS.StudyDescription),
    modalities: values(o, TAGS.ModalitiesInStudy).map(String),
    series: num(o, TAGS.NumberOfStudyRelatedSeries),
    instances: num(o, TAGS.NumberOfStudyRelatedInstances),
  }));
}

/** QIDO-RS series → records. */
export function parseSeries(list: readonly DicomJson[]): SeriesRecord[] {
  return list.map((o) => ({
    studyInstanceUid: text(o, TAGS.StudyInstanceUID),
    seriesInstanceUid: text(o, TAGS.SeriesInstanceUID),
    patientId: text(o, TAGS.PatientID),
    patientName: text(o, TAGS.PatientName),
    studyDate: text(o, TAGS.StudyDate),
    accessionNumber: text(o, TAGS.AccessionNumber),
    studyDescription: text(o, TAGS.StudyDescription),
    seriesDescription: text(o, TAGS.SeriesDescription),
    seriesNumber: num(o, TAGS.SeriesNumber),
    modality: text(o, TAGS.Modality),
    bodyPart: text(o, TAGS.BodyPartExamined),
    instances: num(o, TAGS.NumberOfSeriesRelatedInstances),
  }));
}

/** QIDO-RS instances → records. */
export function parseInstances(list: readonly DicomJson[]): InstanceRecord[] {
  return list.map((o) => ({ sopInstanceUid: text(o, TAGS.SOPInstanceUID), sopClassUid: text(o, TAGS.SOPClassUID), instanceNumber: num(o, TAGS.InstanceNumber) }));
}

/** FailureReason codes of PS3.4 / PS3.18 that archives use. */
const FAILURE_REASONS: Record<number, string> = {
  0x0110: 'processing failure',
  0x0122: 'SOP class not supported',
  0x0124: 'refused: not authorized',
  0xa700: 'out of resources',
  0xa900: 'data set does not match SOP class',
  0xc000: 'cannot understand',
  0xc122: 'referenced transfer syntax not supported',
  0xc123: 'instance already exists or was rejected by a filter',
};

/** A STOW-RS answer (one object or a list of one) → what was stored and refused. */
export function parseStowResponse(body: DicomJson | DicomJson[]): StowResult {
  const o = Array.isArray(body) ? body[0] ?? {} : body;
  const seq = (tag: string) => values(o, tag) as DicomJson[];
  return {
    stored: seq(TAGS.ReferencedSOPSequence).map((s) => ({ sopInstanceUid: text(s, TAGS.ReferencedSOPInstanceUID), ...(text(s, TAGS.RetrieveURL) ? { url: text(s, TAGS.RetrieveURL) } : {}) })),
    failed: seq(TAGS.FailedSOPSequence).map((s) => {
      const code = num(s, TAGS.FailureReason);
      return { sopInstanceUid: text(s, TAGS.ReferencedSOPInstanceUID), reason: code === null ? 'refused (no reason given)' : `0x${code.toString(16).toUpperCase().padStart(4, '0')} ${FAILURE_REASONS[code] ?? 'refused'}` };
    }),
  };
}
