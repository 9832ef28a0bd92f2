/** The length of `s` in UTF-8 bytes, as it goes over the wire (a lone surrogate as U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}
