/**
 * A DICOMweb client (PS3.18): QIDO-RS search of studies, series and instances, WADO-RS retrieval
 * of a series or an instance as multipart/related application/dicom (streamed to files, bounded
 * memory), STOW-RS store. Authentication none, HTTP basic or bearer token; TLS with an extra CA
 * bundle or (for testing only) without certificate checks; a timeout per request (no bytes for
 * that long); every error names the endpoint, the request and the archive's status.
 *
 * Built on node:http / node:https rather than fetch: TLS options (a private CA) and streaming of
 * large multipart bodies need the request options fetch does not expose without extra packages.
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { contentTypeParams, readMultipart, writeMultipart } from './multipart.js';
import { parseSeries, parseStudies, parseInstances, parseStowResponse, type DicomJson, type SeriesRecord, type StudyRecord, type InstanceRecord, type StowResult } from './records.js';

/** How to authenticate to the archive. */
export type DicomwebAuth = { type: 'none' } | { type: 'basic'; username: string; password: string } | { type: 'bearer'; token: string };

/** A DICOMweb endpoint. */
export interface DicomwebEndpoint {
  /** Base URL of the DICOMweb service, e.g. https://pacs.example.org/dicom-web */
  url: string;
  auth?: DicomwebAuth;
  tls?: {
    /** PEM CA certificate(s) trusted in addition to the system's. */
    ca?: string;
    /** Skip certificate checks (testing only). */
    insecure?: boolean;
  };
  /** Idle timeout per request, ms (default 30 000). */
  timeoutMs?: number;
}

/** A QIDO-RS query (every field optional; wildcards * and ? as the archive supports). */
export interface DicomwebQuery {
  patientId?: string;
  patientName?: string;
  /** YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be empty). */
  studyDate?: string;
  /** Modality (series) or ModalitiesInStudy (studies), e.g. CT. */
  modality?: string;
  accessionNumber?: string;
  studyDescription?: string;
  seriesDescription?: string;
  studyInstanceUid?: string;
  /** Most results (default 100, at most 1000). */
  limit?: number;
  offset?: number;
}

const QUERY_KEYS: Record<keyof Omit<DicomwebQuery, 'limit' | 'offset' | 'modality'>, string> = {
  patientId: 'PatientID',
  patientName: 'PatientName',
  studyDate: 'StudyDate',
  accessionNumber: 'AccessionNumber',
  studyDescription: 'StudyDescription',
  seriesDescription: 'SeriesDescription',
  studyInstanceUid: 'StudyInstanceUID',
};

const STUDY_FIELDS = ['PatientID', 'PatientName', 'StudyDate', 'StudyTime', 'AccessionNumber', 'StudyDescription', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances'];
const SERIES_FIELDS = ['PatientID', 'PatientName', 'StudyDate', 'AccessionNumber', 'StudyDescription', 'StudyInstanceUID', 'SeriesDescription', 'SeriesNumber', 'Modality', 'NumberOfSeriesRelatedInstances', 'BodyPartExamined'];

/** Progress of a retrieval. */
export interface RetrieveProgress {
  instances: number;
  bytes: number;
}

/** Options for a retrieval. */
export interface RetrieveOptions {
  /** Called after each instance is written. */
  onInstance?: (p: RetrieveProgress) => void;
  signal?: AbortSignal;
  /** Largest instance, bytes (default 1 GiB). */
  maxInstanceBytes?: number;
  /** Largest response, bytes (default 64 GiB). */
  maxTotalBytes?: number;
  /** File name for the n-th part (1-based); default `instance-000001.dcm`. */
  fileName?: (n: number) => string;
}

/** Check a base URL: http(s), no credentials in it, no query. */
export function checkEndpointUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MedmaskError('USAGE', `DICOMweb URL ${JSON.stringify(url)} is not a URL`, { hint: 'e.g. https://pacs.example.org/dicom-web (the root that /studies hangs off)' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new MedmaskError('USAGE', `DICOMweb URL ${url} must start with http:// or https://`, { hint: 'e.g. https://pacs.example.org/dicom-web' });
  if (u.username || u.password) throw new MedmaskError('USAGE', `DICOMweb URL ${u.origin}${u.pathname} must not carry a user name or password`, { hint: 'give credentials as basic or bearer auth instead' });
  if (u.search || u.hash) throw new MedmaskError('USAGE', `DICOMweb URL ${url} must not have a query or fragment`, { hint: 'give the service root, e.g. https://pacs.example.org/dicom-web' });
  return u;
}

/** Build the QIDO query string. */
export function qidoParams(q: DicomwebQuery, level: 'studies' | 'series'): URLSearchParams {
  const p = new URLSearchParams();
  for (const [k, tag] of Object.entries(QUERY_KEYS) as [keyof typeof QUERY_KEYS, string][]) {
    const v = q[k];
    if (v === undefined || v === '') continue;
    if (level === 'studies' && k === 'seriesDescription') continue;
    if (k === 'studyDate' && !/^(\d{8})?(-(\d{8})?)?$/.test(v)) throw new MedmaskError('USAGE', `study date ${JSON.stringify(v)} must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD`, { hint: 'e.g. 20240101-20241231, or 20240101- for "since"' });
    if (v.length > 200 || /[\r\n]/.test(v)) throw new MedmaskError('USAGE', `${tag} query value is too long or has line breaks`);
    p.set(tag, v);
  }
  if (q.modality) p.set(level === 'studies' ? 'ModalitiesInStudy' : 'Modality', q.modality);
  const limit = q.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new MedmaskError('USAGE', `limit ${limit} must be a whole number from 1 to 1000`);
  p.set('limit', String(limit));
  if (q.offset) p.set('offset', String(q.offset));
  for (const f of level === 'studies' ? STUDY_FIELDS : SERIES_FIELDS) p.append('includefield', f);
  return p;
}

/** A response being read. */
interface Res {
  status: number;
  headers: IncomingMessage['headers'];
  body: IncomingMessage;
}

/**
 * A client for one DICOMweb endpoint.
 * @example
 * const c = new DicomwebClient({ url: 'http://127.0.0.1:8042/dicom-web' });
 * const series = await c.searchSeries({ patientId: 'PID-1', modality: 'CT' });
 * await c.retrieveSeries(series[0].studyInstanceUid, series[0].seriesInstanceUid, 'out/');
 */
export class DicomwebClient {
  readonly base: URL;
  private readonly agent: http.Agent;
  private readonly auth: DicomwebAuth;
  private readonly timeoutMs: number;

  constructor(readonly endpoint: DicomwebEndpoint) {
    this.base = checkEndpointUrl(endpoint.url.replace(/\/+$/, ''));
    this.auth = endpoint.auth ?? { type: 'none' };
    this.timeoutMs = endpoint.timeoutMs ?? 30_000;
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, ...(endpoint.tls?.ca ? { ca: endpoint.tls.ca } : {}), rejectUnauthorized: !endpoint.tls?.insecure }) : new http.Agent({ keepAlive: true });
  }

  /** The endpoint as it is named in messages (no credentials). */
  get name(): string {
    return `${this.base.origin}${this.base.pathname}`;
  }

  /** Close idle connections. */
  close(): void {
    this.agent.destroy();
  }

  private authHeader(): Record<string, string> {
    if (this.auth.type === 'basic') return { authorization: `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}` };
    if (this.auth.type === 'bearer') return { authorization: `Bearer ${this.auth.token}` };
    return {};
  }

  private async request(method: string, path: string, headers: Record<string, string>, body?: Buffer, signal?: AbortSignal): Promise<Res> {
    const url = new URL(this.base.href.replace(/\/$/, '') + path);
    const what = `${method} ${this.name}${path.split('?')[0]}`;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<Res>((resolve, reject) => {
      const req = mod.request(url, { method, agent: this.agent, headers: { ...this.authHeader(), ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, ...(signal ? { signal } : {}) }, (res) => {
        res.setTimeout(this.timeoutMs, () => res.destroy(new Error(`no data for ${this.timeoutMs} ms`)));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (signal?.aborted) return reject(new MedmaskError('REMOTE_UNAVAILABLE', `${what}: aborted`, { cause: e }));
        const why = e.code === 'ECONNREFUSED' ? 'connection refused (is the archive running, and is the port right?)' : e.code === 'ENOTFOUND' ? 'host not found' : /certificate|self.signed|CERT/i.test(`${e.code} ${e.message}`) ? `TLS certificate not trusted (${e.message})` : e.message;
        const hint = /certificate/i.test(why) ? "give the archive's CA certificate (tls.ca / --ca FILE)" : 'check the URL and that the archive is reachable from this machine; medmask retries import jobs';
        reject(new MedmaskError('REMOTE_UNAVAILABLE', `${what}: ${why}`, { cause: e, hint }));
      });
      req.end(body);
    });
  }

  /** Fail on a non-2xx answer, with the archive's message. */
  private async check(res: Res, what: string): Promise<void> {
    if (res.status >= 200 && res.status < 300) return;
    const text = (await readAll(res.body, 4096).catch(() => Buffer.alloc(0))).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 300);
    const msg = `${what}: the archive answered ${res.status}${text ? ` (${text})` : ''}`;
    if (res.status === 401 || res.status === 403) throw new MedmaskError('REMOTE_REFUSED', msg, { hint: 'check the endpoint\'s user name, password or token', details: { status: res.status } });
    if (res.status >= 500 || res.status === 408 || res.status === 429) throw new MedmaskError('REMOTE_UNAVAILABLE', msg, { hint: 'the archive is busy or failing; try again later', details: { status: res.status } });
    if (res.status === 404) throw new MedmaskError('NOT_FOUND', msg, { hint: 'the study, series or instance is not (or no longer) in the archive; search again', details: { status: res.status } });
    throw new MedmaskError('REMOTE_REFUSED', msg, { details: { status: res.status } });
  }

  private async getJson(path: string, signal?: AbortSignal): Promise<DicomJson[]> {
    const what = `GET ${this.name}${path.split('?')[0]}`;
    const res = await this.request('GET', path, { accept: 'application/dicom+json' }, undefined, signal);
    await this.check(res, what);
    if (res.status === 204) {
      res.body.resume();
      return [];
    }
    const text = (await readAll(res.body, 256 * 2 ** 20)).toString('utf8');
    if (!text.trim()) return [];
    try {
      const v = JSON.parse(text) as unknown;
      if (!Array.isArray(v)) throw new Error('not a JSON array');
      return v as DicomJson[];
    } catch (e) {
      throw new MedmaskError('REMOTE_REFUSED', `${what}: the answer is not DICOM JSON (${(e as Error).message})`, { cause: e, hint: 'check that the URL is the DICOMweb root (the one /studies hangs off)' });
    }
  }

  /** QIDO-RS studies. */
  async searchStudies(q: DicomwebQuery, signal?: AbortSignal): Promise<StudyRecord[]> {
    return parseStudies(await this.getJson(`/studies?${qidoParams(q, 'studies')}`, signal));
  }

  /** QIDO-RS series (all studies, or those of `q.studyInstanceUid`). */
  async searchSeries(q: DicomwebQuery, signal?: AbortSignal): Promise<SeriesRecord[]> {
    return parseSeries(await this.getJson(`/series?${qidoParams(q, 'series')}`, signal));
  }

  /** QIDO-RS instances of one series. */
  async searchInstances(study: string, series: string, signal?: AbortSignal): Promise<InstanceRecord[]> {
    const p = new URLSearchParams();
    for (const f of ['SOPInstanceUID', 'SOPClassUID', 'InstanceNumber']) p.append('includefield', f);
    p.set('limit', '100000');
    return parseInstances(await this.getJson(`/studies/${uidPath(study)}/series/${uidPath(series)}/instances?${p}`, signal));
  }

  /**
   * WADO-RS: every instance of a series (or one instance) as Part 10 files in `dir`.
   * @returns the files written, in the order received, and the bytes
   */
  async retrieveSeries(study: string, series: string, dir: string, o: RetrieveOptions = {}): Promise<{ files: string[]; bytes: number }> {
    return this.retrieve(`/studies/${uidPath(study)}/series/${uidPath(series)}`, dir, o);
  }

  /** WADO-RS of one instance (see {@link retrieveSeries}). */
  async retrieveInstance(study: string, series: string, instance: string, dir: string, o: RetrieveOptions = {}): Promise<{ files: string[]; bytes: number }> {
    return this.retrieve(`/studies/${uidPath(study)}/series/${uidPath(series)}/instances/${uidPath(instance)}`, dir, o);
  }

  private async retrieve(path: string, dir: string, o: RetrieveOptions): Promise<{ files: string[]; bytes: number }> {
    const what = `GET ${this.name}${path}`;
    const res = await this.request('GET', path, { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' }, undefined, o.signal);
    await this.check(res, what);
    const { type, params } = contentTypeParams(String(res.headers['content-type'] ?? ''));
    if (type !== 'multipart/related' || !params.boundary) {
      res.body.resume();
      throw new MedmaskError('REMOTE_REFUSED', `${what}: expected multipart/related, got ${res.headers['content-type'] ?? 'no content type'}`, { hint: 'check that the URL is the DICOMweb root and that the archive supports WADO-RS' });
    }
    const files: string[] = [];
    let bytes = 0;
    const name = o.fileName ?? ((n: number) => `instance-${String(n).padStart(6, '0')}.dcm`);
    try {
      const r = await readMultipart(
        res.body,
        params.boundary,
        () => {
          const path = join(dir, name(files.length + 1));
          files.push(path);
          return fileSink(createWriteStream(path), (n) => {
            bytes += n;
          }, () => o.onInstance?.({ instances: files.length, bytes }));
        },
        { label: what, maxPartBytes: o.maxInstanceBytes ?? 2 ** 30, maxTotalBytes: o.maxTotalBytes ?? 64 * 2 ** 30 },
      );
      return { files, bytes: r.bytes };
    } catch (e) {
      res.body.destroy();
      if (e instanceof MedmaskError) throw e;
      throw new MedmaskError('REMOTE_UNAVAILABLE', `${what}: the transfer broke after ${files.length} instance(s): ${(e as Error).message}`, { cause: e, hint: 'try again; an import job resumes with the instances still missing' });
    }
  }

  /**
   * STOW-RS: store DICOM objects (Part 10 bytes) in the archive.
   * @param study - store under this study (optional; the objects name their study)
   * @returns what the archive stored and what it refused, with its reasons
   * @throws MedmaskError REMOTE_REFUSED when the archive refuses every object (the reason in the message)
   */
  async store(objects: readonly Uint8Array[], study?: string): Promise<StowResult> {
    const path = study ? `/studies/${uidPath(study)}` : '/studies';
    const what = `POST ${this.name}${path}`;
    const { body, contentType } = writeMultipart(objects);
    const res = await this.request('POST', path, { 'content-type': contentType, accept: 'application/dicom+json' }, body);
    // 200 all stored, 202 some refused, 409 all refused: read the response in every case.
    const text = (await readAll(res.body, 16 * 2 ** 20)).toString('utf8');
    let parsed: StowResult | undefined;
    try {
      parsed = text.trim() ? parseStowResponse(JSON.parse(text) as DicomJson | DicomJson[]) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.status >= 200 && res.status < 300 && parsed) return { ...parsed, status: res.status };
    if (res.status >= 200 && res.status < 300) return { stored: [], failed: [], status: res.status };
    const reason = parsed?.failed.map((f) => `${f.reason}`).join('; ') || text.replace(/\s+/g, ' ').trim().slice(0, 300);
    const msg = `${what}: the archive answered ${res.status}${reason ? ` (${reason})` : ''}`;
    if (res.status >= 500 && !parsed?.failed.length) throw new MedmaskError('REMOTE_UNAVAILABLE', msg, { hint: 'the archive is failing; try again later', details: { status: res.status } });
    throw new MedmaskError('REMOTE_REFUSED', msg, { hint: 'the archive refused the object: see its reason; fix the archive\'s settings (accepted SOP classes, filters) and push again', details: { status: res.status, failed: parsed?.failed ?? [] } });
  }
}

/** A UID in a URL path: digits and dots only. */
function uidPath(uid: string): string {
  if (!/^[0-9]+(\.[0-9]+)*$/.test(uid) || uid.length > 64) throw new MedmaskError('USAGE', `${JSON.stringify(uid.slice(0, 80))} is not a DICOM UID`, { hint: 'UIDs are digits and dots, at most 64 characters' });
  return uid;
}

/** Read a stream into memory, at most `max` bytes. */
async function readAll(body: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.byteLength;
    if (n > max) throw new MedmaskError('TOO_LARGE', `an archive answer is larger than ${max} bytes`);
    chunks.push(Buffer.from(c));
  }
  return Buffer.concat(chunks);
}

/** A part sink that writes to a file stream, with back-pressure. */
function fileSink(ws: WriteStream, counted: (n: number) => void, done: () => void) {
  return {
    write(chunk: Uint8Array) {
      counted(chunk.byteLength);
      if (!ws.write(Buffer.from(chunk))) return new Promise<void>((r) => ws.once('drain', () => r()));
      return undefined;
    },
    end() {
      return new Promise<void>((resolve, reject) => {
        ws.once('error', reject);
        ws.end(() => {
          done();
          resolve();
        });
      });
    },
  };
}
