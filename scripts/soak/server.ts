/**
 * The Worker under soak: `wrangler dev` on 127.0.0.1 with its own state directory, in its own process group so that
 * stopping it also stops the workerd processes it starts. Its output goes to a log file, not the terminal.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { runMinuteJobs } from '../minute-jobs.ts';
import { ROOT, WRANGLER } from '../wrangler-cli.ts';

export const LOOPBACK = '127.0.0.1';

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released for wrangler to take). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

export interface DevServerOptions {
  persistDir: string;
  /** Secrets, as an .env file (keeps them off the command line). */
  envFile: string;
  /** `--var NAME:value` overrides of wrangler.toml's [vars], given the server's base URL. */
  vars: (baseUrl: string) => Record<string, string>;
  logFile: string;
  readyTimeoutMs: number;
}

export interface DevServer {
  baseUrl: string;
  /** Runs the minute jobs once, as the cron trigger does in production (scripts/minute-jobs.ts). */
  runScheduled(): Promise<number>;
  /** Stops wrangler and its workerd children (SIGTERM, then SIGKILL). Idempotent. */
  stop(): Promise<void>;
  /** Kills wrangler and its workerd children at once (SIGKILL to the group), as a crash would. */
  crash(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Last resort on any exit path (uncaught error, process.exit): no wrangler is left behind. */
process.on('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Starts `wrangler dev` and resolves once `GET /v2/health` answers 200; rejects (after stopping it) otherwise. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const port = await freePort();
  const inspectorPort = await freePort();
  const baseUrl = `http://${LOOPBACK}:${port}`;
  const args = [
    WRANGLER,
    'dev',
    '--ip',
    LOOPBACK,
    '--port',
    String(port),
    '--inspector-ip',
    LOOPBACK,
    '--inspector-port',
    String(inspectorPort),
    '--persist-to',
    options.persistDir,
    '--env-file',
    options.envFile,
    '--test-scheduled',
    '--show-interactive-dev-session=false',
    ...Object.entries(options.vars(baseUrl)).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
  ];
  const log = createWriteStream(options.logFile);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: `kill(-pid)` reaches workerd too.
    detached: true,
  });
  running.add(child);
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      killGroup(child, 'SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!killed) {
        killGroup(child, 'SIGKILL');
        await exited;
      }
      // workerd may outlive wrangler for a moment; the group gets a final SIGKILL either way.
      killGroup(child, 'SIGKILL');
      await new Promise<void>((resolve) => log.end(resolve));
    })();
    return stopping;
  };

  const deadline = Date.now() + options.readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(
        `wrangler dev exited during start-up (code ${child.exitCode ?? child.signalCode}); see ${options.logFile}`,
      );
    }
    try {
      const res = await fetch(`${baseUrl}/v2/health`, { signal: AbortSignal.timeout(5_000) });
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `wrangler dev did not answer ${baseUrl}/v2/health within ${options.readyTimeoutMs / 1000} s; see ${options.logFile}`,
      );
    }
    await sleep(500);
  }

  return {
    baseUrl,
    runScheduled: () => runMinuteJobs(baseUrl),
    stop,
    async crash() {
      killGroup(child, 'SIGKILL');
      await stop();
    },
  };
}
