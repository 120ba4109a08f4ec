/**
 * Password hashing with scrypt (node:crypto; RFC 7914) and random secrets for sessions and API
 * tokens. Hash format: `scrypt$N$r$p$salt$hash` with base64 salt and hash, so parameters can be
 * raised later without breaking stored hashes.
 * @module
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (pw: string, salt: Buffer, len: number, o: ScryptOptions) =>
  new Promise<Buffer>((res, rej) => scryptCb(pw, salt, len, o, (e, k) => (e ? rej(e) : res(k))));

/**
 * Default cost: OWASP's Password Storage Cheat Sheet minimum for scrypt, N = 2^17, r = 8, p = 1
 * (128 MiB per hash while it runs; Node runs at most four at once on its thread pool). Hashes made
 * with weaker parameters are replaced at the next successful login ({@link needsRehash}).
 */
export const SCRYPT_DEFAULTS = { N: 2 ** 17, r: 8, p: 1 } as const;

/**
 * True when a stored hash was made with weaker parameters than `params` (or is not a scrypt hash
 * medmask understands): the login route then stores a new hash of the password just verified.
 * @example
 * needsRehash('scrypt$32768$8$1$…$…', { N: 2 ** 17, r: 8, p: 1 }); // true
 */
export function needsRehash(stored: string, params: { N: number; r: number; p: number }): boolean {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return true;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  return N < params.N || r < params.r || p < params.p;
}

/**
 * Hash a password.
 * @example
 * const h = await hashPassword('correct horse'); await verifyPassword('correct horse', h); // true
 */
export async function hashPassword(password: string, params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, { ...params, maxmem: 256 * params.N * params.r + 2 ** 20 });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Check a password against a stored hash in constant time. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  const got = await scrypt(password, salt, want.length, { N, r, p, maxmem: 256 * N * r + 2 ** 20 });
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A random secret, URL-safe base64 of `bytes` random bytes. */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 hex of a secret (sessions and tokens are stored only as this). */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** A password a person can type: 4 groups of 5 letters/digits (≈ 100 bits). */
export function generatePassword(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const b = randomBytes(20);
  let s = '';
  for (let i = 0; i < 20; i++) s += alphabet[b[i]! % alphabet.length] + (i % 5 === 4 && i < 19 ? '-' : '');
  return s;
}
