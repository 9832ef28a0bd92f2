/**
 * Running wrangler from the scripts: with this Node (22, from the `node` devDependency), not whichever `node` is on
 * PATH, and without prompts. Shared by `npm run dev` (scripts/dev.ts) and `npm run soak` (scripts/soak.ts).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const WRANGLER = join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');

/** A one-shot wrangler command that did not succeed; `output` is everything it printed. */
export class WranglerError extends Error {
  readonly output: string;
  constructor(message: string, output = '') {
    super(message);
    this.name = 'WranglerError';
    this.output = output;
  }
}

/**
 * Runs a one-shot wrangler command and resolves with its output (stdout and stderr, captured so that it is shown only
 * when the command fails). `CI=true` makes wrangler take the default answer instead of prompting (migrations apply
 * asks to confirm). A command still running after `timeoutMs` is killed and rejected.
 */
export function runWrangler(
  description: string,
  args: string[],
  options: { timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER, ...args], {
      cwd: ROOT,
      env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new WranglerError(`Could not start wrangler to ${description}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else
        reject(
          new WranglerError(
            `Failed to ${description} (wrangler ${args.join(' ')} exited with ${signal ?? code}).`,
            output,
          ),
        );
    });
  });
}
