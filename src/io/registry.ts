/**
 * Reader / writer registry for volumes. Each reader has a `canRead` probe that looks at the file
 * name and its first bytes (or at a folder) and either accepts or says why it declines; when no
 * reader accepts, the error lists every reader tried and its reason. (After MONAI's `ImageReader`,
 * itk-wasm's `couldRead` and cornerstone's `registerImageLoader`.)
 * @module
 */
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import type { Volume } from '../core/volume.js';

/** Number of leading bytes handed to `canRead` probes. */
export const PROBE_BYTES = 1024;

/** What a probe sees. */
export interface ProbeInput {
  /** Path as given. */
  path: string;
  /** Lower-cased file name (for extension checks). */
  name: string;
  /** True when the path is a directory. */
  isDirectory: boolean;
  /** First {@link PROBE_BYTES} bytes of a file (empty for a directory or an empty file). */
  head: Uint8Array;
  /** File size in bytes (0 for directories). */
  size: number;
}

/** Options every reader understands (readers ignore what does not apply to them). */
export interface ReadOptions {
  /** DICOM: the SeriesInstanceUID to load when a folder holds several series. */
  seriesUid?: string;
  /**
   * DICOM: remove patient identifiers (PS3.15 basic profile) from the returned metadata. Default
   * true; only tools that need the raw header (never the store) turn it off.
   */
  deidentify?: boolean;
  /** Salt for consistent UID remapping during de-identification (a project secret). */
  uidSalt?: string;
  /**
   * Cap on the voxels × components a header may declare, checked before anything is inflated or
   * allocated (default `MEDMASK_MAX_VOXELS`, else a 1024×1024×2048 CT; see limits.ts).
   */
  maxVoxels?: number;
}

/** A volume reader. */
export interface VolumeReader {
  /** Short name shown in errors and `medmask info`. */
  readonly name: string;
  /** What it reads, for help texts: e.g. "NIfTI-1/2 (.nii, .nii.gz)". */
  readonly description: string;
  /** `true` when it can read the input, otherwise the reason it declines. */
  canRead(input: ProbeInput): true | string;
  /** Read the input into a volume. Throws {@link MedmaskError} for bad input. */
  read(path: string, opts?: ReadOptions): Promise<Volume>;
}

/** Options every writer understands. */
export interface WriteOptions {
  /** Store as a label map: integer type (uint8 when max ≤ 255, else uint16), intent "label". */
  labelMap?: boolean;
  /** Compression where the format has it (default on). */
  compress?: boolean;
}

/** A volume writer. */
export interface VolumeWriter {
  readonly name: string;
  readonly description: string;
  /** Lower-case file name endings it writes, longest first (".nii.gz" before ".nii"). */
  readonly extensions: readonly string[];
  write(volume: Volume, path: string, opts?: WriteOptions): Promise<void>;
}

/** Make the probe input for a path. */
export async function probe(path: string): Promise<ProbeInput> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `${path}: no such file or folder`, { cause: e, hint: 'check the path' });
  }
  const name = basename(path).toLowerCase();
  if (st.isDirectory()) return { path, name, isDirectory: true, head: new Uint8Array(0), size: 0 };
  const fh = await open(path, 'r');
  try {
    const head = new Uint8Array(Math.min(PROBE_BYTES, st.size));
    if (head.length) await fh.read(head, 0, head.length, 0);
    return { path, name, isDirectory: false, head, size: st.size };
  } finally {
    await fh.close();
  }
}

/**
 * A set of readers and writers. Later registrations take precedence, so a user can override a
 * built-in reader.
 * @example
 * const reg = createRegistry();
 * reg.addReader(myReader);
 * const vol = await reg.read('scan.nii.gz');
 */
export class VolumeRegistry {
  private readonly readers: VolumeReader[] = [];
  private readonly writers: VolumeWriter[] = [];

  /** Register a reader (tried before those registered earlier). */
  addReader(reader: VolumeReader): this {
    this.readers.unshift(reader);
    return this;
  }

  /** Register a writer (preferred over earlier ones for the same extension). */
  addWriter(writer: VolumeWriter): this {
    this.writers.unshift(writer);
    return this;
  }

  /** Readers, in the order they are tried. */
  listReaders(): readonly VolumeReader[] {
    return this.readers;
  }

  /** Writers, in order of preference. */
  listWriters(): readonly VolumeWriter[] {
    return this.writers;
  }

  /**
   * Find the reader for a path, or throw listing every reader and why it declined.
   * @param path - file or folder
   */
  async readerFor(path: string): Promise<VolumeReader> {
    const input = await probe(path);
    const reasons: string[] = [];
    for (const r of this.readers) {
      const ok = r.canRead(input);
      if (ok === true) return r;
      reasons.push(`  - ${r.name}: ${ok}`);
    }
    if (!input.isDirectory && input.size === 0) {
      throw new MedmaskError('CORRUPT_FILE', `${path}: the file is empty (0 bytes)`, {
        hint: 'the copy or download was probably interrupted; fetch the file again',
      });
    }
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: no reader accepts this ${input.isDirectory ? 'folder' : 'file'}; tried:\n${reasons.join('\n')}`, {
      hint: 'supported: ' + this.readers.map((r) => r.description).join('; '),
    });
  }

  /**
   * Read a file or folder into a volume.
   * @param path - file or folder
   * @param opts - reader options
   * @returns the volume, `meta.format` set to the reader's name
   */
  async read(path: string, opts: ReadOptions = {}): Promise<Volume> {
    const reader = await this.readerFor(path);
    const vol = await reader.read(path, opts);
    vol.meta.format ??= reader.name;
    vol.meta.source ??= path;
    return vol;
  }

  /** Find the writer for a path by its extension, or throw listing what can be written. */
  writerFor(path: string): VolumeWriter {
    const name = basename(path).toLowerCase();
    for (const w of this.writers) if (w.extensions.some((e) => name.endsWith(e))) return w;
    const exts = this.writers.flatMap((w) => w.extensions);
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: no writer for this file name`, {
      hint: `use one of the endings ${exts.join(', ')}`,
    });
  }

  /** Write a volume, choosing the writer by the file name's ending. */
  async write(volume: Volume, path: string, opts: WriteOptions = {}): Promise<void> {
    await this.writerFor(path).write(volume, path, opts);
  }
}

/** Lower-case ending test that handles double extensions. */
export function hasExtension(name: string, exts: readonly string[]): boolean {
  const n = name.toLowerCase();
  return exts.some((e) => n.endsWith(e));
}

/** True when `head` starts with the given bytes at `offset`. */
export function hasMagic(head: Uint8Array, bytes: readonly number[], offset = 0): boolean {
  if (head.length < offset + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (head[offset + i] !== bytes[i]) return false;
  return true;
}

/** True when the bytes start a gzip stream. */
export function isGzip(head: Uint8Array): boolean {
  return hasMagic(head, [0x1f, 0x8b]);
}
