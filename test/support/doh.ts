/** Worker-side access to the DoH resolver stub (test/support/node/doh-stub.ts), whose port arrives as `inject('dohPort')`. */
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the DNS-over-HTTPS resolver stub on 127.0.0.1 (test/support/node/global-setup.ts). */
    dohPort: number;
  }
}

/** The stub's JSON DoH endpoint, for `DNS_OVER_HTTPS_URL`. */
export const dohUrl = () => `http://127.0.0.1:${inject('dohPort')}/dns-query`;

/** Every query the stub answered for `name` (lower-case, no trailing dot). */
export async function dohQueries(name: string): Promise<Array<{ type: number; accept: string }>> {
  const res = await fetch(`http://127.0.0.1:${inject('dohPort')}/_queries?name=${encodeURIComponent(name)}`);
  return (await res.json()) as Array<{ type: number; accept: string }>;
}
