/**
 * Counter-based randomness for workloads and init: r = hash32(f(step, key)). Using the step
 * counter (a register) as the generator's state means a workload needs no hidden RNG state, can
 * compute the pages of its next step without advancing anything (the post-copy fault check),
 * and a VM copied mid-run draws exactly the same numbers as the original.
 */

/** lowbias32 (Chris Wellons' hash prospector): a fast 32-bit bijective integer hash. */
export function hash32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The per-step draw: a 32-bit value from (step counter lo/hi, key). */
export function stepHash(lo: number, hi: number, key: number): number {
  return hash32(((lo ^ key) + Math.imul(hi, 0x9e3779b9)) | 0);
}

/** Maps a 32-bit draw to [0, n) using its top 22 bits (exact in doubles for n ≤ 2^22 pages = 16 GiB). */
export function below(r: number, n: number): number {
  return Math.floor(((r >>> 10) * n) / 4194304);
}

/** A 32-bit key from a seed (any safe integer) and a purpose tag, so different uses draw independently. */
export function deriveKey(seed: number, tag: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  return hash32(hash32(lo ^ Math.imul(tag, 0x85ebca6b)) ^ hash32(hi + 0x27d4eb2f));
}

/** hash32 of a string (FNV-1a then hash32): identifies specs in the register file. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return hash32(h);
}
