/**
 * zod's `v4/classic/external.js`, less `locales`: the Worker answers in English only (zod registers `en` itself on the
 * first schema), and the other ~40 translations were a quarter of the deployed bundle. Also left out: the schema
 * compiler (`compile`, `withParser`, `INVALID`, `ZodCompile*Error`) and `fromJSONSchema`, which nothing here uses
 * (~10 KiB gzipped, what the dashboard needed to stay under the 200 KiB budget). Every other export is zod's
 * own. Keep this list in step with node_modules/zod/v4/classic/external.js when zod is upgraded.
 */
export * as core from './core.ts';
export * from '../../../node_modules/zod/v4/classic/schemas.js';
export * from '../../../node_modules/zod/v4/classic/checks.js';
export * from '../../../node_modules/zod/v4/classic/errors.js';
export * from '../../../node_modules/zod/v4/classic/parse.js';
export * from '../../../node_modules/zod/v4/classic/compat.js';
export {
  globalRegistry,
  registry,
  config,
  memoizer,
  $output,
  $input,
  $brand,
  clone,
  regexes,
  treeifyError,
  prettifyError,
  formatError,
  flattenError,
  TimePrecision,
  util,
  NEVER,
  toZod,
  getDiscriminatedOption,
} from './core.ts';
export { toJSONSchema } from '../../../node_modules/zod/v4/core/json-schema-processors.js';
export { deepPartial } from '../../../node_modules/zod/v4/classic/deep-partial.js';
export { input, output } from '../../../node_modules/zod/v4/classic/in-out.js';
export { ZodISODateTime, ZodISODate, ZodISOTime, ZodISODuration } from '../../../node_modules/zod/v4/classic/iso.js';
export * as iso from '../../../node_modules/zod/v4/classic/iso.js';
export * as coerce from '../../../node_modules/zod/v4/classic/coerce.js';
