/**
 * Minimal type declarations for `dcmjs` (0.51), which ships none. Only what medmask uses is
 * declared; extend here rather than casting at call sites.
 */
declare module 'dcmjs' {
  /** A naturalized dataset: DICOM keywords (or 8-hex-digit tags for unknown/private ones) → values. */
  export interface NaturalizedDataset {
    [keyword: string]: unknown;
    /** VRs dcmjs chose for ambiguous elements (e.g. PixelData: "OW"). */
    _vrMap?: Record<string, string>;
    /** File meta information (group 0002), naturalized, when the dataset came from a file. */
    _meta?: Record<string, unknown>;
  }

  /** A denaturalized element: VR plus values. */
  export interface DicomElement {
    vr: string;
    Value?: unknown[];
    InlineBinary?: string;
  }

  /** Options of {@link data.DicomMessage.readFile}. */
  export interface ReadFileOptions {
    ignoreErrors?: boolean;
    /** Stop before this tag, e.g. "7FE00010" to skip the pixel data. */
    untilTag?: string | null;
    includeUntilTagValue?: boolean;
    noCopy?: boolean;
    forceStoreRaw?: boolean;
  }

  /** One entry of dcmjs's data dictionary. */
  export interface DictionaryEntry {
    /** "(gggg,eeee)" */
    tag: string;
    vr: string;
    vm: string;
    name: string;
    version: string;
  }

  /** A parsed file: meta information and dataset, both denaturalized (tag hex → element). */
  export class DicomDict {
    constructor(meta: Record<string, DicomElement>);
    meta: Record<string, DicomElement>;
    dict: Record<string, DicomElement>;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }

  export interface Logger {
    setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void;
    getLogger(name: string): Logger;
  }

  interface DcmjsData {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: ReadFileOptions): DicomDict;
    };
    DicomMetaDictionary: {
      naturalizeDataset(dict: Record<string, DicomElement>): NaturalizedDataset;
      denaturalizeDataset(dataset: NaturalizedDataset | Record<string, unknown>): Record<string, DicomElement>;
      /** Keyword → dictionary entry. */
      nameMap: Record<string, DictionaryEntry>;
      /** "(gggg,eeee)" → dictionary entry. */
      dictionary: Record<string, DictionaryEntry>;
      punctuateTag(rawTag: string): string;
      unpunctuateTag(tag: string): string;
      uid(): string;
    };
    DicomDict: typeof DicomDict;
    /** Write a naturalized dataset (with `_meta`) as a Part 10 file. */
    datasetToBuffer(dataset: NaturalizedDataset): Buffer;
  }

  const dcmjs: {
    data: DcmjsData;
    log: Logger;
  };
  export default dcmjs;
}
