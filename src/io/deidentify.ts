/**
 * DICOM de-identification: the Basic Application Level Confidentiality Profile of DICOM PS3.15
 * Annex E (Table E.1-1, "Basic Prof." column), applied to a dcmjs-naturalized dataset.
 *
 * Why not dcmjs's own `anonymizer.cleanTags`: it only empties values (it never removes elements,
 * never remaps UIDs, keeps private tags), works on the denaturalized form, and several of its names
 * ("RefStudySeq", "ReferringPhysiciansIDSeq", …) are not keywords of dcmjs's current dictionary,
 * so those entries are skipped without notice. The table here is written from PS3.15 Table E.1-1.
 *
 * Actions (PS3.15 E.1.1): **X** remove, **Z** replace with a zero-length value, **D** replace with
 * a dummy value, **U** replace a UID by another one, consistently. Where the standard allows a
 * choice (X/Z, X/D, X/Z/D, Z/D), the strictest one that keeps the object readable is used: X for
 * Type 3 attributes, Z for Type 2 ones. Beyond the table, and stricter than it:
 * - every private element (odd group) is removed, as are curve data (50xx) and overlay data and
 *   comments (60xx,3000 / 60xx,4000);
 * - every UID value that is not a DICOM-defined UID (root `1.2.840.10008.`) is remapped, wherever
 *   it sits (also inside sequences), so references between objects stay consistent.
 *
 * UIDs are remapped to `2.25.<decimal>` (PS3.5 B.2), the number being the first 128 bits of
 * SHA-256(salt, NUL, uid): the same UID with the same salt always gives the same result, so slices
 * of a series, and series of a study, still belong together; another salt gives unrelated UIDs.
 *
 * Clean Descriptors option (PS3.15 E.3.5), partly: the series description is kept when
 * `keepSeriesDescription` is set and it contains none of the identifying strings removed from the
 * same dataset; otherwise it is removed like the table says. All other free text is removed.
 *
 * No file system access here: datasets in, datasets out.
 * @module
 */
import { createHash } from 'node:crypto';
import dcmjs, { type NaturalizedDataset } from 'dcmjs';

/** A PS3.15 action: remove, zero-length, dummy, UID remap. */
export type DeidAction = 'X' | 'Z' | 'D' | 'U';

/** One row of the de-identification table. */
export interface DeidRule {
  /** Tag as 8 hex digits, upper case, e.g. "00100010". */
  tag: string;
  /** DICOM keyword. */
  keyword: string;
  /** What happens to the attribute. */
  action: DeidAction;
}

// PS3.15 Table E.1-1, Basic Profile column (tag, keyword, action; choices resolved as described
// in the module documentation).
const TABLE: ReadonlyArray<readonly [string, string, DeidAction]> = [
  ['00080050', 'AccessionNumber', 'Z'],
  ['00184000', 'AcquisitionComments', 'X'],
  ['00400555', 'AcquisitionContextSequence', 'X'],
  ['00080022', 'AcquisitionDate', 'X'],
  ['0008002A', 'AcquisitionDateTime', 'X'],
  ['00181400', 'AcquisitionDeviceProcessingDescription', 'X'],
  ['00189424', 'AcquisitionProtocolDescription', 'X'],
  ['00080032', 'AcquisitionTime', 'X'],
  ['00080017', 'AcquisitionUID', 'U'],
  ['00404035', 'ActualHumanPerformersSequence', 'X'],
  ['001021B0', 'AdditionalPatientHistory', 'X'],
  ['00380010', 'AdmissionID', 'X'],
  ['00380020', 'AdmittingDate', 'X'],
  ['00081084', 'AdmittingDiagnosesCodeSequence', 'X'],
  ['00081080', 'AdmittingDiagnosesDescription', 'X'],
  ['00380021', 'AdmittingTime', 'X'],
  ['00102110', 'Allergies', 'X'],
  ['40000010', 'Arbitrary', 'X'],
  ['0040A078', 'AuthorObserverSequence', 'X'],
  ['00101081', 'BranchOfService', 'X'],
  ['00181007', 'CassetteID', 'X'],
  ['00120060', 'ClinicalTrialCoordinatingCenterName', 'X'],
  ['00120020', 'ClinicalTrialProtocolID', 'X'],
  ['00120021', 'ClinicalTrialProtocolName', 'X'],
  ['00120030', 'ClinicalTrialSiteID', 'X'],
  ['00120031', 'ClinicalTrialSiteName', 'X'],
  ['00120010', 'ClinicalTrialSponsorName', 'X'],
  ['00120040', 'ClinicalTrialSubjectID', 'X'],
  ['00120042', 'ClinicalTrialSubjectReadingID', 'X'],
  ['00120051', 'ClinicalTrialTimePointDescription', 'X'],
  ['00120050', 'ClinicalTrialTimePointID', 'X'],
  ['00400280', 'CommentsOnThePerformedProcedureStep', 'X'],
  ['00209161', 'ConcatenationUID', 'U'],
  ['00403001', 'ConfidentialityConstraintOnPatientDataDescription', 'X'],
  ['00700086', 'ContentCreatorIdentificationCodeSequence', 'X'],
  ['00700084', 'ContentCreatorName', 'Z'],
  ['00080023', 'ContentDate', 'Z'],
  ['0040A730', 'ContentSequence', 'X'],
  ['00080033', 'ContentTime', 'Z'],
  ['00180010', 'ContrastBolusAgent', 'Z'],
  ['0018A003', 'ContributionDescription', 'X'],
  ['00102150', 'CountryOfResidence', 'X'],
  ['00089123', 'CreatorVersionUID', 'U'],
  ['00380300', 'CurrentPatientLocation', 'X'],
  ['00080025', 'CurveDate', 'X'],
  ['00080035', 'CurveTime', 'X'],
  ['0040A07C', 'CustodialOrganizationSequence', 'X'],
  ['FFFCFFFC', 'DataSetTrailingPadding', 'X'],
  ['00181200', 'DateOfLastCalibration', 'X'],
  ['00181012', 'DateOfSecondaryCapture', 'X'],
  ['0040A121', 'Date', 'X'],
  ['0040A120', 'DateTime', 'X'],
  ['00082111', 'DerivationDescription', 'X'],
  ['0018700A', 'DetectorID', 'X'],
  ['00181000', 'DeviceSerialNumber', 'X'],
  ['00181002', 'DeviceUID', 'U'],
  ['04000100', 'DigitalSignatureUID', 'X'],
  ['FFFAFFFA', 'DigitalSignaturesSequence', 'X'],
  ['00209164', 'DimensionOrganizationUID', 'U'],
  ['00380040', 'DischargeDiagnosisDescription', 'X'],
  ['4008011A', 'DistributionAddress', 'X'],
  ['40080119', 'DistributionName', 'X'],
  ['300A0013', 'DoseReferenceUID', 'U'],
  ['00102160', 'EthnicGroup', 'X'],
  ['00080058', 'FailedSOPInstanceUIDList', 'U'],
  ['0070031A', 'FiducialUID', 'U'],
  ['00402017', 'FillerOrderNumberImagingServiceRequest', 'Z'],
  ['00189074', 'FrameAcquisitionDateTime', 'X'],
  ['00209158', 'FrameComments', 'X'],
  ['00200052', 'FrameOfReferenceUID', 'U'],
  ['00189151', 'FrameReferenceDateTime', 'X'],
  ['00181008', 'GantryID', 'X'],
  ['00181005', 'GeneratorID', 'X'],
  ['00700001', 'GraphicAnnotationSequence', 'X'],
  ['00404037', 'HumanPerformerName', 'X'],
  ['00404036', 'HumanPerformerOrganization', 'X'],
  ['00880200', 'IconImageSequence', 'X'],
  ['00084000', 'IdentifyingComments', 'X'],
  ['00204000', 'ImageComments', 'X'],
  ['00284000', 'ImagePresentationComments', 'X'],
  ['00402400', 'ImagingServiceRequestComments', 'X'],
  ['40080300', 'Impressions', 'X'],
  ['00080015', 'InstanceCoercionDateTime', 'X'],
  ['00080012', 'InstanceCreationDate', 'X'],
  ['00080013', 'InstanceCreationTime', 'X'],
  ['00080014', 'InstanceCreatorUID', 'U'],
  ['00080081', 'InstitutionAddress', 'X'],
  ['00080082', 'InstitutionCodeSequence', 'X'],
  ['00080080', 'InstitutionName', 'X'],
  ['00081040', 'InstitutionalDepartmentName', 'X'],
  ['00101050', 'InsurancePlanIdentification', 'X'],
  ['00401011', 'IntendedRecipientsOfResultsIdentificationSequence', 'X'],
  ['40080111', 'InterpretationApproverSequence', 'X'],
  ['4008010C', 'InterpretationAuthor', 'X'],
  ['40080115', 'InterpretationDiagnosisDescription', 'X'],
  ['40080202', 'InterpretationIDIssuer', 'X'],
  ['40080102', 'InterpretationRecorder', 'X'],
  ['4008010B', 'InterpretationText', 'X'],
  ['4008010A', 'InterpretationTranscriber', 'X'],
  ['00083010', 'IrradiationEventUID', 'U'],
  ['00380011', 'IssuerOfAdmissionID', 'X'],
  ['00100021', 'IssuerOfPatientID', 'X'],
  ['00380061', 'IssuerOfServiceEpisodeID', 'X'],
  ['00281214', 'LargePaletteColorLookupTableUID', 'U'],
  ['001021D0', 'LastMenstrualDate', 'X'],
  ['04000404', 'MAC', 'X'],
  ['00102000', 'MedicalAlerts', 'X'],
  ['00101090', 'MedicalRecordLocator', 'X'],
  ['00101080', 'MilitaryRank', 'X'],
  ['04000550', 'ModifiedAttributesSequence', 'X'],
  ['00203406', 'ModifiedImageDescription', 'X'],
  ['00203401', 'ModifyingDeviceID', 'X'],
  ['00203404', 'ModifyingDeviceManufacturer', 'X'],
  ['00081060', 'NameOfPhysiciansReadingStudy', 'X'],
  ['00401010', 'NamesOfIntendedRecipientsOfResults', 'X'],
  ['00102180', 'Occupation', 'X'],
  ['00081072', 'OperatorIdentificationSequence', 'X'],
  ['00081070', 'OperatorsName', 'X'],
  ['04000561', 'OriginalAttributesSequence', 'X'],
  ['00402010', 'OrderCallbackPhoneNumber', 'X'],
  ['00402008', 'OrderEnteredBy', 'X'],
  ['00402009', 'OrderEntererLocation', 'X'],
  ['00101000', 'OtherPatientIDs', 'X'],
  ['00101002', 'OtherPatientIDsSequence', 'X'],
  ['00101001', 'OtherPatientNames', 'X'],
  ['00080024', 'OverlayDate', 'X'],
  ['00080034', 'OverlayTime', 'X'],
  ['00281199', 'PaletteColorLookupTableUID', 'U'],
  ['0040A07A', 'ParticipantSequence', 'X'],
  ['00101040', 'PatientAddress', 'X'],
  ['00101010', 'PatientAge', 'X'],
  ['00100030', 'PatientBirthDate', 'Z'],
  ['00101005', 'PatientBirthName', 'X'],
  ['00100032', 'PatientBirthTime', 'X'],
  ['00104000', 'PatientComments', 'X'],
  ['00100020', 'PatientID', 'Z'],
  ['00380400', 'PatientInstitutionResidence', 'X'],
  ['00100050', 'PatientInsurancePlanCodeSequence', 'X'],
  ['00101060', 'PatientMotherBirthName', 'X'],
  ['00100010', 'PatientName', 'Z'],
  ['00100101', 'PatientPrimaryLanguageCodeSequence', 'X'],
  ['00100102', 'PatientPrimaryLanguageModifierCodeSequence', 'X'],
  ['001021F0', 'PatientReligiousPreference', 'X'],
  ['00100040', 'PatientSex', 'Z'],
  ['00102203', 'PatientSexNeutered', 'X'],
  ['00101020', 'PatientSize', 'X'],
  ['00380500', 'PatientState', 'X'],
  ['00102154', 'PatientTelephoneNumbers', 'X'],
  ['00401004', 'PatientTransportArrangements', 'X'],
  ['00101030', 'PatientWeight', 'X'],
  ['00400243', 'PerformedLocation', 'X'],
  ['00400254', 'PerformedProcedureStepDescription', 'X'],
  ['00400253', 'PerformedProcedureStepID', 'X'],
  ['00400244', 'PerformedProcedureStepStartDate', 'X'],
  ['00400245', 'PerformedProcedureStepStartTime', 'X'],
  ['00400241', 'PerformedStationAETitle', 'X'],
  ['00404030', 'PerformedStationGeographicLocationCodeSequence', 'X'],
  ['00400242', 'PerformedStationName', 'X'],
  ['00404028', 'PerformedStationNameCodeSequence', 'X'],
  ['00081052', 'PerformingPhysicianIdentificationSequence', 'X'],
  ['00081050', 'PerformingPhysicianName', 'X'],
  ['00401102', 'PersonAddress', 'X'],
  ['00401101', 'PersonIdentificationCodeSequence', 'X'],
  ['0040A123', 'PersonName', 'Z'],
  ['00401103', 'PersonTelephoneNumbers', 'X'],
  ['40080114', 'PhysicianApprovingInterpretation', 'X'],
  ['00081048', 'PhysiciansOfRecord', 'X'],
  ['00081049', 'PhysiciansOfRecordIdentificationSequence', 'X'],
  ['00081062', 'PhysiciansReadingStudyIdentificationSequence', 'X'],
  ['00181004', 'PlateID', 'X'],
  ['00400012', 'PreMedication', 'X'],
  ['001021C0', 'PregnancyStatus', 'X'],
  ['00181030', 'ProtocolName', 'X'],
  ['00321030', 'ReasonForStudy', 'X'],
  ['00402001', 'ReasonForTheImagingServiceRequest', 'X'],
  ['04000402', 'ReferencedDigitalSignatureSequence', 'X'],
  ['30060024', 'ReferencedFrameOfReferenceUID', 'U'],
  ['00404023', 'ReferencedGeneralPurposeScheduledProcedureStepTransactionUID', 'U'],
  ['00380004', 'ReferencedPatientAliasSequence', 'X'],
  ['00081120', 'ReferencedPatientSequence', 'X'],
  ['00081111', 'ReferencedPerformedProcedureStepSequence', 'X'],
  ['04000403', 'ReferencedSOPInstanceMACSequence', 'X'],
  ['00081155', 'ReferencedSOPInstanceUID', 'U'],
  ['00041511', 'ReferencedSOPInstanceUIDInFile', 'U'],
  ['00081110', 'ReferencedStudySequence', 'X'],
  ['00080092', 'ReferringPhysicianAddress', 'X'],
  ['00080096', 'ReferringPhysicianIdentificationSequence', 'X'],
  ['00080090', 'ReferringPhysicianName', 'Z'],
  ['00080094', 'ReferringPhysicianTelephoneNumbers', 'X'],
  ['00102152', 'RegionOfResidence', 'X'],
  ['300600C2', 'RelatedFrameOfReferenceUID', 'U'],
  ['00400275', 'RequestAttributesSequence', 'X'],
  ['00321070', 'RequestedContrastAgent', 'X'],
  ['00401400', 'RequestedProcedureComments', 'X'],
  ['00321060', 'RequestedProcedureDescription', 'X'],
  ['00401001', 'RequestedProcedureID', 'X'],
  ['00401005', 'RequestedProcedureLocation', 'X'],
  ['00001001', 'RequestedSOPInstanceUID', 'U'],
  ['00321032', 'RequestingPhysician', 'X'],
  ['00321033', 'RequestingService', 'X'],
  ['00102299', 'ResponsibleOrganization', 'X'],
  ['00102297', 'ResponsiblePerson', 'X'],
  ['40084000', 'ResultsComments', 'X'],
  ['40080118', 'ResultsDistributionListSequence', 'X'],
  ['40080042', 'ResultsIDIssuer', 'X'],
  ['300E0008', 'ReviewerName', 'X'],
  ['00404034', 'ScheduledHumanPerformersSequence', 'X'],
  ['0038001E', 'ScheduledPatientInstitutionResidence', 'X'],
  ['0040000B', 'ScheduledPerformingPhysicianIdentificationSequence', 'X'],
  ['00400006', 'ScheduledPerformingPhysicianName', 'X'],
  ['00400004', 'ScheduledProcedureStepEndDate', 'X'],
  ['00400005', 'ScheduledProcedureStepEndTime', 'X'],
  ['00400007', 'ScheduledProcedureStepDescription', 'X'],
  ['00400011', 'ScheduledProcedureStepLocation', 'X'],
  ['00400002', 'ScheduledProcedureStepStartDate', 'X'],
  ['00400003', 'ScheduledProcedureStepStartTime', 'X'],
  ['00400001', 'ScheduledStationAETitle', 'X'],
  ['00404027', 'ScheduledStationGeographicLocationCodeSequence', 'X'],
  ['00400010', 'ScheduledStationName', 'X'],
  ['00404025', 'ScheduledStationNameCodeSequence', 'X'],
  ['00321020', 'ScheduledStudyLocation', 'X'],
  ['00321021', 'ScheduledStudyLocationAETitle', 'X'],
  ['00080021', 'SeriesDate', 'X'],
  ['0008103E', 'SeriesDescription', 'X'],
  ['0020000E', 'SeriesInstanceUID', 'U'],
  ['00080031', 'SeriesTime', 'X'],
  ['00380062', 'ServiceEpisodeDescription', 'X'],
  ['00380060', 'ServiceEpisodeID', 'X'],
  ['001021A0', 'SmokingStatus', 'X'],
  ['00080018', 'SOPInstanceUID', 'U'],
  ['00380050', 'SpecialNeeds', 'X'],
  ['00081010', 'StationName', 'X'],
  ['00880140', 'StorageMediaFileSetUID', 'U'],
  ['00324000', 'StudyComments', 'X'],
  ['00080020', 'StudyDate', 'Z'],
  ['00081030', 'StudyDescription', 'X'],
  ['00200010', 'StudyID', 'Z'],
  ['00320012', 'StudyIDIssuer', 'X'],
  ['0020000D', 'StudyInstanceUID', 'U'],
  ['00320034', 'StudyReadDate', 'X'],
  ['00320035', 'StudyReadTime', 'X'],
  ['00080030', 'StudyTime', 'Z'],
  ['00320032', 'StudyVerifiedDate', 'X'],
  ['00320033', 'StudyVerifiedTime', 'X'],
  ['00200200', 'SynchronizationFrameOfReferenceUID', 'U'],
  ['0040DB0D', 'TemplateExtensionCreatorUID', 'U'],
  ['0040DB0C', 'TemplateExtensionOrganizationUID', 'U'],
  ['40004000', 'TextComments', 'X'],
  ['20300020', 'TextString', 'X'],
  ['0040A122', 'Time', 'X'],
  ['00181201', 'TimeOfLastCalibration', 'X'],
  ['00181014', 'TimeOfSecondaryCapture', 'X'],
  ['00080201', 'TimezoneOffsetFromUTC', 'X'],
  ['00880910', 'TopicAuthor', 'X'],
  ['00880912', 'TopicKeywords', 'X'],
  ['00880906', 'TopicSubject', 'X'],
  ['00880904', 'TopicTitle', 'X'],
  ['00081195', 'TransactionUID', 'U'],
  ['0040A124', 'UID', 'U'],
  ['0040A030', 'VerificationDateTime', 'X'],
  ['0040A088', 'VerifyingObserverIdentificationCodeSequence', 'X'],
  ['0040A075', 'VerifyingObserverName', 'Z'],
  ['0040A073', 'VerifyingObserverSequence', 'X'],
  ['0040A027', 'VerifyingOrganization', 'X'],
  ['00384000', 'VisitComments', 'X'],
];

/**
 * The de-identification table (PS3.15 Table E.1-1, basic profile, choices resolved), by tag.
 * @example
 * DEID_RULES.get('00100010'); // { tag: '00100010', keyword: 'PatientName', action: 'Z' }
 */
export const DEID_RULES: ReadonlyMap<string, DeidRule> = new Map(TABLE.map(([tag, keyword, action]) => [tag, { tag, keyword, action }]));

/** UID-valued attributes that name a scheme or class, never an instance: never remapped. */
const KEEP_UIDS = new Set(['CodingSchemeUID', 'ContextUID', 'MappingResourceUID', 'ImplementationClassUID', 'PrivateInformationCreatorUID', 'TransferSyntaxUID']);

/** The method recorded in DeidentificationMethod (0012,0063); an LO, so at most 64 characters. */
export const DEIDENTIFICATION_METHOD = 'medmask: PS3.15 Basic Profile, private tags removed, UIDs 2.25';

/** Options for {@link deidentifyDataset}. */
export interface DeidentifyOptions {
  /** Salt for UID remapping (a project secret). Same UID + same salt → same new UID. Default "". */
  uidSalt?: string;
  /**
   * Keep SeriesDescription when it contains none of the identifying strings removed from the same
   * dataset (PS3.15 Clean Descriptors option, in part). Default false: removed, as in Table E.1-1.
   */
  keepSeriesDescription?: boolean;
}

/** Result of {@link deidentifyDataset}. */
export interface DeidentifyResult {
  /** A cleaned copy (the input is not modified; binary buffers such as PixelData are shared). */
  dataset: NaturalizedDataset;
  /** Names (keywords, or 8-hex-digit tags for private ones) of attributes removed, emptied or replaced; never values. */
  removed: string[];
  /** Names of attributes whose UIDs were remapped. */
  remapped: string[];
  /** Things de-identification cannot fix, e.g. burned-in annotation in the pixels. */
  warnings: string[];
}

/**
 * Replace a UID by `2.25.<decimal>` where the number is the first 128 bits of SHA-256(salt, NUL, uid).
 * @param uid - the original UID
 * @param salt - project secret; the same salt always gives the same result
 * @returns the new UID (at most 44 characters)
 * @example
 * remapUid('1.2.3.4', 'secret'); // '2.25.…', the same every time for this salt
 */
export function remapUid(uid: string, salt = ''): string {
  const digest = createHash('sha256').update(salt, 'utf8').update('\0').update(uid.trim(), 'utf8').digest();
  let n = 0n;
  for (let i = 0; i < 16; i++) n = (n << 8n) | BigInt(digest[i]!);
  return `2.25.${n.toString(10)}`;
}

const D = dcmjs.data.DicomMetaDictionary;
const HEX_TAG = /^[0-9A-Fa-f]{8}$/;

/** Tag (8 hex digits, upper case) and VR of a naturalized key, when known. */
function tagInfo(key: string): { tag: string; vr: string | undefined } | undefined {
  if (HEX_TAG.test(key)) {
    const tag = key.toUpperCase();
    return { tag, vr: D.dictionary[D.punctuateTag(tag)]?.vr };
  }
  const entry = D.nameMap[key];
  if (!entry) return undefined;
  return { tag: entry.tag.replace(/[(),]/g, '').toUpperCase(), vr: entry.vr };
}

function isPrivateOrRepeatingGroup(tag: string): boolean {
  const group = parseInt(tag.slice(0, 4), 16);
  const element = tag.slice(4);
  if (group % 2 === 1) return true; // private
  if (group >= 0x5000 && group <= 0x50ff) return true; // curve data (retired)
  if (group >= 0x6000 && group <= 0x60ff && (element === '3000' || element === '4000')) return true; // overlay data, comments
  return false;
}

function collectStrings(value: unknown, out: Set<string>): void {
  if (typeof value === 'string') {
    for (const t of value.split(/[\^=\\,\s]+/)) if (t.length >= 3) out.add(t.toLowerCase());
  } else if (Array.isArray(value)) {
    for (const v of value) collectStrings(v, out);
  } else if (value && typeof value === 'object' && !(value instanceof ArrayBuffer) && !ArrayBuffer.isView(value)) {
    for (const [k, v] of Object.entries(value)) if (k !== '_vrMap') collectStrings(v, out);
  }
}

function remapValue(value: unknown, salt: string): unknown {
  if (typeof value === 'string') {
    return value
      .split('\\')
      .map((u) => (u.trim() === '' || u.trim().startsWith('1.2.840.10008.') ? u : remapUid(u, salt)))
      .join('\\');
  }
  if (Array.isArray(value)) return value.map((v) => remapValue(v, salt));
  return value;
}

interface Walk {
  salt: string;
  removed: Set<string>;
  remapped: Set<string>;
  identifying: Set<string>;
}

function isDatasetArray(v: unknown): v is NaturalizedDataset[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => x !== null && typeof x === 'object' && !(x instanceof ArrayBuffer) && !ArrayBuffer.isView(x) && !Array.isArray(x));
}

function cleanDataset(ds: NaturalizedDataset, w: Walk, keepDescription: boolean): NaturalizedDataset {
  const out: NaturalizedDataset = {};
  const vrMap: Record<string, string> = {};
  let deferredDescription: unknown;
  for (const [key, value] of Object.entries(ds)) {
    if (key === '_vrMap' || key === '_meta') continue;
    const info = tagInfo(key);
    const tag = info?.tag;
    const rule = tag ? DEID_RULES.get(tag) : undefined;
    if (tag && isPrivateOrRepeatingGroup(tag)) {
      w.removed.add(key);
      collectStrings(value, w.identifying);
      continue;
    }
    if (rule && rule.action !== 'U') {
      if (rule.keyword === 'SeriesDescription' && keepDescription) {
        deferredDescription = value;
        continue;
      }
      w.removed.add(rule.keyword);
      collectStrings(value, w.identifying);
      if (rule.action === 'Z') out[key] = '';
      else if (rule.action === 'D') out[key] = 'REMOVED';
      continue;
    }
    if ((rule?.action === 'U' || info?.vr === 'UI') && !KEEP_UIDS.has(key)) {
      const next = remapValue(value, w.salt);
      if (next !== value && JSON.stringify(next) !== JSON.stringify(value)) w.remapped.add(key);
      out[key] = next;
    } else if (isDatasetArray(value)) {
      out[key] = value.map((item) => cleanDataset(item, w, false));
    } else {
      out[key] = value;
    }
    if (ds._vrMap && key in ds._vrMap) vrMap[key] = ds._vrMap[key]!;
  }
  if (deferredDescription !== undefined) {
    const text = Array.isArray(deferredDescription) ? deferredDescription.join(' ') : String(deferredDescription ?? '');
    const lower = text.toLowerCase();
    const leaks = [...w.identifying].some((s) => lower.includes(s));
    if (leaks) w.removed.add('SeriesDescription');
    else out.SeriesDescription = deferredDescription;
  }
  out._vrMap = vrMap;
  return out;
}

/** A meta element's first value, whether naturalized (a string) or denaturalized ({ Value }). */
function metaValue(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.length ? String(v[0]) : undefined;
  const inner = (v as { Value?: unknown[] } | undefined)?.Value;
  return inner?.length ? String(inner[0]) : undefined;
}

/**
 * De-identify a dcmjs-naturalized dataset with the PS3.15 basic profile (see the module
 * documentation for the table and the choices made). Sets PatientIdentityRemoved = "YES" and
 * DeidentificationMethod. The file meta information (`_meta`), when present, is rebuilt from the
 * cleaned dataset so the original SOP Instance UID does not survive there either.
 * @param ds - naturalized dataset (from `DicomMetaDictionary.naturalizeDataset`)
 * @param opts - UID salt; whether to keep a clean series description
 * @returns the cleaned copy and the names of what was removed / remapped
 * @example
 * const { dataset, removed } = deidentifyDataset(ds, { uidSalt: 'project-secret' });
 * // removed includes 'PatientName', 'InstitutionName', '00091001', …
 */
export function deidentifyDataset(ds: NaturalizedDataset, opts: DeidentifyOptions = {}): DeidentifyResult {
  const w: Walk = { salt: opts.uidSalt ?? '', removed: new Set(), remapped: new Set(), identifying: new Set() };
  const out = cleanDataset(ds, w, opts.keepSeriesDescription ?? false);
  out.PatientIdentityRemoved = 'YES';
  out.DeidentificationMethod = DEIDENTIFICATION_METHOD;
  // PS3.16 CID 7050: 113100 Basic Application Confidentiality Profile.
  out.DeidentificationMethodCodeSequence = [
    { CodeValue: '113100', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Basic Application Confidentiality Profile', _vrMap: {} },
  ];
  const warnings: string[] = [];
  const burned = String(ds.BurnedInAnnotation ?? '').toUpperCase();
  if (burned === 'YES') warnings.push('BurnedInAnnotation is YES: the pixels may show identifying text; PS3.15 Clean Pixel Data is not applied');
  if (ds._meta) {
    // dcmjs keeps `_meta` denaturalized ({ vr, Value }) — datasetToBuffer reads it that way.
    const ts = metaValue(ds._meta.TransferSyntaxUID) ?? '1.2.840.10008.1.2.1';
    for (const k of Object.keys(ds._meta)) {
      if (!['TransferSyntaxUID', 'MediaStorageSOPClassUID', 'MediaStorageSOPInstanceUID', 'FileMetaInformationVersion', 'FileMetaInformationGroupLength', 'ImplementationClassUID', 'ImplementationVersionName'].includes(k)) {
        w.removed.add(k);
      }
    }
    out._meta = {
      MediaStorageSOPClassUID: { vr: 'UI', Value: [out.SOPClassUID] },
      MediaStorageSOPInstanceUID: { vr: 'UI', Value: [out.SOPInstanceUID] },
      TransferSyntaxUID: { vr: 'UI', Value: [ts] },
    };
  }
  return { dataset: out, removed: [...w.removed].sort(), remapped: [...w.remapped].sort(), warnings };
}
