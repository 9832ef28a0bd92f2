/**
 * zod's `v4/classic/external.js`, less `locales`: the Worker answers in English only (zod registers `en` itself on the
 * first schema), and the other ~40 translations were a quarter of the deployed bundle. Also left out: the schema
 * compiler (`compile`, `withParser`, `INVALID`, `ZodCompile*Error`) and `fromJSONSchema`, which nothing here uses
 * (~10 KiB gzipped, what the dashboard needed to stay under the 200 KiB budget). Every other export is zod's
 * own. Keep this list in step with node_modules/zod/v4/classic/external.js when zod is upgraded.
 */

export * from '../../../node_modules/zod/v4/classic/checks.js';
export * as coerce from '../../../node_modules/zod/v4/classic/coerce.js';
export * from '../../../node_modules/zod/v4/classic/compat.js';
export { deepPartial } from '../../../node_modules/zod/v4/classic/deep-partial.js';
export * from '../../../node_modules/zod/v4/classic/errors.js';
export { input, output } from '../../../node_modules/zod/v4/classic/in-out.js';
export * as iso from '../../../node_modules/zod/v4/classic/iso.js';
export { ZodISODate, ZodISODateTime, ZodISODuration, ZodISOTime } from '../../../node_modules/zod/v4/classic/iso.js';
export * from '../../../node_modules/zod/v4/classic/parse.js';
export * from '../../../node_modules/zod/v4/classic/schemas.js';
export { toJSONSchema } from '../../../node_modules/zod/v4/core/json-schema-processors.js';
export * as core from './core.ts';
export {
  $brand,
  $input,
  $output,
  clone,
  config,
  flattenError,
  formatError,
  getDiscriminatedOption,
  globalRegistry,
  memoizer,
  NEVER,
  prettifyError,
  regexes,
  registry,
  TimePrecision,
  toZod,
  treeifyError,
  util,
} from './core.ts';
