/**
 * multipart/related (RFC 2387) for DICOMweb: a streaming reader for WADO-RS responses and a writer
 * for STOW-RS requests.
 *
 * Why hand-written: the maintained Node multipart parsers (busboy, @fastify/multipart) handle only
 * multipart/form-data, and dicer — the generic one — has had no release since 2019 and is not a
 * dependency of medmask. A WADO-RS series can be hundreds of MB, so the reader never holds more
 * than one boundary's worth of look-behind plus the chunk being scanned: each part's body goes to a
 * sink as it arrives (to a file, by the caller), with a per-part and a total byte limit.
 * @module
 */
import { MedmaskError } from '../core/errors.js';

/** The parameters of a Content-Type header (lower-case names, quotes removed). */
export function contentTypeParams(header: string): { type: string; params: Record<string, string> } {
  const [type, ...rest] = header.split(';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const k = p.slice(0, eq).trim().toLowerCase();
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    params[k] = v;
  }
  return { type: (type ?? '').trim().toLowerCase(), params };
}

/** What a part sink receives. */
export interface PartSink {
  /** Body bytes of the current part, in order. */
  write(chunk: Uint8Array): void | Promise<void>;
  /** The part is complete. */
  end(): void | Promise<void>;
}

/** Options for {@link readMultipart}. */
export interface ReadMultipartOptions {
  /** Largest part body, bytes (default 2 GiB). */
  maxPartBytes?: number;
  /** Largest total, bytes (default unlimited). */
  maxTotalBytes?: number;
  /** What to name in errors (e.g. the request URL). */
  label?: string;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Read a multipart body: for each part, `onPart(headers)` returns a sink for its body.
 * @param body - the response body (an async iterable of chunks)
 * @param boundary - the boundary parameter of the Content-Type
 * @returns the number of parts and body bytes read
 * @throws MedmaskError CORRUPT_FILE for a body that is not well-formed multipart, TOO_LARGE over a limit
 * @example
 * await readMultipart(res, boundary, (h) => fileSink(`part-${n++}.dcm`));
 */
export async function readMultipart(body: AsyncIterable<Uint8Array>, boundary: string, onPart: (headers: Record<string, string>) => PartSink | Promise<PartSink>, o: ReadMultipartOptions = {}): Promise<{ parts: number; bytes: number }> {
  const label = o.label ?? 'multipart body';
  const maxPart = o.maxPartBytes ?? 2 ** 31;
  const maxTotal = o.maxTotalBytes ?? Infinity;
  const bad = (why: string): never => {
    throw new MedmaskError('CORRUPT_FILE', `${label}: not a well-formed multipart/related body (${why})`, { hint: 'the archive sent a broken response; try again, or check a proxy between medmask and the archive' });
  };
  // The first delimiter may come without the leading CRLF; later ones always have it.
  const first = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  let buf: Buffer = Buffer.alloc(0);
  type State = 'preamble' | 'afterDelim' | 'headers' | 'body' | 'done';
  let state = 'preamble' as State;
  let sink: PartSink | undefined;
  let partBytes = 0;
  let total = 0;
  let parts = 0;

  const emit = async (chunk: Buffer) => {
    if (!chunk.length) return;
    partBytes += chunk.length;
    total += chunk.length;
    if (partBytes > maxPart) throw new MedmaskError('TOO_LARGE', `${label}: part ${parts} is larger than ${maxPart} bytes`, { hint: 'raise the limit, or retrieve instance by instance' });
    if (total > maxTotal) throw new MedmaskError('TOO_LARGE', `${label}: the response is larger than ${maxTotal} bytes`, { hint: 'raise the limit, or retrieve fewer instances at once' });
    await sink!.write(chunk);
  };

  const step = async (final: boolean): Promise<boolean> => {
    switch (state) {
      case 'preamble': {
        const i = buf.indexOf(first);
        if (i < 0) {
          if (final) bad('no boundary found');
          // keep a possible partial delimiter
          buf = buf.subarray(Math.max(0, buf.length - first.length));
          return false;
        }
        buf = buf.subarray(i + first.length);
        state = 'afterDelim';
        return true;
      }
      case 'afterDelim': {
        if (buf.length < 2) {
          if (final) bad('ends after a boundary');
          return false;
        }
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'done';
          return false;
        }
        // transport padding then CRLF
        const nl = buf.indexOf('\r\n');
        if (nl < 0) {
          if (final) bad('boundary line not terminated');
          return false;
        }
        buf = buf.subarray(nl + 2);
        state = 'headers';
        return true;
      }
      case 'headers': {
        // A part without headers starts with CRLF directly.
        let end: number;
        let headerText: string;
        if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
          end = 2;
          headerText = '';
        } else {
          const i = buf.indexOf(CRLF2);
          if (i < 0) {
            if (buf.length > 64 * 1024) bad('part headers longer than 64 KiB');
            if (final) bad('part headers not terminated');
            return false;
          }
          end = i + 4;
          headerText = buf.subarray(0, i).toString('latin1');
        }
        const headers: Record<string, string> = {};
        for (const line of headerText.split('\r\n')) {
          const c = line.indexOf(':');
          if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
        }
        buf = buf.subarray(end);
        parts++;
        partBytes = 0;
        sink = await onPart(headers);
        state = 'body';
        return true;
      }
      case 'body': {
        const i = buf.indexOf(delim);
        if (i < 0) {
          if (final) bad(`part ${parts} is cut off (the connection closed early)`);
          const keep = delim.length - 1;
          if (buf.length > keep) {
            await emit(buf.subarray(0, buf.length - keep));
            buf = Buffer.from(buf.subarray(buf.length - keep));
          }
          return false;
        }
        await emit(buf.subarray(0, i));
        await sink!.end();
        sink = undefined;
        buf = buf.subarray(i + delim.length);
        state = 'afterDelim';
        return true;
      }
      default:
        return false;
    }
  };

  for await (const chunk of body) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (await step(false));
    if (state === 'done') break;
  }
  while (state !== 'done' && (await step(true)));
  if (state !== 'done') bad('no closing boundary');
  return { parts, bytes: total };
}

/**
 * Build a multipart/related body of DICOM parts (for STOW-RS).
 * @returns the body and its Content-Type header value
 * @example
 * const { body, contentType } = writeMultipart([segBytes]);
 */
export function writeMultipart(parts: readonly Uint8Array[], partType = 'application/dicom'): { body: Buffer; contentType: string } {
  const boundary = `medmask-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${partType}\r\nContent-Length: ${p.byteLength}\r\n\r\n`));
    chunks.push(Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="${partType}"; boundary=${boundary}` };
}
