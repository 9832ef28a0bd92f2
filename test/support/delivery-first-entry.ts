// An entry that evaluates the delivery schemas (plain zod) before the app, as the bench's metered entry does; see
// test/node/worker-config.test.ts.
import '../../src/delivery/messages.ts';

export { default } from '../../src/index.ts';
