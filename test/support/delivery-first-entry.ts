// An entry that evaluates the delivery schemas (plain zod) before the app, as the bench's metered entry does; see
// test/node/worker-config.test.ts.
import '../../src/delivery/messages.ts';

// wrangler.toml binds PACER to this class: every entry of the Worker exports it.
export { default, EndpointPacer } from '../../src/index.ts';
