/**
 * The archive objects in R2 (the `ARCHIVE` binding): where each goes, writing one and proving it is there, reading one
 * back. Only this module touches the bucket (docs/design.md#retention-and-archives).
 */
import { type ArchiveLine, sha256Hex } from './format.ts';

/**
 * The object key of an archive: handle, period (UTC day) and the first notification id of its range. Deterministic,
 * so a crash between archiving and deleting re-exports the same range to the same key (the object is replaced, never
 * doubled).
 */
export function archiveKey(handle: string, period: string, firstNotificationId: string): string {
  return `${handle}/${period}/${firstNotificationId}.ndjson.gz`;
}

/** Thrown when the object read back is not the object written: nothing may be purged on its account. */
export class ArchiveVerificationError extends Error {
  override name = 'ArchiveVerificationError';
}

/**
 * Writes the object (R2 checks the SHA-256 on upload) and reads it back whole: resolves only when the stored bytes have
 * the same size and SHA-256 as `bytes`.
 */
export async function writeVerified(
  bucket: R2Bucket,
  key: string,
  bytes: Uint8Array,
  meta: Record<string, string>,
): Promise<{ bytes: number; sha256: string }> {
  const sha256 = await sha256Hex(bytes);
  await bucket.put(key, bytes, {
    sha256,
    httpMetadata: { contentType: 'application/gzip' },
    customMetadata: meta,
  });
  const stored = await bucket.get(key);
  if (!stored) throw new ArchiveVerificationError(`archive ${key} is missing after it was written`);
  const back = new Uint8Array(await stored.arrayBuffer());
  const backSha = await sha256Hex(back);
  if (back.byteLength !== bytes.byteLength || backSha !== sha256) {
    throw new ArchiveVerificationError(`archive ${key} read back differs from what was written`);
  }
  return { bytes: bytes.byteLength, sha256 };
}

/** The stored object, or null when the key holds nothing. */
export function readArchive(bucket: R2Bucket, key: string): Promise<R2ObjectBody | null> {
  return bucket.get(key);
}

/** The lines of a stored archive (gunzipped, one parsed line each), or null when the key holds nothing. */
export async function readArchiveLines(bucket: R2Bucket, key: string): Promise<ArchiveLine[] | null> {
  const object = await readArchive(bucket, key);
  if (!object) return null;
  const text = await new Response(object.body.pipeThrough(new DecompressionStream('gzip'))).text();
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as ArchiveLine);
}
