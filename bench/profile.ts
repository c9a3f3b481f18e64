import { readFile, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reading a V8 CPU profile (`node --cpu-prof`): self time by function and
 * by where the code lives (a package of node_modules, Node's internals, the
 * garbage collector, a folder of src/), and total time (self and callees)
 * of this repository's functions, optionally within a time window.
 */

/** The parts of a .cpuprofile this reader uses. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  /** Microseconds, on the clock of process.hrtime (CLOCK_MONOTONIC on Linux). */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface CostEntry {
  name: string;
  /** Self time in ms (total time in `byRepositoryFunctionTotal`). */
  ms: number;
  /** Share of the window's sampled time (idle excluded), 0..1. */
  share: number;
}

export interface ProfileSummary {
  /** Sampled ms in the window, idle excluded. */
  busyMs: number;
  /** Idle ms in the window (the process waited: on the database, the network). */
  idleMs: number;
  byFunction: CostEntry[];
  byPlace: CostEntry[];
  /**
   * This repository's functions by total time: their own and that of
   * everything they called synchronously (a function counted once per
   * sample however often it recurs). Work resumed after an await is
   * counted under the function that resumed.
   */
  byRepositoryFunctionTotal: CostEntry[];
}

export interface ProfileWindow {
  /** Microseconds on process.hrtime's clock (process.hrtime.bigint() / 1000n); samples outside are dropped. */
  fromMicros: number;
  toMicros: number;
}

/**
 * The main thread's profile among those `node --cpu-prof` wrote to `dir`:
 * files are named CPU.<date>.<time>.<pid>.<thread>.<sequence>.cpuprofile,
 * the main thread is thread 0 (tsx's module loader runs on a thread of its own).
 */
export async function findMainProfile(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile was written to ${dir}; did the process exit cleanly after SIGTERM?`);
  const main = files.find((file) => /\.\d+\.0\.\d+\.cpuprofile$/.test(file)) ?? files.sort()[0];
  return join(dir, main as string);
}

/**
 * Self time per function and per place, over the samples within `window`
 * (all of them without one). A sample's time is the delta to the next
 * sample, as Chrome DevTools counts it.
 */
export async function summarizeProfile(path: string, repoRoot: string, window?: ProfileWindow): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const selfByNode = new Map<number, number>();
  let at = profile.startTime;
  for (let index = 0; index < profile.samples.length; index++) {
    at += profile.timeDeltas[index] ?? 0;
    const duration = profile.timeDeltas[index + 1] ?? 0;
    if (window && (at < window.fromMicros || at > window.toMicros)) continue;
    const nodeId = profile.samples[index] as number;
    selfByNode.set(nodeId, (selfByNode.get(nodeId) ?? 0) + duration);
  }
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  const byRepositoryFunctionTotal = new Map<string, number>();
  const lines = new DeclarationLines(repoRoot);
  const described = new Map<number, { name: string; place: string; inRepo: boolean }>();
  const describe = async (nodeId: number) => {
    let found = described.get(nodeId);
    if (!found) {
      const frame = frames.get(nodeId) ?? { functionName: '(unknown)', url: '', lineNumber: -1 };
      const place = placeOf(frame.url, frame.functionName, repoRoot);
      const line = place.inRepo ? await lines.of(place.file, frame.functionName) : frame.lineNumber + 1;
      const name = frame.url ? `${frame.functionName || '(anonymous)'} ${place.file}${line ? `:${line}` : ''}` : frame.functionName || '(native)';
      found = { name, place: place.place, inRepo: place.inRepo };
      described.set(nodeId, found);
    }
    return found;
  };
  let idle = 0;
  for (const [nodeId, micros] of selfByNode) {
    if (frames.get(nodeId)?.functionName === '(idle)') {
      idle += micros;
      continue;
    }
    const { name, place } = await describe(nodeId);
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
    byPlace.set(place, (byPlace.get(place) ?? 0) + micros);
    const onStack = new Set<string>();
    for (let current: number | undefined = nodeId; current !== undefined; current = parents.get(current)) {
      const caller = await describe(current);
      if (caller.inRepo) onStack.add(caller.name);
    }
    for (const caller of onStack) byRepositoryFunctionTotal.set(caller, (byRepositoryFunctionTotal.get(caller) ?? 0) + micros);
  }
  const busy = [...byPlace.values()].reduce((sum, micros) => sum + micros, 0);
  const ranked = (costs: Map<string, number>): CostEntry[] =>
    [...costs.entries()]
      .map(([name, micros]) => ({ name, ms: micros / 1000, share: busy > 0 ? micros / busy : 0 }))
      .sort((a, b) => b.ms - a.ms);
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    byFunction: ranked(byFunction),
    byPlace: ranked(byPlace),
    byRepositoryFunctionTotal: ranked(byRepositoryFunctionTotal),
  };
}

/**
 * Where code lives, for the per-place totals, and its file as the report
 * names it: `node_modules/<package>` (the innermost one), Node's own modules
 * by their first part (`node:crypto` for node:internal/crypto/cipher),
 * `src/<folder>` or `bench/` of this repository, and the VM's own entries
 * ((garbage collector), (program)) or (native) for builtins without a URL.
 */
export function placeOf(url: string, functionName: string, repoRoot: string): { place: string; file: string; inRepo: boolean } {
  if (!url) return { place: functionName.startsWith('(') ? functionName : '(native)', file: '', inRepo: false };
  // node:internal/crypto/cipher -> node:crypto, node:events -> node:events
  if (url.startsWith('node:')) return { place: `node:${url.slice('node:'.length).replace(/^internal\//, '').split('/')[0] ?? ''}`, file: url, inRepo: false };
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = fileURLToPath(url);
    } catch {
      path = url;
    }
  }
  const modules = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (modules >= 0) {
    const inner = path.slice(modules + `${sep}node_modules${sep}`.length).split(sep);
    const name = inner[0]?.startsWith('@') ? `${inner[0]}/${inner[1] ?? ''}` : (inner[0] ?? '?');
    const rest = inner.slice(name.startsWith('@') ? 2 : 1).join('/');
    return { place: `node_modules/${name}`, file: `${name}/${rest}`, inRepo: false };
  }
  const inRepo = relative(repoRoot, path);
  if (!inRepo.startsWith('..')) {
    const parts = inRepo.split(sep);
    const place = parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : parts.length > 1 ? `${parts[0]}/` : inRepo;
    return { place, file: parts.join('/'), inRepo: path.endsWith('.ts') };
  }
  return { place: 'other', file: path, inRepo: false };
}

/**
 * Where a function of this repository's TypeScript is declared. tsx
 * compiles each file to a single line, so the profile's line is always 1;
 * the declaration is found by name instead (function, method, arrow or
 * function assigned to a name). Undefined for anonymous functions and
 * names declared more than once in the file.
 */
class DeclarationLines {
  private readonly files = new Map<string, Promise<string[]>>();

  constructor(private readonly repoRoot: string) {}

  async of(file: string, functionName: string): Promise<number | undefined> {
    if (!functionName || !/^#?[\w$]+$/.test(functionName)) return undefined;
    let source = this.files.get(file);
    if (!source) {
      source = readFile(join(this.repoRoot, file), 'utf8').then(
        (text) => text.split('\n'),
        () => [],
      );
      this.files.set(file, source);
    }
    const name = functionName.replaceAll('$', '\\$');
    const declaration = new RegExp(
      `(?:\\bfunction\\*?\\s+${name}\\s*[<(]|^\\s*(?:(?:export|public|private|protected|static|async|override|readonly|get|set)\\s+)*${name}\\s*(?:<[^>]*>)?\\s*\\(|\\b(?:const|let|var)\\s+${name}\\s*=|^\\s*(?:readonly\\s+)?${name}\\s*[:=]\\s*(?:async\\s*)?(?:\\(|function))`,
    );
    const matches = (await source).flatMap((text, index) => (declaration.test(text) ? [index + 1] : []));
    return matches.length === 1 ? matches[0] : undefined;
  }
}
