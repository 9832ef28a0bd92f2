/**
 * What one entry point into the pipeline (a queue batch, a cron job, a request that publishes or test-sends) builds
 * once and hands down: the bindings and the config parsed from their vars, so no step below parses it again.
 */
import { type Config, config } from '../env.ts';

export interface DeliveryContext {
  readonly env: Env;
  readonly cfg: Config;
}

/** The context of one entry point's run. */
export function deliveryContext(env: Env): DeliveryContext {
  return { env, cfg: config(env) };
}
