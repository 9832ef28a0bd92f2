/**
 * What `import … from 'zod'` resolves to in the deployed bundle (wrangler.toml `[alias]`): zod's classic API without
 * its message translations (see external.ts). Same shape as zod's own index: named exports, `z`, and a default.
 */
import * as z from './external.ts';

export * from './external.ts';
export { z, z as default };
