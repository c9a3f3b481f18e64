import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { SUBGRAPH_NAMES } from './subgraphs/catalog.js';

/**
 * `npm start`: the gateway and the subgraphs in separate processes, each
 * with its own heap cap, started and watched by this one. A process that
 * dies (a heap limit reached, a crash, a kill) is logged, counted and
 * started again after a back-off; the others keep answering meanwhile.
 *
 * With PostgreSQL every subgraph has its own process. The embedded PGlite
 * database has a single owner: the three subgraphs share one process and
 * the gateway has its own (README, "Limits", says what that gives up).
 *
 * Before any child starts, a one-off child prepares what they all need once
 * (they would race each other to it): the development signing key and key
 * ring, migrations and the synthetic data (runtime.ts, prepareStorage); the
 * children only check. The supervisor itself never opens the database, so
 * it stays small.
 */

/** One supervised process: what it serves and the arguments main.ts reads. */
export interface ProcessSpec {
  name: string;
  args: readonly string[];
}

export interface ChildState {
  name: string;
  pid: number | null;
  /** How many times it was started again after it died. */
  restarts: number;
  /** Whether the running process said it is ready (false while it starts again). */
  ready: boolean;
  /** What it serves, as it said when it was first ready. */
  servers: ServedUrl[];
}

export interface Supervisor {
  children(): ChildState[];
  /** Passes SIGHUP on to every child: each reads its TLS certificates again, without a restart. */
  reloadCertificates(): void;
  stop(): Promise<void>;
}

/** What the children tell the supervisor over their IPC channel. */
export interface ServedUrl {
  name: string;
  url: string;
}
export type ChildMessage = { type: 'ready'; servers: ServedUrl[] } | { type: 'prepared'; seeded: number };

/** This module's sibling entry point: main.ts through tsx in development, main.js in the compiled build. */
const MAIN = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './main.ts' : './main.js', import.meta.url));
/** The variable that sets each server's port (main.ts reads them through config.ts). */
const PORT_VARIABLES: Record<string, string> = { gateway: 'PORT', patient: 'PATIENT_SUBGRAPH_PORT', clinical: 'CLINICAL_SUBGRAPH_PORT', billing: 'BILLING_SUBGRAPH_PORT' };
/** Back-off before a restart: doubled after each quick death, back to the first after a long life. */
const FIRST_RESTART_DELAY_MS = 250;
const MAX_RESTART_DELAY_MS = 15_000;
const STABLE_AFTER_MS = 60_000;
/** How long a child may take to finish its in-flight requests when stopped before it is killed. */
const STOP_GRACE_MS = 15_000;
/** How long a child may take to start (load, connect, listen) the first time. */
const START_TIMEOUT_MS = 120_000;

/** The processes of the API: one per subgraph with PostgreSQL, one for all three with PGlite; the gateway alone. */
export function planProcesses(config: Config): ProcessSpec[] {
  const subgraphs: ProcessSpec[] = config.database.url
    ? SUBGRAPH_NAMES.map((name) => ({ name, args: ['--subgraph', name] }))
    : [{ name: 'subgraphs', args: ['--subgraphs'] }];
  return [...subgraphs, { name: 'gateway', args: ['--gateway'] }];
}

/** Runs `main.ts --prepare` in a child of its own and resolves with the number of patients it seeded. */
export function prepareInChild(config: Config): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = fork(MAIN, ['--prepare'], { execArgv: childExecArgv(config.processHeapMb, config.processSemiSpaceMb), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let seeded: number | null = null;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'prepared') seeded = message.seeded;
    });
    child.once('exit', (code, signal) => {
      if (code === 0 && seeded !== null) resolve(seeded);
      else reject(new Error(`preparing the database failed (${signal ?? `exit code ${code}`}); its own message is above`));
    });
  });
}

/** The loader tsx started this process with, plus the heap cap and the young generation of one process. */
export function childExecArgv(heapMb: number, semiSpaceMb: number): string[] {
  const inherited = process.execArgv.filter((flag) => !flag.startsWith('--max-old-space-size') && !flag.startsWith('--max-semi-space-size'));
  return [...inherited, `--max-old-space-size=${heapMb}`, ...(semiSpaceMb > 0 ? [`--max-semi-space-size=${semiSpaceMb}`] : [])];
}

/** Starts every process and resolves when all are ready; a process that cannot start the first time fails the start. */
export async function superviseApi(config: Config, logger: Logger, specs: readonly ProcessSpec[] = planProcesses(config)): Promise<Supervisor> {
  const log = logger.child({ component: 'supervisor' });
  let stopping = false;
  const watched: WatchedProcess[] = [];
  // The gateway calls the subgraphs where they actually listen (ports chosen by the system when configured as 0).
  const subgraphUrls = (): Record<string, string> =>
    Object.fromEntries(
      watched.flatMap((child) => child.state().servers).filter((server) => server.name !== 'gateway').map((server) => [`${server.name.toUpperCase()}_SUBGRAPH_URL`, server.url]),
    );
  for (const spec of specs) watched.push(new WatchedProcess(spec, { heapMb: config.processHeapMb, semiSpaceMb: config.processSemiSpaceMb }, log, () => stopping, spec.name === 'gateway' ? subgraphUrls : () => ({})));
  const supervisor: Supervisor = {
    children: () => watched.map((child) => child.state()),
    reloadCertificates() {
      log.info({ event: 'certificates-reload-requested' }, 'SIGHUP: passed on to every process');
      for (const child of watched) child.signal('SIGHUP');
    },
    async stop() {
      stopping = true;
      await Promise.all(watched.map((child) => child.stop()));
    },
  };
  try {
    // Subgraphs first: the gateway is told where they listen.
    await Promise.all(watched.filter((candidate) => candidate.spec.name !== 'gateway').map((child) => child.start()));
    for (const child of watched.filter((candidate) => candidate.spec.name === 'gateway')) await child.start();
  } catch (error) {
    await supervisor.stop();
    throw error;
  }
  return supervisor;
}

class WatchedProcess {
  private child: ChildProcess | null = null;
  private restarts = 0;
  private servers: ServedUrl[] = [];
  private ready = false;
  private startedAt = 0;
  private delayMs = FIRST_RESTART_DELAY_MS;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly spec: ProcessSpec,
    private readonly memory: { heapMb: number; semiSpaceMb: number },
    private readonly log: Logger,
    private readonly isStopping: () => boolean,
    private readonly extraEnv: () => Record<string, string>,
  ) {}

  state(): ChildState {
    return { name: this.spec.name, pid: this.child?.pid ?? null, restarts: this.restarts, ready: this.ready, servers: [...this.servers] };
  }

  /** The first start: resolves once the child is ready; rejects when it exits first or takes too long. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = this.spawn();
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${this.spec.name} did not become ready within ${START_TIMEOUT_MS / 1000} s`));
      }, START_TIMEOUT_MS);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.spec.name} exited before it was ready (${signal ?? `exit code ${code}`}); its own message is above`));
      });
    });
  }

  private spawn(): ChildProcess {
    // A restarted process listens where it did before (a port the system chose the first time included), so its callers still find it.
    const ports: Record<string, string> = {};
    for (const server of this.servers) {
      const variable = PORT_VARIABLES[server.name];
      if (variable) ports[variable] = new URL(server.url).port;
    }
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.extraEnv(), ...ports };
    // One process can hold the health port: the gateway's answers the probes (the subgraphs' own /readyz stay on their ports).
    if (this.spec.name !== 'gateway') delete env['HEALTH_PORT'];
    const child = fork(MAIN, [...this.spec.args, '--supervised'], {
      execArgv: childExecArgv(this.memory.heapMb, this.memory.semiSpaceMb),
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    this.startedAt = Date.now();
    this.ready = false;
    child.on('message', (message: ChildMessage) => {
      if (message.type !== 'ready') return;
      this.ready = true;
      this.servers = message.servers;
      this.log.info({ event: 'process-ready', process: this.spec.name, pid: child.pid, restarts: this.restarts }, `${this.spec.name} is ready`);
    });
    child.on('exit', (code, signal) => this.exited(child, code, signal));
    this.log.info({ event: 'process-started', process: this.spec.name, pid: child.pid, heapMb: this.memory.heapMb, semiSpaceMb: this.memory.semiSpaceMb }, `${this.spec.name} started`);
    return child;
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.isStopping()) return;
    const lived = Date.now() - this.startedAt;
    this.delayMs = lived > STABLE_AFTER_MS ? FIRST_RESTART_DELAY_MS : Math.min(this.delayMs * 2, MAX_RESTART_DELAY_MS);
    this.ready = false;
    if (this.servers.length === 0 && this.restarts === 0) return; // never ready: start() reports it
    this.restarts += 1;
    this.log.error(
      { event: 'process-exited', process: this.spec.name, pid: child.pid, code, signal, livedMs: lived, restarts: this.restarts, restartInMs: this.delayMs },
      `${this.spec.name} exited (${signal ?? `exit code ${code}`}); starting it again`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.isStopping()) this.spawn();
    }, this.delayMs);
  }

  /**
   * Passes a signal on to the running child (SIGHUP: read the certificates again). Only to a ready one: a child
   * still starting has no handler yet (SIGHUP would end it), and reads the certificate files as it starts anyway.
   */
  signal(signal: NodeJS.Signals): void {
    if (this.ready && this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** SIGTERM (the child finishes its in-flight requests), SIGKILL after the grace period. */
  async stop(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
